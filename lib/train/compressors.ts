/**
 * The three gradient compression families of L-GreCo as {@linkcode GradientCompressor}s for the
 * data-parallel path ({@linkcode CompressedExchange}), over lib/comm's exchanges:
 *
 * - `quantize`: bucketed max–min quantization at `level` bits (bucket 1024, stochastic rounding
 *   with seeded draws, different on every rank and call); each rank's packed tensor is
 *   all-gathered and every rank dequantizes and adds them in rank order (identical sums).
 * - `topk`: the ⌈density·n⌉ largest |x| of each rank, indices and values all-gathered
 *   (lib/comm/topk.ts), at `level` = density.
 * - `powersgd`: rank-`level` PowerSGD as torch's hook (lib/comm/powersgd.ts), Q kept per tensor
 *   between steps (a new level draws a new Q), the residual M − P·Qᵀ/N as torch.
 *
 * The residual each writes is x − (this rank's share of the result): quantize and topk x −
 * C(x) exactly; powersgd x − sum/N (torch's error feedback).
 *
 * @module
 */
import type { Communicator } from "../comm/communicator.ts";
import { PowerSgdCompressor, powerSgdRoundTrip } from "../comm/powersgd.ts";
import {
  dequantizeBuckets,
  dequantizeBucketsAdd,
  deriveSeed,
  quantizeBuckets,
  quantizedBytes,
} from "../comm/quantize.ts";
import { TopKCompressor, topKCount, topKRoundTrip } from "../comm/topk.ts";
import type { GradientCompressor } from "./compressed.ts";

/** The compression families. */
export type CompressionFamily = "quantize" | "topk" | "powersgd";
/** The compression families, in report order. */
export const COMPRESSION_FAMILIES: readonly CompressionFamily[] = ["quantize", "topk", "powersgd"];

/** A family's compressor, its candidate levels and the index of the uniform one. */
export interface FamilySetup {
  /** The compressor. */
  compressor: GradientCompressor;
  /** Candidate levels (bits, densities, ranks), coarse to fine. */
  candidates: number[];
  /** Index of the uniform level in `candidates`. */
  uniform: number;
}

const BUCKET = 1024;

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Bucketed stochastic quantization at `level` bits, all-gathered. */
export function quantizeCompressor(seed = 0): GradientCompressor {
  let calls = 0;
  return {
    name: "quantize",
    bytes: (shape, bits) => quantizedBytes(size(shape), { bits, bucketSize: BUCKET }),
    error(x, _shape, bits) {
      const spec = { bits, bucketSize: BUCKET };
      const y = dequantizeBuckets(
        quantizeBuckets(x, { ...spec, seed: deriveSeed(seed, 0xffffffff) }),
        x.length,
        spec,
      );
      let e = 0;
      for (let i = 0; i < x.length; i++) e += (y[i]! - x[i]!) ** 2;
      return e;
    },
    async exchange(comm: Communicator, x, residual, { level: bits }) {
      const spec = { bits, bucketSize: BUCKET };
      const msg = quantizeBuckets(x, { ...spec, seed: deriveSeed(seed, calls++, comm.rank) });
      const mine = dequantizeBuckets(msg, x.length, spec);
      for (let i = 0; i < x.length; i++) residual[i] = x[i]! - mine[i]!;
      const all = comm.size > 1 ? await comm.allGather(msg) : msg;
      x.fill(0);
      for (let r = 0; r < comm.size; r++) {
        dequantizeBucketsAdd(all.subarray(r * msg.length, (r + 1) * msg.length), x, spec);
      }
      return msg.length;
    },
  };
}

/** Top-K at `level` = density (lib/comm/topk.ts), one compressor per tensor. */
export function topKCompressor(): GradientCompressor {
  const state = new Map<string, TopKCompressor>();
  return {
    name: "topk",
    bytes: (shape, density) => {
      const n = size(shape), k = topKCount(n, density);
      return 8 * k < 4 * n ? 8 * k : null;
    },
    error: (x, _shape, density) => topKRoundTrip(x, density).error,
    async exchange(comm, x, residual, { level: density, key }) {
      let c = state.get(key);
      if (!c) state.set(key, c = new TopKCompressor(x.length, { density, errorFeedback: false }));
      else if (c.density !== density) c.setDensity(density);
      // the residual: x without what this rank sends (its top k)
      residual.set(x);
      const mine = topKRoundTrip(x, density).approximation;
      for (let i = 0; i < x.length; i++) if (mine[i] !== 0) residual[i] = 0;
      const r = await c.exchange(comm, x);
      x.set(r.sum);
      return r.bytesSent;
    },
  };
}

/** PowerSGD at `level` = rank (lib/comm/powersgd.ts), Q kept per tensor. */
export function powerSgdCompressor(seed = 0): GradientCompressor {
  const state = new Map<string, PowerSgdCompressor>();
  const rankOf = (shape: readonly number[], r: number) => Math.min(r, shape[0]!, shape[1]!);
  return {
    name: "powersgd",
    bytes: (shape, r) => {
      const k = rankOf(shape, r), rows = shape[0]!, cols = shape[1]!;
      return (rows + cols) * k < rows * cols ? 4 * (rows + cols) * k : null;
    },
    // the authors measure the error after 5 power iterations
    error: (x, shape, r) =>
      powerSgdRoundTrip(x, [shape[0]!, shape[1]!], r, { iterations: 5, seed }).error,
    async exchange(comm, x, residual, { shape, level: r, key }) {
      let c = state.get(key);
      if (!c) {
        state.set(
          key,
          c = new PowerSgdCompressor(shape[0]!, shape[1]!, { rank: r, seed, errorFeedback: false }),
        );
      } else if (c.rank !== rankOf(shape, r)) c.setRank(r);
      const res = await c.exchange(comm, x);
      for (let i = 0; i < x.length; i++) residual[i] = x[i]! - res.sum[i]! / comm.size;
      x.set(res.sum);
      return res.bytesSent;
    },
  };
}

/**
 * A family's compressor with its candidates: quantize bits 2, 3, 4, 6, 8 (uniform 4); topk
 * densities 0.001, 0.003, 0.01, 0.03, 0.1 (uniform 0.01); powersgd ranks 2 … 8 (uniform 4, the
 * authors' [r/2, 2r]).
 */
export function familyCompressor(family: CompressionFamily, seed = 0): FamilySetup {
  switch (family) {
    case "quantize":
      return { compressor: quantizeCompressor(seed), candidates: [2, 3, 4, 6, 8], uniform: 2 };
    case "topk":
      return {
        compressor: topKCompressor(),
        candidates: [0.001, 0.003, 0.01, 0.03, 0.1],
        uniform: 2,
      };
    case "powersgd":
      return {
        compressor: powerSgdCompressor(seed),
        candidates: [2, 3, 4, 5, 6, 7, 8],
        uniform: 2,
      };
  }
}
