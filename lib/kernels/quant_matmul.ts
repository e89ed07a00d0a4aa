/**
 * The product of a GPTQ weight-quantized linear layer (W4A16 / W8A16): `Y = X·Ŵᵀ` with f32
 * tokens X and a weight stored as integer levels, one scale and zero point per row and group:
 * `Ŵ[o,k] = scales[o·G + g(k)]·(q[o,k] − zeros[o·G + g(k)])`, `g(k) = gIdx[k]` (any order:
 * act-order). The levels are row-packed: 4-bit levels as nibbles (`ceil(in/2)` bytes a row, the
 * level of column k in byte k >> 1, low nibble for even k), 5- to 8-bit levels one byte each.
 *
 * Backends: `ts` dequantizes each row and takes dot products (the reference); `cpu` runs
 * `lk_cpu_quant_matmul_f32` (ffi/cpu/quant_matmul.c): for a few tokens (up to 64 with groups in
 * order; 8 to 32 for act-order weights of many groups) each row's levels are read once per four
 * tokens and widened in registers, the scale hoisted out of sequential groups (decoding reads 0.14
 * of the f32 weight's bytes at 4 bits with groups of 128: 2.9–3.9× faster than the f32 product at
 * one token, bench/quant_bench.ts); more tokens run the C GEMM on panels dequantized straight
 * from the packed levels, at the f32 GEMM's rate; `cuda` runs `lk_cuda_quant_matmul_f32`
 * (ffi/cuda/quant.cu: one warp per output row and 8 tokens, levels dequantized in registers),
 * uploading the weight per call here (`QuantLinear` keeps it on the device). An f64 `x` runs the
 * ts reference.
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, runOnDevice, spmmOutput } from "./_backend.ts";

/** A weight-quantized `rows × cols` matrix (out × in) in the row-packed GPTQ storage. */
export interface PackedQuantWeight {
  /** Rows (output features). */
  rows: number;
  /** Columns (input features). */
  cols: number;
  /**
   * true: levels of at most 4 bits, two a byte (column k in byte k >> 1 of its row, low nibble
   * for even k; `ceil(cols / 2)` bytes a row); false: levels of 5 to 8 bits, one a byte.
   */
  nibble: boolean;
  /** The unsigned levels, rows × row bytes. */
  packed: Uint8Array;
  /** rows × groups scales, row-major by output row. */
  scales: Float32Array;
  /** rows × groups zero points (integers held as floats), row-major by output row. */
  zeros: Float32Array;
  /** The group of each column, cols entries in [0, groups). */
  gIdx: Int32Array;
  /** Number of groups G per row. */
  groups: number;
}

/** Bytes of one row of levels: `ceil(cols / 2)` for nibbles, `cols` for bytes. */
export function quantRowBytes(cols: number, nibble: boolean): number {
  return nibble ? Math.ceil(cols / 2) : cols;
}

/** Throws unless `w`'s arrays fit its shape and every group index lies in [0, groups). */
export function checkPackedQuantWeight(w: PackedQuantWeight): void {
  const { rows, cols, groups } = w;
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 1) {
    throw new ShapeError(
      `Quantized weight shape ${rows}×${cols} is invalid: expected rows ≥ 0 and cols ≥ 1`,
    );
  }
  if (!Number.isInteger(groups) || groups < 1) {
    throw new RangeError(`Quantized weight has ${groups} groups, expected an integer ≥ 1`);
  }
  const rb = quantRowBytes(cols, w.nibble);
  if (w.packed.length !== rows * rb) {
    throw new ShapeError(
      `Quantized weight ${rows}×${cols} has ${w.packed.length} packed bytes, expected ${rows}×${rb} = ${
        rows * rb
      } (${w.nibble ? "nibbles" : "bytes"})`,
    );
  }
  for (const [name, a] of [["scales", w.scales], ["zeros", w.zeros]] as const) {
    if (a.length !== rows * groups) {
      throw new ShapeError(
        `Quantized weight ${rows}×${cols} has ${a.length} ${name}, expected ${rows}×${groups} = ${
          rows * groups
        }`,
      );
    }
  }
  if (w.gIdx.length !== cols) {
    throw new ShapeError(
      `Quantized weight ${rows}×${cols} has ${w.gIdx.length} group indices, expected ${cols}`,
    );
  }
  for (let k = 0; k < cols; k++) {
    const g = w.gIdx[k]!;
    if (g < 0 || g >= groups) {
      throw new RangeError(`Group index gIdx[${k}] = ${g} is outside [0, ${groups})`);
    }
  }
}

/** Row `o` of Ŵ, dequantized into `out` (f64). */
export function dequantRow(w: PackedQuantWeight, o: number, out: Float64Array): void {
  const rb = quantRowBytes(w.cols, w.nibble), base = o * rb, sg = o * w.groups;
  for (let k = 0; k < w.cols; k++) {
    const q = w.nibble ? (w.packed[base + (k >> 1)]! >> ((k & 1) << 2)) & 15 : w.packed[base + k]!;
    const g = sg + w.gIdx[k]!;
    out[k] = w.scales[g]! * (q - w.zeros[g]!);
  }
}

/**
 * `Y = X·Ŵᵀ` for tokens `X[tokens, in]` and a weight-quantized `Ŵ[out, in]`: `Y[tokens, out]`,
 * f32. The weight is checked first (shapes, array lengths, group indices).
 *
 * @example
 * ```ts
 * import { quantMatmul } from "./quant_matmul.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // Ŵ = [[1, 2, 3]] as 4-bit levels 2, 3, 4 with scale 1 and zero point 1, one group
 * const w = {
 *   rows: 1, cols: 3, nibble: true, groups: 1,
 *   packed: Uint8Array.of(2 | (3 << 4), 4),
 *   scales: Float32Array.of(1), zeros: Float32Array.of(1), gIdx: new Int32Array(3),
 * };
 * const y = quantMatmul(Matrix.from([[1, 1, 1], [1, 0, -1]]), w, { backend: "ts" });
 * if (y.data.join() !== "6,-2") throw new Error("wrong product");
 * ```
 */
export function quantMatmul(
  x: Matrix,
  w: PackedQuantWeight,
  options: KernelOptions = {},
): Matrix {
  checkPackedQuantWeight(w);
  const y = spmmOutput(x, w);
  const backend = resolve(options);
  if (backend === "cuda" && x.data instanceof Float32Array) {
    const out = y.data as Float32Array;
    runOnDevice(
      [x.data, w.packed, w.scales, w.zeros, w.gIdx, out],
      [5],
      (lib, h) =>
        lib.lk_cuda_quant_matmul_f32(
          h[0]!,
          h[1]!,
          h[2]!,
          h[3]!,
          h[4]!,
          h[5]!,
          x.rows,
          x.cols,
          w.rows,
          w.groups,
          w.nibble ? 1 : 0,
        ),
    );
    return y;
  }
  if (backend === "ts" || x.data instanceof Float64Array) {
    const k = w.cols, n = w.rows, row = new Float64Array(k), xd = x.data;
    for (let o = 0; o < n; o++) {
      dequantRow(w, o, row);
      for (let i = 0; i < x.rows; i++) {
        let s = 0;
        for (let c = 0; c < k; c++) s += xd[i * k + c]! * row[c]!;
        y.data[i * n + o] = s;
      }
    }
    return y;
  }
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_quant_matmul_f32(
      x.data as Float32Array,
      x.data.length,
      w.packed,
      w.packed.length,
      w.scales,
      w.scales.length,
      w.zeros,
      w.zeros.length,
      w.gIdx,
      w.gIdx.length,
      y.data as Float32Array,
      y.data.length,
      x.rows,
      x.cols,
      w.rows,
      w.groups,
      w.nibble ? 1 : 0,
    ),
  );
  return y;
}
