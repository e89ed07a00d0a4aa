/**
 * Causal grouped-query attention of new queries over a key/value cache (the attention core of a
 * Llama block, after the projections and RoPE).
 *
 * @module
 */
import { check, cpu, cpuLibrary } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** Shapes of {@linkcode causalAttention}. */
export interface AttentionShape {
  /** Position of the first query (the cache already holds positions 0..start-1). */
  start: number;
  /** Query heads. */
  heads: number;
  /** Key/value heads; query head h reads head floor(h / (heads / kvHeads)). */
  kvHeads: number;
  /** Head width d. */
  headDim: number;
  /** Cache capacity in positions (the cache is kvHeads × capacity × d). */
  capacity: number;
}

/**
 * softmax(q·kᵀ/√d)·v per head, each query at position start+t seeing keys 0..start+t.
 * `q` is T × (heads·d); `k` and `v` hold every position up to start+T−1. The cuda backend has no
 * attention kernel yet (its cache lives on the host): it runs the cpu kernel, else ts.
 *
 * @example
 * ```ts
 * import { causalAttention } from "./attention.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // one head, d = 1, two positions: the second query averages v by softmax weights
 * const q = Matrix.from([[0], [1]]);
 * const k = new Float32Array([0, 0]), v = new Float32Array([1, 3]);
 * const o = causalAttention(q, k, v, { start: 0, heads: 1, kvHeads: 1, headDim: 1, capacity: 2 }, { backend: "ts" });
 * if (o.get(0, 0) !== 1 || o.get(1, 0) !== 2) throw new Error("wrong attention");
 * ```
 */
export function causalAttention(
  q: Matrix,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  options: KernelOptions = {},
): Matrix {
  const { start, heads, kvHeads, headDim: d, capacity } = shape;
  const T = q.rows;
  if (q.cols !== heads * d) {
    throw new ShapeError(`Queries have ${q.cols} columns, expected heads·d = ${heads * d}`);
  }
  if (heads % kvHeads !== 0) {
    throw new ShapeError(`heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
  }
  if (start + T > capacity) {
    throw new ShapeError(`Positions up to ${start + T} exceed the cache capacity ${capacity}`);
  }
  const need = kvHeads * capacity * d;
  if (k.length < need || v.length < need) {
    throw new ShapeError(
      `The key/value caches hold ${k.length}/${v.length} values, expected ${need}`,
    );
  }
  let backend = resolve(options);
  if (backend === "cuda") backend = cpuLibrary().lib ? "cpu" : "ts";
  const out = Matrix.zeros(T, heads * d);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_attention_f32(
        q.data,
        q.data.length,
        k,
        k.length,
        v,
        v.length,
        out.data,
        out.data.length,
        T,
        start,
        heads,
        kvHeads,
        d,
        capacity,
      ),
    );
    return out;
  }
  attentionRef(q, k, v, shape, out);
  return out;
}

/** The TypeScript reference (f64 softmax and accumulation). */
export function attentionRef(
  q: Matrix,
  k: Float32Array,
  v: Float32Array,
  shape: AttentionShape,
  out: Matrix,
): void {
  const { start, heads, kvHeads, headDim: d, capacity: cap } = shape;
  const group = heads / kvHeads, scale = 1 / Math.sqrt(d);
  const scores = new Float64Array(start + q.rows), acc = new Float64Array(d);
  for (let t = 0; t < q.rows; t++) {
    const p = start + t;
    for (let h = 0; h < heads; h++) {
      const kb = Math.floor(h / group) * cap * d, qo = (t * heads + h) * d;
      let max = -Infinity;
      for (let j = 0; j <= p; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += (q.data[qo + e] as number) * (k[kb + j * d + e] as number);
        scores[j] = s * scale;
        if (s * scale > max) max = s * scale;
      }
      let sum = 0;
      for (let j = 0; j <= p; j++) {
        const w = Math.exp((scores[j] as number) - max);
        scores[j] = w;
        sum += w;
      }
      acc.fill(0);
      for (let j = 0; j <= p; j++) {
        const w = (scores[j] as number) / sum;
        for (let e = 0; e < d; e++) acc[e]! += w * (v[kb + j * d + e] as number);
      }
      out.data.set(acc, qo);
    }
  }
}

/** Shapes of {@linkcode attentionBackward}: one whole sequence (start 0, capacity = its length). */
export interface AttentionBackwardShape {
  /** Query heads. */
  heads: number;
  /** Key/value heads (dividing heads). */
  kvHeads: number;
  /** Head width d. */
  headDim: number;
}

/** Gradients from {@linkcode attentionBackward}. */
export interface AttentionGrads {
  /** T × (heads·d). */
  dq: Matrix;
  /** kvHeads × T × d. */
  dk: Float32Array;
  /** kvHeads × T × d. */
  dv: Float32Array;
}

/**
 * The backward of {@linkcode causalAttention} over one whole sequence of T = q.rows positions:
 * `q` and `dout` are T × (heads·d), `k` and `v` kvHeads × T × d (the cache layout with capacity
 * T). The softmax is recomputed, so the forward keeps nothing beyond q, k and v.
 *
 * @example
 * ```ts
 * import { attentionBackward } from "./attention.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // one position attends only to itself: out = v, so dv = dout and dq = dk = 0
 * const g = attentionBackward(Matrix.from([[1]]), new Float32Array([2]), new Float32Array([3]), Matrix.from([[5]]), { heads: 1, kvHeads: 1, headDim: 1 }, { backend: "ts" });
 * if (g.dv[0] !== 5 || g.dq.get(0, 0) !== 0 || g.dk[0] !== 0) throw new Error("wrong gradients");
 * ```
 */
export function attentionBackward(
  q: Matrix,
  k: Float32Array,
  v: Float32Array,
  dout: Matrix,
  shape: AttentionBackwardShape,
  options: KernelOptions = {},
): AttentionGrads {
  const { heads, kvHeads, headDim: d } = shape, T = q.rows;
  if (q.cols !== heads * d || dout.rows !== T || dout.cols !== heads * d) {
    throw new ShapeError(
      `attentionBackward: q is ${q.rows}×${q.cols} and dout ${dout.rows}×${dout.cols}, expected both T×${
        heads * d
      }`,
    );
  }
  if (kvHeads <= 0 || heads % kvHeads !== 0) {
    throw new ShapeError(`heads ${heads} is not a multiple of kvHeads ${kvHeads}`);
  }
  const need = kvHeads * T * d;
  if (k.length !== need || v.length !== need) {
    throw new ShapeError(
      `attentionBackward: k and v hold ${k.length}/${v.length} values, expected kvHeads·T·d = ${need}`,
    );
  }
  const dq = Matrix.zeros(T, heads * d), dk = new Float32Array(need), dv = new Float32Array(need);
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_attention_bwd_f32(
        q.data,
        q.data.length,
        k,
        k.length,
        v,
        v.length,
        dout.data,
        dout.data.length,
        dq.data,
        dq.data.length,
        dk,
        dk.length,
        dv,
        dv.length,
        T,
        heads,
        kvHeads,
        d,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [q.data, k, v, dout.data, dq.data, dk, dv],
      [4, 5, 6],
      (lib, h) =>
        lib.lk_cuda_attention_bwd_f32(
          h[0]!,
          h[1]!,
          h[2]!,
          h[3]!,
          h[4]!,
          h[5]!,
          h[6]!,
          T,
          heads,
          kvHeads,
          d,
        ),
    );
  } else attentionBackwardRef(q, k, v, dout, shape, { dq, dk, dv });
  return { dq, dk, dv };
}

/** The TypeScript reference of {@linkcode attentionBackward} (f64 throughout). */
export function attentionBackwardRef(
  q: Matrix,
  k: Float32Array,
  v: Float32Array,
  dout: Matrix,
  shape: AttentionBackwardShape,
  out: AttentionGrads,
): void {
  const { heads, kvHeads, headDim: d } = shape, T = q.rows;
  const group = heads / kvHeads, scale = 1 / Math.sqrt(d);
  const p = new Float64Array(T), dp = new Float64Array(T), dqRow = new Float64Array(d);
  const dk = new Float64Array(kvHeads * T * d), dv = new Float64Array(kvHeads * T * d);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const kb = Math.floor(h / group) * T * d, qo = (t * heads + h) * d;
      let max = -Infinity;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += q.data[qo + e]! * k[kb + j * d + e]!;
        p[j] = s * scale;
        if (p[j]! > max) max = p[j]!;
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) sum += p[j] = Math.exp(p[j]! - max);
      let dot = 0;
      for (let j = 0; j <= t; j++) {
        p[j] = p[j]! / sum;
        let s = 0;
        for (let e = 0; e < d; e++) s += dout.data[qo + e]! * v[kb + j * d + e]!;
        dp[j] = s;
        dot += p[j]! * s;
      }
      dqRow.fill(0);
      for (let j = 0; j <= t; j++) {
        const ds = p[j]! * (dp[j]! - dot) * scale;
        for (let e = 0; e < d; e++) {
          dqRow[e]! += ds * k[kb + j * d + e]!;
          dk[kb + j * d + e]! += ds * q.data[qo + e]!;
          dv[kb + j * d + e]! += p[j]! * dout.data[qo + e]!;
        }
      }
      out.dq.data.set(dqRow, qo);
    }
  }
  out.dk.set(dk);
  out.dv.set(dv);
}
