/**
 * Fully sharded data-parallel training (PyTorch FSDP's scheme) and its quantized form, QSDP
 * (Markov et al., ICML 2023): the weights, the gradient and AdamW's moments are split across the
 * ranks, each rank keeping only its shard of the fp32 master weights, of the gradient and of m
 * and v. Each unit (the embedding, every transformer block, the head) is all-gathered just
 * before its forward and again before its backward and freed after use; each unit's gradient
 * is reduce-scattered as soon as the backward has finished it, so that each rank updates only
 * its shard. With QSDP the weights travel as bucketed max–min levels (each owner quantizes its
 * shard once per step, stochastic rounding) and the gradients through a quantized
 * reduce-scatter (`lib/comm/quantized.ts`); tensors below a size threshold (the norms) travel
 * as f32.
 *
 * @module
 */
import type { Communicator } from "../comm/communicator.ts";
import { createCommunicator } from "../comm/communicator.ts";
import { QuantizedCollectives } from "../comm/quantized.ts";
import {
  dequantizeBuckets,
  deriveSeed,
  quantizeBuckets,
  quantizedBytes,
} from "../comm/quantize.ts";
import { NumericalError, quoteValue } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { adamwStep, type Backend, selectBackend } from "../kernels/mod.ts";
import type { LlamaConfig } from "../model/config.ts";
import {
  shardedBatchLoss,
  shardedLossAndGrad,
  type TensorViews,
  type WeightPhase,
  type WeightSource,
  type WeightUnit,
} from "./backward.ts";
import { type Checkpoint, saveCheckpoint, type SaveTrainedModelOptions } from "./checkpoint.ts";
import { countTargets, type SamplerState, type TokenBatch, WindowSampler } from "./data.ts";
import { bitsHash, checkReplicas } from "./ddp.ts";
import { AdamW, decaysByDefault } from "./optimizer.ts";
import { LlamaParams, paramLayout } from "./params.ts";
import { learningRate } from "./schedule.ts";
import {
  resolveTrainerOptions,
  type StepResult,
  type TrainerOptions,
  windowsFingerprint,
} from "./trainer.ts";

/** One tensor's chunks: rank r owns elements [r·chunk, (r+1)·chunk) of it (the last padded). */
export interface ShardedTensor {
  /** HF tensor name. */
  readonly name: string;
  /** [rows, cols] or [n]. */
  readonly shape: readonly number[];
  /** First element in the flat parameter layout. */
  readonly offset: number;
  /** Elements. */
  readonly size: number;
  /** ⌈size / ranks⌉: the elements of each rank's chunk (padding included). */
  readonly chunk: number;
  /** Where the chunk starts in its unit's piece of a shard. */
  readonly pieceOffset: number;
  /** Whether AdamW decays it (before `decayAll`). */
  readonly decay: boolean;
  /** Whether it travels as f32 under QSDP (fewer than `minElements` elements). */
  readonly small: boolean;
}

/** One unit: a contiguous range of the flat layout, gathered and freed as a whole. */
export interface ShardedUnit {
  /** The unit, as {@linkcode shardedLossAndGrad} names it. */
  readonly unit: WeightUnit;
  /** First element in the flat layout. */
  readonly lo: number;
  /** One past the last. */
  readonly hi: number;
  /** Its tensors: those quantized first, then the small ones (each in layout order). */
  readonly tensors: readonly ShardedTensor[];
  /** Elements of each rank's piece of it (Σ chunk). */
  readonly piece: number;
  /** Elements of the piece that QSDP quantizes (the leading ones). */
  readonly bigPiece: number;
  /** Where the piece starts in a shard. */
  readonly shardOffset: number;
}

/** How the flat parameters are split across `ranks`. */
export interface ShardPlan {
  /** Ranks. */
  readonly ranks: number;
  /** The embedding, the blocks in order, the head. */
  readonly units: readonly ShardedUnit[];
  /** Elements each rank holds of the weights (and of the gradient, m and v). */
  readonly shardSize: number;
  /** Parameters of the model. */
  readonly size: number;
  /** Padding elements over all ranks: ranks·shardSize − size. */
  readonly padding: number;
}

/**
 * The shard plan of `config` over `ranks`: every tensor is cut into `ranks` chunks of
 * ⌈size/ranks⌉ elements (the last rank's chunk padded with zeros, so padding is at most
 * ranks − 1 elements per tensor), and rank r's shard is its chunk of every tensor, grouped by
 * unit. Tensors of fewer than `minElements` elements (default 1024) are marked small: QSDP
 * sends them as f32.
 *
 * @example
 * ```ts
 * import { shardPlan } from "./fsdp.ts";
 * import { parseLlamaConfig } from "../model/config.ts";
 * const config = parseLlamaConfig(await Deno.readTextFile("data/models/tinyllama-bytes/config.json"));
 * const plan = shardPlan(config, 3);
 * if (plan.units.length !== config.numLayers + 2) throw new Error("embed, blocks, head");
 * if (plan.ranks * plan.shardSize !== plan.size + plan.padding) throw new Error("padding");
 * ```
 */
export function shardPlan(config: LlamaConfig, ranks: number, minElements = 1024): ShardPlan {
  if (!Number.isInteger(ranks) || ranks < 1) {
    throw new RangeError(`Cannot shard over ${quoteValue(ranks)} ranks: expected an integer ≥ 1`);
  }
  if (!(minElements >= 0)) {
    throw new RangeError(`Cannot use minElements ${quoteValue(minElements)}: expected ≥ 0`);
  }
  const layout = paramLayout(config), views = layout.views;
  const unitOf = (name: string): WeightUnit => {
    const m = /^model\.layers\.(\d+)\./.exec(name);
    if (m) return Number(m[1]);
    return name === "model.embed_tokens.weight" ? "embed" : "head";
  };
  const units: ShardedUnit[] = [];
  let shardOffset = 0;
  for (let i = 0; i < views.length;) {
    const u = unitOf(views[i]!.name), group = [];
    while (i < views.length && unitOf(views[i]!.name) === u) group.push(views[i++]!);
    const ordered = [
      ...group.filter((v) => v.size >= minElements),
      ...group.filter((v) => v.size < minElements),
    ];
    const tensors: ShardedTensor[] = [];
    let piece = 0, bigPiece = 0;
    for (const v of ordered) {
      const chunk = Math.ceil(v.size / ranks), small = v.size < minElements;
      tensors.push({ ...v, chunk, pieceOffset: piece, decay: decaysByDefault(v), small });
      piece += chunk;
      if (!small) bigPiece = piece;
    }
    units.push({
      unit: u,
      lo: group[0]!.offset,
      hi: group.at(-1)!.offset + group.at(-1)!.size,
      tensors,
      piece,
      bigPiece,
      shardOffset,
    });
    shardOffset += piece;
  }
  return {
    ranks,
    units,
    shardSize: shardOffset,
    size: layout.size,
    padding: ranks * shardOffset - layout.size,
  };
}

/** QSDP's compression (every rank must pass the same). */
export interface QsdpOptions {
  /** Bits of the weights' levels, 1 … 8, or 32 for f32 (default 8). */
  weightBits?: number;
  /** Bits of the gradients' levels, 1 … 8, or 32 for f32 (default 8). */
  gradBits?: number;
  /** Elements per quantization bucket (default 1024). */
  bucketSize?: number;
  /** Tensors with fewer elements travel as f32 (default 1024: the norms). */
  minElements?: number;
  /** Base seed of the stochastic rounding (default 0). */
  seed?: number;
  /**
   * Keep the master weights on the weights' quantization grid (the paper's iterates on the
   * lattice; default false): at the start and after every update each rank replaces the
   * quantized part of its shard by its stochastic rounding to `weightBits` (the buckets of the
   * messages), so that what the ranks gather and compute with is the master weights, up to
   * floating-point rounding. AdamW's moments stay f32.
   */
  onGrid?: boolean;
}

/** How a {@linkcode ShardedTrainer} runs. */
export interface ShardedTrainerRun {
  /** The backend every kernel runs on (default: the best available). */
  backend?: Backend;
  /** The ranks (default: a world of one). */
  comm?: Communicator;
  /** A checkpoint to continue from (each rank takes its shards of it). */
  resume?: Checkpoint;
  /** Quantize the weights' all-gathers and the gradients' reduce-scatters (QSDP). */
  qsdp?: QsdpOptions;
}

/** Bytes this rank put on the wire in a step (what it sends to the other ranks). */
export interface WireCount {
  /** Sent by the weights' all-gathers. */
  gather: number;
  /** Sent by the gradients' reduce-scatters. */
  reduceScatter: number;
  /** What the same collectives would send as f32. */
  uncompressed: number;
}

/** One sharded step's figures. */
export interface ShardedStepResult extends StepResult {
  /** Bytes on the wire (sentBytes is gather + reduceScatter). */
  wire: WireCount;
  /** A hash of every unit's gathered weights as the step computed with, in gather order. */
  gatheredHash: string;
}

/** Per-rank memory of the training state, in bytes (f32 buffers counted). */
export interface ShardedMemory {
  /** This rank's shards of the weights, gradient, m and v (4 × shardSize × 4). */
  shards: number;
  /** The most gathered weights held at once during a step. */
  peakGathered: number;
  /** The most unit gradient buffers held at once (before their reduce-scatter). */
  peakUnitGrads: number;
  /** The most communication staging buffers (send/receive) held at once. */
  peakStaging: number;
  /** QSDP: this step's quantized weight messages kept for the second gather. */
  quantCache: number;
  /** The most bytes held at once: shards + the step's gathered, gradient, staging, cache. */
  peak: number;
  /** What DDP holds for the same model: weights, gradient, m, v in full (16 bytes a parameter). */
  ddp: number;
  /** Most block units gathered at the same time (1: never all blocks at once). */
  peakUnitsHeld: number;
}

class Views implements TensorViews {
  readonly #m = new Map<string, { data: Float32Array; shape: readonly number[] }>();
  add(t: ShardedTensor, buf: Float32Array, lo: number): this {
    this.#m.set(t.name, {
      data: buf.subarray(t.offset - lo, t.offset - lo + t.size),
      shape: t.shape,
    });
    return this;
  }
  #get(name: string) {
    const v = this.#m.get(name);
    if (!v) throw new RangeError(`The gathered unit has no tensor ${quoteValue(name)}`);
    return v;
  }
  view(name: string): Float32Array {
    return this.#get(name).data;
  }
  matrix(name: string): Matrix {
    const v = this.#get(name);
    return new Matrix(v.shape[0]!, v.shape[1] ?? 1, v.data);
  }
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Fully sharded data-parallel training of a Llama model over the ranks of a communicator, with
 * the {@linkcode Trainer}'s data order, schedule and hyperparameters (so N ranks here equal N
 * ranks of DDP, to rounding) but 1/N of the weights, gradient and AdamW state per rank. Every
 * rank passes the same initial `params` (checked); the trainer copies its shard and keeps no
 * reference. Collective methods (every rank calls them, in the same order): the steps,
 * {@linkcode ShardedTrainer.evaluate}, {@linkcode ShardedTrainer.gatherParams} and
 * {@linkcode ShardedTrainer.save} (rank 0 writes). The collectives are blocking: no overlap of
 * gathers or reduce-scatters with computation.
 *
 * @example A world of one (every rank of an mpirun world runs the same)
 * ```ts
 * import { ShardedTrainer } from "./fsdp.ts";
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const params = LlamaParams.fromModel(await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" }));
 * const windows = [[256, 72, 101, 108, 108, 111, 32, 119], [256, 98, 111, 110, 106, 111, 117, 114]];
 * const t = new ShardedTrainer(params, windows, { steps: 2, microBatch: 2, warmup: 1 }, { backend: "ts" });
 * const first = t.trainStep(), second = t.trainStep();
 * if (!(second.loss < first.loss)) throw new Error("no progress on the same batch");
 * ```
 */
export class ShardedTrainer {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The hyperparameters. */
  readonly options: TrainerOptions;
  /** The backend every kernel runs on. */
  readonly backend: Backend;
  /** The ranks. */
  readonly comm: Communicator;
  /** How the parameters are split. */
  readonly plan: ShardPlan;
  /** This rank's shard of the fp32 master weights. */
  readonly weights: Float32Array;
  /** This rank's shard of the gradient. */
  readonly grad: Float32Array;
  /** This rank's shard of AdamW's first moment. */
  readonly m: Float32Array;
  /** This rank's shard of AdamW's second moment. */
  readonly v: Float32Array;
  /** Completed steps. */
  step = 0;
  readonly #sampler: WindowSampler;
  readonly #data: string;
  readonly #runs: { offset: number; size: number; decay: boolean }[] = [];
  readonly #unitIndex = new Map<string, number>();
  readonly #qsdp: Required<QsdpOptions> | undefined;
  readonly #q: QuantizedCollectives | undefined;
  #quantize = false;
  #msgCache = new Map<number, Uint8Array>();
  #unitGrads = new Map<number, Float32Array>();
  #held = new Map<number, Float32Array>();
  #live = { gathered: 0, grads: 0, staging: 0, cache: 0 };
  #peak = { gathered: 0, grads: 0, staging: 0, total: 0, units: 0, cache: 0 };
  #wire: WireCount = { gather: 0, reduceScatter: 0, uncompressed: 0 };
  #hash = 0x811c9dc5;
  #failure: Error | undefined;

  /**
   * A sharded trainer of `params` (the same on every rank) on `windows`.
   *
   * @param params The initial weights (copied: this rank keeps its shard).
   * @param windows Training sequences.
   * @param options Hyperparameters, as {@linkcode Trainer}'s (same defaults).
   * @param run Backend, ranks, a checkpoint to continue from, QSDP's compression.
   */
  constructor(
    params: LlamaParams,
    windows: readonly (readonly number[])[],
    options: Partial<Omit<TrainerOptions, "ranks">> & { steps: number },
    run: ShardedTrainerRun = {},
  ) {
    const comm = run.comm ?? createCommunicator("single");
    const o = resolveTrainerOptions(options, comm.size, run.resume);
    this.options = o;
    this.config = params.config;
    this.backend = selectBackend(run.backend);
    this.comm = comm;
    if (run.qsdp) {
      const q = run.qsdp;
      this.#qsdp = {
        weightBits: q.weightBits ?? 8,
        gradBits: q.gradBits ?? 8,
        bucketSize: q.bucketSize ?? 1024,
        minElements: q.minElements ?? 1024,
        seed: q.seed ?? 0,
        onGrid: q.onGrid ?? false,
      };
      for (const k of ["weightBits", "gradBits"] as const) {
        const b = this.#qsdp[k];
        if (b !== 32) quantizedBytes(0, { bits: b, bucketSize: this.#qsdp.bucketSize });
      }
      if (this.#qsdp.gradBits !== 32) {
        this.#q = new QuantizedCollectives(comm, {
          bits: this.#qsdp.gradBits,
          bucketSize: this.#qsdp.bucketSize,
          minElements: 0,
          seed: this.#qsdp.seed,
        });
      }
    }
    this.plan = shardPlan(params.config, comm.size, this.#qsdp?.minElements ?? 1024);
    const n = this.plan.shardSize;
    this.weights = new Float32Array(n);
    this.grad = new Float32Array(n);
    this.m = new Float32Array(n);
    this.v = new Float32Array(n);
    this.plan.units.forEach((u, i) => u.tensors.forEach((t) => this.#unitIndex.set(t.name, i)));
    for (const u of this.plan.units) {
      for (const t of u.tensors) {
        const decay = o.decayAll || t.decay, last = this.#runs.at(-1);
        const offset = u.shardOffset + t.pieceOffset;
        if (last && last.decay === decay && last.offset + last.size === offset) {
          last.size += t.chunk;
        } else this.#runs.push({ offset, size: t.chunk, decay });
      }
    }
    this.#data = windowsFingerprint(windows);
    const r = run.resume;
    if (r) {
      if (r.state.data !== this.#data) {
        throw new RangeError(
          `The checkpoint in '${r.dir}' was trained on other data (${r.state.data}), not these ${windows.length} windows (${this.#data})`,
        );
      }
      this.#shardOf(r.params.data, this.weights);
      this.#shardOf(r.m.data, this.m);
      this.#shardOf(r.v.data, this.v);
      this.step = r.state.step;
    } else {
      checkReplicas(comm, [params.data], "at the start (every rank must pass the same weights)");
      this.#shardOf(params.data, this.weights);
      this.#project(0);
    }
    this.#sampler = new WindowSampler(
      windows,
      o.seed,
      r?.state.sampler as SamplerState | undefined,
    );
  }

  /** This rank's chunks of a full buffer (layout order) into `out` (the padding stays 0). */
  #shardOf(full: Float32Array, out: Float32Array): void {
    const rank = this.comm.rank;
    for (const u of this.plan.units) {
      for (const t of u.tensors) {
        const from = t.offset + rank * t.chunk,
          len = Math.max(0, Math.min(t.chunk, t.size - rank * t.chunk));
        out.set(full.subarray(from, from + len), u.shardOffset + t.pieceOffset);
      }
    }
  }

  /**
   * QSDP's `onGrid`: the quantized part of each unit's piece of this rank's shard replaced by
   * its stochastic rounding to the weights' levels (after step `step`; 0 at the start).
   */
  #project(step: number): void {
    const q = this.#qsdp;
    if (!q?.onGrid || q.weightBits === 32) return;
    const spec = { bits: q.weightBits, bucketSize: q.bucketSize };
    this.plan.units.forEach((u, i) => {
      if (u.bigPiece === 0) return;
      const x = this.weights.subarray(u.shardOffset, u.shardOffset + u.bigPiece);
      const seed = deriveSeed(q.seed, step, i, this.comm.rank, 1);
      dequantizeBuckets(quantizeBuckets(x, { ...spec, seed }), u.bigPiece, spec, x);
    });
  }

  /** The learning rate of step `t`. */
  learningRate(t: number): number {
    const o = this.options;
    return learningRate(t, { lr: o.lr, warmup: o.warmup, total: o.steps, minLr: o.minLr });
  }

  /** The memory this rank's training state took, in bytes (peaks since the start). */
  memory(): ShardedMemory {
    const shards = 4 * 4 * this.plan.shardSize, p = this.#peak;
    return {
      shards,
      peakGathered: p.gathered,
      peakUnitGrads: p.grads,
      peakStaging: p.staging,
      quantCache: p.cache,
      peak: shards + p.total,
      ddp: 16 * this.plan.size,
      peakUnitsHeld: p.units,
    };
  }

  #track(kind: "gathered" | "grads" | "staging" | "cache", bytes: number): void {
    const l = this.#live, p = this.#peak;
    l[kind] += bytes;
    p[kind] = Math.max(p[kind], l[kind]);
    p.total = Math.max(p.total, l.gathered + l.grads + l.staging + l.cache);
  }

  // ---- gathers ----

  /** This rank's message of unit i: f32 piece, or (QSDP) quantized big part + f32 small part. */
  #message(i: number): Uint8Array {
    const u = this.plan.units[i]!,
      piece = this.weights.subarray(u.shardOffset, u.shardOffset + u.piece);
    const q = this.#qsdp;
    if (!this.#quantize || !q || q.weightBits === 32 || u.bigPiece === 0) return bytesOf(piece);
    const cached = this.#msgCache.get(i);
    if (cached) return cached;
    const spec = { bits: q.weightBits, bucketSize: q.bucketSize };
    const qb = quantizedBytes(u.bigPiece, spec), small = u.piece - u.bigPiece;
    const msg = new Uint8Array(qb + 4 * small);
    let err: Error | undefined;
    try {
      quantizeBuckets(piece.subarray(0, u.bigPiece), {
        ...spec,
        seed: deriveSeed(q.seed, this.step + 1, i, this.comm.rank),
      }, msg.subarray(0, qb));
    } catch (e) {
      if (!(e instanceof NumericalError)) throw e;
      err = e; // send NaN metadata: every rank fails the step
      new DataView(msg.buffer).setFloat32(0, NaN, true);
    }
    msg.set(bytesOf(piece.subarray(u.bigPiece)), qb);
    if (err) this.#failure ??= err;
    this.#msgCache.set(i, msg);
    this.#track("cache", msg.byteLength);
    return msg;
  }

  /** Unit i's weights gathered from every rank into a buffer of the unit's layout. */
  #gather(i: number): Float32Array {
    const u = this.plan.units[i]!, N = this.comm.size, msg = this.#message(i);
    this.#track("staging", N * msg.byteLength);
    const all = this.comm.allGatherSync(msg);
    this.#wire.gather += (N - 1) * msg.byteLength;
    this.#wire.uncompressed += (N - 1) * 4 * u.piece;
    let f32: Float32Array;
    if (msg.byteLength === 4 * u.piece) {
      f32 = new Float32Array(all.buffer, all.byteOffset, N * u.piece);
    } else {
      const q = this.#qsdp!, spec = { bits: q.weightBits, bucketSize: q.bucketSize };
      const qb = quantizedBytes(u.bigPiece, spec), b = msg.byteLength;
      f32 = new Float32Array(N * u.piece);
      this.#track("staging", f32.byteLength);
      for (let r = 0; r < N; r++) {
        const m = all.subarray(r * b, (r + 1) * b);
        dequantizeBuckets(
          m.subarray(0, qb),
          u.bigPiece,
          spec,
          f32.subarray(r * u.piece, r * u.piece + u.bigPiece),
        );
        f32.set(
          new Float32Array(m.slice(qb).buffer),
          r * u.piece + u.bigPiece,
        );
      }
      this.#track("staging", -f32.byteLength);
    }
    const out = new Float32Array(u.hi - u.lo);
    this.#track("gathered", out.byteLength);
    for (let r = 0; r < N; r++) {
      for (const t of u.tensors) {
        const len = Math.max(0, Math.min(t.chunk, t.size - r * t.chunk));
        const from = r * u.piece + t.pieceOffset;
        out.set(f32.subarray(from, from + len), t.offset - u.lo + r * t.chunk);
      }
    }
    this.#track("staging", -N * msg.byteLength);
    // the hash of what this rank computes with (FNV over the bits)
    const w = new Uint32Array(out.buffer);
    let h = this.#hash;
    for (let k = 0; k < w.length; k++) h = Math.imul(h ^ w[k]!, 0x01000193);
    this.#hash = h;
    return out;
  }

  #index(unit: WeightUnit): number {
    return unit === "embed" ? 0 : unit === "head" ? this.plan.units.length - 1 : unit + 1;
  }

  /** The units unit's views need (the head with tied embeddings needs the embedding too). */
  #needs(unit: WeightUnit): number[] {
    const i = this.#index(unit);
    return unit === "head" && this.config.tieWordEmbeddings ? [i, 0] : [i];
  }

  #source(): WeightSource {
    return {
      acquire: (unit: WeightUnit, _phase: WeightPhase) => {
        const views = new Views();
        for (const i of this.#needs(unit)) {
          const buf = this.#gather(i), u = this.plan.units[i]!;
          this.#held.set(i, buf);
          for (const t of u.tensors) views.add(t, buf, u.lo);
        }
        this.#peak.units = Math.max(
          this.#peak.units,
          [...this.#held.keys()].filter((k) => k > 0 && k < this.plan.units.length - 1).length,
        );
        return views;
      },
      release: (unit: WeightUnit) => {
        for (const i of this.#needs(unit)) {
          const b = this.#held.get(i);
          if (b) this.#track("gathered", -b.byteLength);
          this.#held.delete(i);
        }
      },
      grads: (unit: WeightUnit) => {
        const views = new Views();
        for (const i of this.#needs(unit)) {
          const u = this.plan.units[i]!;
          let g = this.#unitGrads.get(i);
          if (!g) {
            g = new Float32Array(u.hi - u.lo);
            this.#track("grads", g.byteLength);
            this.#unitGrads.set(i, g);
          }
          for (const t of u.tensors) views.add(t, g, u.lo);
        }
        return views;
      },
    };
  }

  // ---- reduce-scatters ----

  /** Unit i's gradient is final: reduce-scatter it, add this rank's piece into the shard grad. */
  #reduce(i: number): void {
    const u = this.plan.units[i]!, N = this.comm.size;
    const g = this.#unitGrads.get(i) ?? new Float32Array(u.hi - u.lo);
    const q = this.#q, split = q ? u.bigPiece : 0, small = u.piece - split;
    const big = new Float32Array(N * split), rest = new Float32Array(N * small);
    this.#track("staging", big.byteLength + rest.byteLength);
    for (let j = 0; j < N; j++) {
      for (const t of u.tensors) {
        const len = Math.max(0, Math.min(t.chunk, t.size - j * t.chunk));
        const src = g.subarray(t.offset - u.lo + j * t.chunk, t.offset - u.lo + j * t.chunk + len);
        if (t.pieceOffset < split) big.set(src, j * split + t.pieceOffset);
        else rest.set(src, j * small + t.pieceOffset - split);
      }
    }
    if (this.#unitGrads.delete(i)) this.#track("grads", -g.byteLength);
    const dst = this.grad.subarray(u.shardOffset, u.shardOffset + u.piece);
    const add = (x: Float32Array, at: number) => {
      for (let k = 0; k < x.length; k++) dst[at + k]! += x[k]!;
    };
    if (split > 0) {
      let out: Float32Array;
      try {
        const r = q!.reduceScatterSync(big);
        this.#wire.reduceScatter += r.bytes.sent;
        out = r.out;
      } catch (e) {
        if (!(e instanceof NumericalError)) throw e;
        this.#failure ??= e;
        this.#wire.reduceScatter += (N - 1) * q!.messageBytes(split);
        out = new Float32Array(split).fill(NaN);
      }
      add(out, 0);
    }
    if (small > 0) {
      add(this.comm.reduceScatterSync(rest), split);
      this.#wire.reduceScatter += (N - 1) * 4 * small;
    }
    this.#wire.uncompressed += (N - 1) * 4 * u.piece;
    this.#track("staging", -(big.byteLength + rest.byteLength));
  }

  #onReady = (names: readonly string[]) => this.#reduce(this.#unitIndex.get(names[0]!)!);

  /** Every collective of a micro-batch, with no data (a rank whose share has no targets). */
  #idle(): void {
    const src = this.#source(), c = this.config;
    for (
      const u of [
        "embed",
        ...Array.from({ length: c.numLayers }, (_, l) => l),
        "head",
      ] as const
    ) {
      src.acquire(u as WeightUnit, "forward");
      src.release(u as WeightUnit, "forward");
    }
    this.#onReady(["model.norm.weight"]);
    for (let l = c.numLayers - 1; l >= 0; l--) {
      src.acquire(l, "backward");
      src.release(l, "backward");
      this.#onReady([`model.layers.${l}.input_layernorm.weight`]);
    }
    this.#onReady(["model.embed_tokens.weight"]);
  }

  // ---- steps ----

  /** One optimiser step on the sampler's next micro-batches (this rank's share). */
  trainStep(): ShardedStepResult {
    return this.trainStepOn(this.#draw());
  }

  /** {@linkcode ShardedTrainer.trainStep} as a Promise (the collectives still block). */
  trainStepAsync(): Promise<ShardedStepResult> {
    return Promise.resolve(this.trainStep());
  }

  /**
   * One optimiser step on given micro-batches (this rank's share; every rank passes as many):
   * the loss and gradient with per-unit gathers, the gradient reduce-scattered, checked finite
   * and clipped globally, and AdamW on this rank's shard. A NaN or ±Inf loss or gradient on any
   * rank throws a {@linkcode NumericalError} on every rank and leaves the shards as they were.
   */
  trainStepOn(batches: readonly TokenBatch[]): ShardedStepResult {
    const step = this.step + 1, o = this.options, comm = this.comm;
    const count = new Float64Array([batches.reduce((a, b) => a + countTargets(b), 0)]);
    comm.allReduceSync(count);
    const tokens = count[0]!;
    if (tokens === 0) throw new RangeError(`Step ${step}: the batch has no target tokens`);
    this.grad.fill(0);
    this.#wire = { gather: 0, reduceScatter: 0, uncompressed: 0 };
    this.#hash = 0x811c9dc5;
    this.#failure = undefined;
    this.#quantize = true;
    this.#msgCache = new Map();
    let sum = 0, failure: string | undefined;
    try {
      for (const b of batches) {
        if (countTargets(b) === 0) {
          this.#idle();
          continue;
        }
        const r = shardedLossAndGrad(this.config, b, this.#source(), {
          backend: this.backend,
          scale: 1 / tokens,
          onGradsReady: this.#onReady,
        });
        if (!Number.isFinite(r.sumLoss) && failure === undefined) {
          failure = `the loss is ${r.sumLoss}`;
        }
        sum += r.sumLoss;
      }
    } finally {
      this.#quantize = false;
      this.#track("cache", -this.#live.cache);
      this.#msgCache = new Map();
    }
    // the loss, the squared norm and the finite flag of every rank's shard, in one all-reduce
    let sq = 0, bad = -1;
    const g = this.grad;
    for (let k = 0; k < g.length; k++) {
      const x = g[k]!;
      sq += x * x;
      if (bad < 0 && !Number.isFinite(x)) bad = k;
    }
    const failed = this.#failure as Error | undefined;
    const red = new Float64Array([sum, sq, bad >= 0 || failed ? 1 : 0]);
    comm.allReduceSync(red);
    const loss = red[0]! / tokens;
    if (!Number.isFinite(loss)) {
      const where = failure !== undefined ? ` on rank ${comm.rank}` : " on another rank";
      throw new NumericalError(
        `Step ${step}: the loss is ${loss}${where}; the update was not applied`,
      );
    }
    if (red[2]! > 0) {
      const what = bad >= 0
        ? this.#describe(bad)
        : failed
        ? `: a quantized collective failed on rank ${comm.rank} (${failed.message})`
        : " on another rank";
      throw new NumericalError(
        `Step ${step}: the gradient is not finite${what}; the update was not applied`,
      );
    }
    const norm = Math.sqrt(red[1]!);
    if (o.clip > 0) {
      const coef = o.clip / (norm + 1e-6);
      if (coef < 1) {
        const c = Math.fround(coef);
        for (let k = 0; k < g.length; k++) g[k] = g[k]! * c;
      }
    }
    const lr = this.learningRate(step);
    for (const r of this.#runs) {
      const s = (b: Float32Array) => b.subarray(r.offset, r.offset + r.size);
      adamwStep(s(this.weights), s(g), s(this.m), s(this.v), {
        lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: r.decay ? o.weightDecay : 0,
        step,
      }, { backend: this.backend });
    }
    this.#project(step);
    this.step = step;
    const wire = this.#wire;
    return {
      step,
      loss,
      lr,
      gradNorm: norm,
      tokens,
      waitSeconds: 0,
      sentBytes: wire.gather + wire.reduceScatter,
      wire,
      gatheredHash: (this.#hash >>> 0).toString(16).padStart(8, "0"),
    };
  }

  /** "in 'name' at element i (value)" for shard element k. */
  #describe(k: number): string {
    const rank = this.comm.rank;
    for (const u of this.plan.units) {
      for (const t of u.tensors) {
        const at = u.shardOffset + t.pieceOffset;
        if (k >= at && k < at + t.chunk) {
          return ` in '${t.name}' at element ${rank * t.chunk + k - at} (${
            this.grad[k]
          }) on rank ${rank}`;
        }
      }
    }
    return ` at shard element ${k} on rank ${rank}`;
  }

  #draw(): TokenBatch[] {
    return this.#sampler.nextStep(this.options, this.comm.rank, this.comm.size);
  }

  /**
   * Mean loss and bits per byte over held-out batches (every rank passes the same; each
   * evaluates every N-th with the fp32 master weights gathered unit by unit).
   */
  evaluate(batches: readonly TokenBatch[]): { loss: number; bitsPerByte: number; tokens: number } {
    const sums = new Float64Array(3), { rank, size } = this.comm;
    const rounds = Math.ceil(batches.length / size);
    for (let k = 0; k < rounds; k++) {
      const b = batches[k * size + rank];
      const src = this.#source();
      if (!b || countTargets(b) === 0) {
        for (
          const u of [
            "embed",
            ...Array.from({ length: this.config.numLayers }, (_, l) => l),
            "head",
          ]
        ) {
          src.acquire(u as WeightUnit, "forward");
          src.release(u as WeightUnit, "forward");
        }
        continue;
      }
      const r = shardedBatchLoss(this.config, b, src, { backend: this.backend });
      sums[0]! += r.sumLoss;
      sums[1]! += r.tokens;
      sums[2]! += r.byteTargets;
    }
    this.comm.allReduceSync(sums);
    const [nats, tokens, bytes] = sums as unknown as [number, number, number];
    return { loss: nats / tokens, bitsPerByte: bytes ? nats / Math.LN2 / bytes : NaN, tokens };
  }

  /** A full buffer (layout order) from every rank's shard of `shard` (collective). */
  #unshard(shard: Float32Array): Float32Array {
    const all = this.comm.allGatherSync(bytesOf(shard)), n = this.plan.shardSize;
    const f = new Float32Array(all.buffer, all.byteOffset, this.comm.size * n);
    const out = new Float32Array(this.plan.size);
    for (let r = 0; r < this.comm.size; r++) {
      for (const u of this.plan.units) {
        for (const t of u.tensors) {
          const len = Math.max(0, Math.min(t.chunk, t.size - r * t.chunk));
          const from = r * n + u.shardOffset + t.pieceOffset;
          out.set(f.subarray(from, from + len), t.offset + r * t.chunk);
        }
      }
    }
    return out;
  }

  /** The full fp32 master weights (collective; every rank gets them). */
  gatherParams(): LlamaParams {
    return new LlamaParams(this.config, this.#unshard(this.weights));
  }

  /** A hash of the full master weights and moments, the same on every rank (collective). */
  stateHash(): string {
    return bitsHash([this.#unshard(this.weights), this.#unshard(this.m), this.#unshard(this.v)]);
  }

  /**
   * Saves a checkpoint under `root` in the {@linkcode Trainer}'s format (a 1-process or DDP
   * run with as many ranks can resume it). Collective: every rank gathers the full state, rank
   * 0 writes and returns the folder, the others return "".
   */
  async save(
    root: string,
    options: SaveTrainedModelOptions & { keep?: number } = {},
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    const params = this.gatherParams();
    const opt = new AdamW(params, this.options);
    opt.m.data.set(this.#unshard(this.m));
    opt.v.data.set(this.#unshard(this.v));
    opt.step = this.step;
    if (this.comm.rank !== 0) return "";
    return await saveCheckpoint(root, params, opt, {
      ...extra,
      step: this.step,
      sampler: this.#sampler.state(),
      options: this.options,
      data: this.#data,
    }, options);
  }
}
