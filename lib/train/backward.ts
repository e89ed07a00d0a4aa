/**
 * The loss of a Llama model on a token batch and the gradient of every parameter: a forward pass
 * that keeps what the backward needs (and nothing it can recompute cheaply), then the backward of
 * every op, each a kernel with ts, cpu and cuda implementations.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import {
  applyRope,
  attentionBackward,
  type Backend,
  causalAttention,
  crossEntropy,
  embeddingBackward,
  gemm,
  IGNORE_TARGET,
  rmsNormBackward,
  rmsNormForward,
  selectBackend,
  swiglu,
  swigluBackward,
} from "../kernels/mod.ts";
import { LINEAR_NAMES, type LinearName, linearTensorName, ropeTable } from "../model/llama.ts";
import type { LlamaConfig } from "../model/config.ts";
import { checkBatch, type TokenBatch } from "./data.ts";
import { headTensorName, type LlamaParams } from "./params.ts";

/** Options of {@linkcode lossAndGrad}. */
export interface LossAndGradOptions {
  /** Kernel backend (default: the best available). */
  backend?: Backend;
  /** Add the gradient into this buffer (gradient accumulation) instead of a new one. */
  grad?: LlamaParams;
  /**
   * Multiplier of the summed token losses whose gradient is taken (default 1/the batch's target
   * count: the mean). Accumulating micro-batches pass 1/(all micro-batches' targets).
   */
  scale?: number;
  /**
   * Called as the backward finishes tensors' gradients (their final values for this batch), in
   * backward order: the final norm and lm_head, then each block from the last to the first,
   * then the embedding (with tied embeddings, it and the head's share come last). Data-parallel
   * training starts all-reducing a bucket when its tensors are ready.
   */
  onGradsReady?: (names: readonly string[]) => void;
}

/** What {@linkcode lossAndGrad} returns. */
export interface LossAndGrad {
  /** Mean cross-entropy (nats) over the batch's targets. */
  loss: number;
  /** Summed cross-entropy (nats). */
  sumLoss: number;
  /** Targets that counted. */
  tokens: number;
  /** Targets that are bytes (ids < 256), for bits per byte with a byte tokenizer. */
  byteTargets: number;
  /** The gradient of scale·sumLoss (undefined from {@linkcode batchLoss}). */
  grad: LlamaParams;
}

/**
 * A unit of weights that {@linkcode shardedLossAndGrad} fetches on demand: transformer block
 * `l`, the embedding, or the head (the final norm and lm_head; with tied embeddings the
 * embedding too).
 */
export type WeightUnit = number | "embed" | "head";

/** Whether a unit's weights are fetched for its forward or for its backward. */
export type WeightPhase = "forward" | "backward";

/** Named f32 tensors with the views of {@linkcode LlamaParams} (which is one). */
export interface TensorViews {
  /** The elements of tensor `name` (writes go to the buffer). */
  view(name: string): Float32Array;
  /** Tensor `name` (2-D) as a matrix over the buffer. */
  matrix(name: string): Matrix;
}

/**
 * Where {@linkcode shardedLossAndGrad} gets each unit's weights and puts its gradients (fully
 * sharded training: the weights are gathered just before use and freed after). A unit is
 * acquired before its forward and released after it, then acquired again before its backward
 * and released after that: the embedding for its forward only (its backward needs no weights),
 * the head once for its forward and backward together. The views stay valid until released.
 */
export interface WeightSource {
  /** The weights of `unit`'s tensors for `phase`. */
  acquire(unit: WeightUnit, phase: WeightPhase): TensorViews;
  /** The views of the last acquire of `unit` are no longer used. */
  release(unit: WeightUnit, phase: WeightPhase): void;
  /**
   * The gradient buffers of `unit`'s tensors, added into (the head's include the tied
   * embedding's); final once `onGradsReady` reports them.
   */
  grads(unit: WeightUnit): TensorViews;
}

interface Seq {
  row: number;
  len: number;
  off: number;
}

interface LayerSaved {
  h: Matrix;
  rstd1: Float32Array;
  q: Matrix;
  kc: Float32Array;
  vc: Float32Array;
  att: Matrix;
  h1: Matrix;
  rstd2: Float32Array;
  gate: Matrix;
  up: Matrix;
}

/** The sequences of a batch cut after their last counted target (later positions change nothing). */
function sequences(c: LlamaConfig, b: TokenBatch): { seqs: Seq[]; tokens: number } {
  checkBatch(b);
  const seqs: Seq[] = [];
  let off = 0, tokens = 0;
  for (let r = 0; r < b.rows; r++) {
    let len = 0;
    for (let t = 0; t < b.seqLen; t++) {
      const y = b.targets[r * b.seqLen + t]!;
      if (y === IGNORE_TARGET) continue;
      if (!Number.isInteger(y) || y < 0 || y >= c.vocabSize) {
        throw new RangeError(
          `Target ${y} at sequence ${r}, position ${t} is outside the vocabulary [0, ${c.vocabSize}) and is not ${IGNORE_TARGET}`,
        );
      }
      len = t + 1;
      tokens++;
    }
    if (len === 0) continue;
    if (len > c.maxPositionEmbeddings) {
      throw new RangeError(
        `Sequence ${r} has ${len} positions, more than the model's context of ${c.maxPositionEmbeddings} (max_position_embeddings)`,
      );
    }
    for (let t = 0; t < len; t++) {
      const id = b.inputs[r * b.seqLen + t]!;
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) {
        throw new RangeError(
          `Token id ${id} at sequence ${r}, position ${t} is outside the vocabulary [0, ${c.vocabSize})`,
        );
      }
    }
    seqs.push({ row: r, len, off });
    off += len;
  }
  if (tokens === 0) throw new RangeError("The batch has no target tokens: every target is ignored");
  return { seqs, tokens };
}

/** Rows of a matrix as a matrix (no copy). */
function rowsOf(m: Matrix, off: number, len: number): Matrix {
  return new Matrix(len, m.cols, m.data.subarray(off * m.cols, (off + len) * m.cols));
}

/** k or v rows (N × kv·d) into per-sequence cache layout (kv × len × d, sequences one after another). */
function toHeads(x: Matrix, seqs: Seq[], kv: number, d: number): Float32Array {
  const out = new Float32Array(x.data.length), w = kv * d;
  for (const s of seqs) {
    const base = s.off * w;
    for (let t = 0; t < s.len; t++) {
      for (let g = 0; g < kv; g++) {
        out.set(
          x.data.subarray((s.off + t) * w + g * d, (s.off + t) * w + (g + 1) * d),
          base + (g * s.len + t) * d,
        );
      }
    }
  }
  return out;
}

/** The inverse of {@linkcode toHeads}. */
function fromHeads(c: Float32Array, seqs: Seq[], kv: number, d: number): Matrix {
  const w = kv * d, out = new Matrix(c.length / w, w, new Float32Array(c.length));
  for (const s of seqs) {
    const base = s.off * w;
    for (let t = 0; t < s.len; t++) {
      for (let g = 0; g < kv; g++) {
        out.data.set(
          c.subarray(base + (g * s.len + t) * d, base + (g * s.len + t + 1) * d),
          (s.off + t) * w + g * d,
        );
      }
    }
  }
  return out;
}

function addInto(a: Matrix, b: Matrix): Matrix {
  const x = a.data, y = b.data;
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
  return a;
}

/**
 * The forward pass; with `keep`, what the backward needs per layer. Returns the final hidden
 * states and the ids, positions and sequences.
 */
function forward(
  c: LlamaConfig,
  src: WeightSource,
  seqs: Seq[],
  b: TokenBatch,
  backend: Backend,
  keep: boolean,
) {
  const o = { backend }, d = c.hiddenSize, hd = c.headDim;
  const N = seqs.reduce((a, s) => a + s.len, 0);
  const ids = new Int32Array(N), positions: number[] = [];
  for (const s of seqs) {
    for (let t = 0; t < s.len; t++) {
      ids[s.off + t] = b.inputs[s.row * b.seqLen + t]!;
      positions.push(t);
    }
  }
  const rope = ropeTable(c, positions);
  const embed = src.acquire("embed", "forward").view("model.embed_tokens.weight");
  let h = Matrix.zeros(N, d);
  for (let i = 0; i < N; i++) h.data.set(embed.subarray(ids[i]! * d, (ids[i]! + 1) * d), i * d);
  src.release("embed", "forward");
  const saved: LayerSaved[] = [];
  let p: TensorViews;
  const lin = (x: Matrix, l: number, n: LinearName) =>
    gemm(x, p.matrix(linearTensorName(l, n)), { ...o, transB: true });
  for (let l = 0; l < c.numLayers; l++) {
    const pre = `model.layers.${l}`;
    p = src.acquire(l, "forward");
    const n1 = rmsNormForward(h, p.view(`${pre}.input_layernorm.weight`), c.rmsNormEps, o);
    const q = applyRope(lin(n1.y, l, "q_proj"), rope.cos, rope.sin, hd, o);
    const k = applyRope(lin(n1.y, l, "k_proj"), rope.cos, rope.sin, hd, o);
    const kc = toHeads(k, seqs, c.numKvHeads, hd);
    const vc = toHeads(lin(n1.y, l, "v_proj"), seqs, c.numKvHeads, hd);
    const att = Matrix.zeros(N, c.numHeads * hd);
    for (const s of seqs) {
      const w = c.numKvHeads * hd;
      const a = causalAttention(
        rowsOf(q, s.off, s.len),
        kc.subarray(s.off * w, (s.off + s.len) * w),
        vc.subarray(s.off * w, (s.off + s.len) * w),
        { start: 0, heads: c.numHeads, kvHeads: c.numKvHeads, headDim: hd, capacity: s.len },
        o,
      );
      att.data.set(a.data, s.off * att.cols);
    }
    const h1 = addInto(lin(att, l, "o_proj"), h);
    const n2 = rmsNormForward(
      h1,
      p.view(`${pre}.post_attention_layernorm.weight`),
      c.rmsNormEps,
      o,
    );
    const gate = lin(n2.y, l, "gate_proj"), up = lin(n2.y, l, "up_proj");
    const h2 = addInto(lin(swiglu(gate, up, o), l, "down_proj"), h1);
    src.release(l, "forward");
    if (keep) saved.push({ h, rstd1: n1.rstd, q, kc, vc, att, h1, rstd2: n2.rstd, gate, up });
    h = h2;
  }
  return { h, ids, rope, saved, N };
}

/** Targets of the kept rows, in row order. */
function rowTargets(seqs: Seq[], b: TokenBatch, N: number): Int32Array {
  const y = new Int32Array(N);
  for (const s of seqs) {
    for (let t = 0; t < s.len; t++) y[s.off + t] = b.targets[s.row * b.seqLen + t]!;
  }
  return y;
}

function byteCount(targets: Int32Array): number {
  let n = 0;
  for (const t of targets) if (t !== IGNORE_TARGET && t < 256) n++;
  return n;
}

/**
 * Mean next-token cross-entropy of the model whose parameters are `params` over the counted
 * targets of `batch`, and the gradient of every parameter (embedding, projections, RMSNorm
 * weights, final norm, lm_head, or the tied embedding). Positions after a sequence's last counted
 * target are not computed (causal attention: they change nothing before them).
 *
 * @example
 * ```ts
 * import { lossAndGrad } from "./backward.ts";
 * import { batchFromSequences } from "./data.ts";
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const params = LlamaParams.fromModel(model);
 * const batch = batchFromSequences([[256, 72, 101, 108, 108, 111]]); // BOS "Hello"
 * const { loss, tokens, grad } = lossAndGrad(params, batch, { backend: "ts" });
 * if (tokens !== 5 || !(loss > 0) || grad.view("model.norm.weight").every((g) => g === 0)) throw new Error();
 * ```
 */
export function lossAndGrad(
  params: LlamaParams,
  batch: TokenBatch,
  options: LossAndGradOptions = {},
): LossAndGrad {
  const grad = options.grad ?? params.zerosLike();
  if (grad.layout.size !== params.layout.size) {
    throw new RangeError(
      `The gradient buffer holds ${grad.layout.size} values, expected ${params.layout.size}`,
    );
  }
  const src: WeightSource = { acquire: () => params, release: () => {}, grads: () => grad };
  return { ...lossAndGradOf(params.config, batch, src, options, false), grad };
}

/** Options of {@linkcode shardedLossAndGrad}. */
export type ShardedLossAndGradOptions = Omit<LossAndGradOptions, "grad">;

/**
 * {@linkcode lossAndGrad} with the weights fetched unit by unit from `source` (acquired just
 * before each unit's forward and backward, released after) and the gradient added into the
 * buffers it gives, for fully sharded training (lib/train/fsdp.ts). Same operations in the same
 * order as lossAndGrad, so the same bits for the same weights. A non-finite loss does not throw:
 * the backward goes on with a zero loss gradient (so that every rank takes part in every
 * collective the source runs) and `sumLoss` is returned non-finite; the caller fails the step.
 *
 * @example One source over a whole parameter buffer (what lossAndGrad does)
 * ```ts
 * import { lossAndGrad, shardedLossAndGrad } from "./backward.ts";
 * import { batchFromSequences } from "./data.ts";
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const params = LlamaParams.fromModel(await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" }));
 * const batch = batchFromSequences([[256, 72, 101, 108, 108, 111]]);
 * const grad = params.zerosLike(), units: string[] = [];
 * const r = shardedLossAndGrad(params.config, batch, {
 *   acquire: (unit, phase) => (units.push(`${unit} ${phase}`), params),
 *   release: () => {},
 *   grads: () => grad,
 * }, { backend: "ts" });
 * const full = lossAndGrad(params, batch, { backend: "ts" });
 * if (r.loss !== full.loss || grad.data.some((g, i) => g !== full.grad.data[i])) throw new Error();
 * if (units[0] !== "embed forward" || units.at(-1) !== "0 backward") throw new Error();
 * ```
 */
export function shardedLossAndGrad(
  config: LlamaConfig,
  batch: TokenBatch,
  source: WeightSource,
  options: ShardedLossAndGradOptions = {},
): Omit<LossAndGrad, "grad"> {
  return lossAndGradOf(config, batch, source, options, true);
}

function lossAndGradOf(
  c: LlamaConfig,
  batch: TokenBatch,
  src: WeightSource,
  options: ShardedLossAndGradOptions,
  carry: boolean,
): Omit<LossAndGrad, "grad"> {
  const backend = selectBackend(options.backend), o = { backend };
  const hd = c.headDim, KV = c.numKvHeads;
  const { seqs, tokens } = sequences(c, batch);
  const scale = options.scale ?? 1 / tokens;
  if (!Number.isFinite(scale)) throw new RangeError(`Loss scale ${scale} is not finite`);
  const f = forward(c, src, seqs, batch, backend, true);
  // head: final norm, lm_head, cross-entropy
  const headW = src.acquire("head", "forward");
  const nf = rmsNormForward(f.h, headW.view("model.norm.weight"), c.rmsNormEps, o);
  const headName = headTensorName(c);
  const logits = gemm(nf.y, headW.matrix(headName), { ...o, transB: true });
  const targets = rowTargets(seqs, batch, f.N);
  const ce = crossEntropy(logits, targets, scale, o);
  let sumLoss = 0;
  for (const v of ce.loss) sumLoss += v;
  if (!Number.isFinite(sumLoss)) {
    if (!carry) throw new NumericalError(`The loss is ${sumLoss}`);
    ce.dlogits.data.fill(0);
  }
  const headG = src.grads("head");
  gemm(ce.dlogits, nf.y, { ...o, transA: true, accumulate: headG.matrix(headName) });
  let dh = rmsNormBackward(
    gemm(ce.dlogits, headW.matrix(headName), o),
    f.h,
    headW.view("model.norm.weight"),
    nf.rstd,
    headG.view("model.norm.weight"),
    o,
  );
  src.release("head", "forward");
  const ready = options.onGradsReady ?? (() => {});
  ready(c.tieWordEmbeddings ? ["model.norm.weight"] : ["model.norm.weight", headName]);
  for (let l = c.numLayers - 1; l >= 0; l--) {
    const s = f.saved[l]!, pre = `model.layers.${l}`;
    const params = src.acquire(l, "backward"), grad = src.grads(l);
    const W = (n: LinearName) => params.matrix(linearTensorName(l, n));
    const dW = (n: LinearName) => grad.matrix(linearTensorName(l, n));
    const wGrad = (dy: Matrix, x: Matrix, n: LinearName) =>
      gemm(dy, x, { ...o, transA: true, accumulate: dW(n) });
    // MLP (the normalised input and the activation are recomputed, not kept)
    const postW = params.view(`${pre}.post_attention_layernorm.weight`);
    const n2 = rmsNormForward(s.h1, postW, c.rmsNormEps, o).y;
    wGrad(dh, swiglu(s.gate, s.up, o), "down_proj");
    const { dgate, dup } = swigluBackward(s.gate, s.up, gemm(dh, W("down_proj"), o), o);
    wGrad(dgate, n2, "gate_proj");
    wGrad(dup, n2, "up_proj");
    const dn2 = gemm(dup, W("up_proj"), { ...o, accumulate: gemm(dgate, W("gate_proj"), o) });
    const dh1 = addInto(
      rmsNormBackward(
        dn2,
        s.h1,
        postW,
        s.rstd2,
        grad.view(`${pre}.post_attention_layernorm.weight`),
        o,
      ),
      dh,
    );
    // attention
    wGrad(dh1, s.att, "o_proj");
    const datt = gemm(dh1, W("o_proj"), o);
    const dq = Matrix.zeros(f.N, c.numHeads * hd);
    const dkc = new Float32Array(s.kc.length), dvc = new Float32Array(s.vc.length);
    for (const q of seqs) {
      const w = KV * hd, lo = q.off * w, hi = (q.off + q.len) * w;
      const g = attentionBackward(
        rowsOf(s.q, q.off, q.len),
        s.kc.subarray(lo, hi),
        s.vc.subarray(lo, hi),
        rowsOf(datt, q.off, q.len),
        { heads: c.numHeads, kvHeads: KV, headDim: hd },
        o,
      );
      dq.data.set(g.dq.data, q.off * dq.cols);
      dkc.set(g.dk, lo);
      dvc.set(g.dv, lo);
    }
    applyRope(dq, f.rope.cos, f.rope.sin, hd, { ...o, dir: -1 });
    const dk = applyRope(fromHeads(dkc, seqs, KV, hd), f.rope.cos, f.rope.sin, hd, {
      ...o,
      dir: -1,
    });
    const dv = fromHeads(dvc, seqs, KV, hd);
    const inW = params.view(`${pre}.input_layernorm.weight`);
    const n1 = rmsNormForward(s.h, inW, c.rmsNormEps, o).y;
    wGrad(dq, n1, "q_proj");
    wGrad(dk, n1, "k_proj");
    wGrad(dv, n1, "v_proj");
    const dn1 = gemm(dq, W("q_proj"), o);
    gemm(dk, W("k_proj"), { ...o, accumulate: dn1 });
    gemm(dv, W("v_proj"), { ...o, accumulate: dn1 });
    dh = addInto(
      rmsNormBackward(dn1, s.h, inW, s.rstd1, grad.view(`${pre}.input_layernorm.weight`), o),
      dh1,
    );
    src.release(l, "backward");
    ready([
      `${pre}.input_layernorm.weight`,
      `${pre}.post_attention_layernorm.weight`,
      ...LINEAR_NAMES.map((n) => linearTensorName(l, n)),
    ]);
  }
  embeddingBackward(f.ids, dh, src.grads("embed").view("model.embed_tokens.weight"), o);
  ready(["model.embed_tokens.weight"]);
  return { loss: sumLoss / tokens, sumLoss, tokens, byteTargets: byteCount(targets) };
}

/**
 * The loss alone (no gradient, nothing kept): for held-out evaluation. Same conventions as
 * {@linkcode lossAndGrad}; `grad` is undefined.
 */
export function batchLoss(
  params: LlamaParams,
  batch: TokenBatch,
  options: { backend?: Backend } = {},
): Omit<LossAndGrad, "grad"> {
  const src: WeightSource = { acquire: () => params, release: () => {}, grads: () => params };
  return batchLossOf(params.config, batch, src, options);
}

/**
 * {@linkcode batchLoss} with the weights fetched unit by unit from `source` (each acquired for
 * its forward and released after; `grads` is not called).
 */
export function shardedBatchLoss(
  config: LlamaConfig,
  batch: TokenBatch,
  source: WeightSource,
  options: { backend?: Backend } = {},
): Omit<LossAndGrad, "grad"> {
  return batchLossOf(config, batch, source, options);
}

function batchLossOf(
  c: LlamaConfig,
  batch: TokenBatch,
  src: WeightSource,
  options: { backend?: Backend },
): Omit<LossAndGrad, "grad"> {
  const backend = selectBackend(options.backend), o = { backend };
  const { seqs, tokens } = sequences(c, batch);
  const f = forward(c, src, seqs, batch, backend, false);
  const headW = src.acquire("head", "forward");
  const nf = rmsNormForward(f.h, headW.view("model.norm.weight"), c.rmsNormEps, o);
  const logits = gemm(nf.y, headW.matrix(headTensorName(c)), { ...o, transB: true });
  src.release("head", "forward");
  const targets = rowTargets(seqs, batch, f.N);
  const ce = crossEntropy(logits, targets, 0, o);
  let sumLoss = 0;
  for (const v of ce.loss) sumLoss += v;
  return { loss: sumLoss / tokens, sumLoss, tokens, byteTargets: byteCount(targets) };
}

/** Bytes per token that {@linkcode lossAndGrad} keeps between its forward and backward. */
export function savedBytesPerToken(params: LlamaParams): number {
  const c = params.config, d = c.hiddenSize, qw = c.numHeads * c.headDim;
  const kvw = c.numKvHeads * c.headDim;
  // per layer: h, h1 (d each), q and att (qw each), k and v (kvw each), gate and up, 2 rstd
  const perLayer = 2 * d + 2 * qw + 2 * kvw + 2 * c.intermediateSize + 2;
  // plus ids, the rope table, the final hidden state, its norm and the logits with their gradient
  return 4 * (c.numLayers * perLayer + 1 + c.headDim + 2 * d + 2 * c.vocabSize + 1);
}
