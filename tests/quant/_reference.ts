// An independent GPTQ written from the paper (Frantar et al. 2023, §3 and Algorithm 1) with the
// explicit inverse Hessian: after each column q is quantized, every later column is corrected by
// −(w_q − quant(w_q))/[H⁻¹]_qq · [H⁻¹]_q,: and q is removed from H⁻¹ by Gaussian elimination,
// H⁻¹ ← H⁻¹ − H⁻¹_:,q H⁻¹_q,: / [H⁻¹]_qq. No Cholesky factor, no lazy blocks; the only block
// rule kept is the reference code's choice of when a group's parameters are read (the weights as
// they stood at the start of the 128-column block). Its quantizer is written out here again.
import type { Matrix } from "../../lib/core/matrix.ts";

export interface RefOptions {
  bits: number;
  sym: boolean;
  groupSize: number; // 0 = per row
  actOrder: boolean;
  staticGroups: boolean;
  mse: boolean;
  block: number;
  percdamp: number;
  mask?: Uint8Array;
}

const rne = (x: number) => {
  const f = Math.floor(x), d = x - f;
  return d > 0.5 ? f + 1 : d < 0.5 ? f : (f % 2 === 0 ? f : f + 1);
};

function toF16(x: number): number {
  if (x === 0) return 0;
  let e = 0, a = Math.abs(x);
  while (a >= 1) a /= 2, e++;
  while (a < 0.5) a *= 2, e--;
  const step = 2 ** Math.max(e - 11, -24);
  return rne(x / step) * step;
}

function params(x: number[], o: RefOptions): [number, number] {
  const maxq = 2 ** o.bits - 1;
  let lo = Math.min(0, ...x), hi = Math.max(0, ...x);
  if (o.sym) {
    hi = Math.max(Math.abs(lo), hi);
    if (lo < 0) lo = -hi;
  }
  if (lo === 0 && hi === 0) [lo, hi] = [-1, 1];
  const make = (a: number, b: number): [number, number] => {
    const s = toF16((b - a) / maxq);
    return [s, o.sym ? (maxq + 1) / 2 : rne(-a / s)];
  };
  let best = make(lo, hi);
  if (o.mse) {
    let bestErr = Infinity;
    for (let i = 0; i < Math.floor(0.8 * 100); i++) {
      const p = 1 - i / 100, [s, z] = make(p * lo, p * hi);
      if (!(s > 0)) continue;
      const err = x.reduce((acc, v) => acc + Math.abs(deq(v, s, z, maxq) - v) ** 2.4, 0);
      if (err < bestErr) [bestErr, best] = [err, [s, z]];
    }
  }
  return best;
}

const deq = (v: number, s: number, z: number, maxq: number) =>
  s * (Math.min(maxq, Math.max(0, rne(v / s) + z)) - z);

function invert(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a), inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) inv[i * n + i] = 1;
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (let j = 0; j < n; j++) {
      [m[c * n + j], m[p * n + j]] = [m[p * n + j]!, m[c * n + j]!];
      [inv[c * n + j], inv[p * n + j]] = [inv[p * n + j]!, inv[c * n + j]!];
    }
    const d = m[c * n + c]!;
    for (let j = 0; j < n; j++) m[c * n + j]! /= d, inv[c * n + j]! /= d;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = m[r * n + c]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        m[r * n + j]! -= f * m[c * n + j]!, inv[r * n + j]! -= f * inv[c * n + j]!;
      }
    }
  }
  return inv;
}

/** Ŵ (rows × cols, original order) and g_idx. */
export function gptqExplicit(
  weight: Matrix,
  hessian: Matrix<Float64Array>,
  o: RefOptions,
): { w: Float64Array; gIdx: number[] } {
  const R = weight.rows, C = weight.cols, maxq = 2 ** o.bits - 1;
  const g = o.groupSize > 0 && o.groupSize < C ? o.groupSize : 0;
  const H = Float64Array.from(hessian.data);
  const W0 = Float64Array.from(weight.data);
  for (let j = 0; j < C; j++) {
    if (H[j * C + j] === 0) {
      H[j * C + j] = 1;
      for (let r = 0; r < R; r++) W0[r * C + j] = 0;
    }
  }
  const order = [...Array(C).keys()];
  if (o.actOrder) order.sort((a, b) => H[b * C + b]! - H[a * C + a]! || a - b);
  let mean = 0;
  for (let j = 0; j < C; j++) mean += H[j * C + j]! / C;
  const Hd = new Float64Array(C * C);
  for (let a = 0; a < C; a++) {
    for (let b = 0; b < C; b++) Hd[a * C + b] = H[order[a]! * C + order[b]!]!;
    Hd[a * C + a]! += o.percdamp * mean;
  }
  const Hinv = invert(Hd, C);
  const W = new Float64Array(R * C), M = new Uint8Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) {
      W[r * C + c] = W0[r * C + order[c]!]!;
      M[r * C + c] = o.mask?.[r * C + order[c]!] ?? 0;
    }
  }
  const statics: [number, number][][] = []; // [row][group]
  if (o.staticGroups) {
    for (let r = 0; r < R; r++) {
      const row = [...W0.subarray(r * C, (r + 1) * C)].map((v, j) => (o.mask?.[r * C + j] ? 0 : v));
      statics.push(
        Array.from(
          { length: g ? Math.ceil(C / g) : 1 },
          (_, k) => params(g ? row.slice(k * g, (k + 1) * g) : row, o),
        ),
      );
    }
  }
  const cur: [number, number][] = Array.from({ length: R }, () => [1, 0]);
  let snap = Float64Array.from(W);
  const gIdx = new Array<number>(C);
  for (let c = 0; c < C; c++) {
    if (c % o.block === 0) snap = Float64Array.from(W);
    gIdx[order[c]!] = g ? (o.staticGroups ? Math.floor(order[c]! / g) : Math.floor(c / g)) : 0;
    const d = Hinv[c * C + c]!;
    for (let r = 0; r < R; r++) {
      if (o.staticGroups) cur[r] = statics[r]![gIdx[order[c]!]!]!;
      else if (g ? c % g === 0 : c === 0) {
        const vals = [];
        for (let j = c; j < (g ? Math.min(C, c + g) : C); j++) {
          vals.push(M[r * C + j] ? 0 : snap[r * C + j]!);
        }
        cur[r] = params(vals, o);
      }
      const [s, z] = cur[r]!;
      const w = W[r * C + c]!, q = M[r * C + c] ? 0 : deq(w, s, z, maxq);
      W[r * C + c] = q;
      const e = (w - q) / d;
      for (let j = c + 1; j < C; j++) W[r * C + j]! -= e * Hinv[c * C + j]!;
    }
    // remove column c from the inverse
    for (let a = c + 1; a < C; a++) {
      const f = Hinv[a * C + c]! / d;
      for (let b = c + 1; b < C; b++) Hinv[a * C + b]! -= f * Hinv[c * C + b]!;
    }
  }
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[r * C + order[c]!] = W[r * C + c]!;
  return { w: out, gIdx };
}

/**
 * QUIK's GPTQ written out the same explicit way: per-row symmetric scales over the non-outlier
 * columns (max|w|/(2^(b−1) − 1), or the clip search over 80 factors with error Σ|Q(w) − w|^2.4),
 * columns swept by increasing `maxAbs` (the `count` largest last), every column but those quantized
 * and its error spread over the later ones; the outliers only take the corrections.
 */
export function quikExplicit(
  weight: Matrix,
  hessian: Matrix<Float64Array>,
  maxAbs: number[],
  o: { bits: number; count: number; clip: boolean; percdamp: number },
): { w: Float64Array; outliers: number[]; scales: number[] } {
  const R = weight.rows, C = weight.cols, half = 2 ** (o.bits - 1);
  const order = [...Array(C).keys()].sort((a, b) => maxAbs[a]! - maxAbs[b]! || a - b);
  const outliers = order.slice(C - o.count).sort((a, b) => a - b);
  const q = (v: number, s: number) => s * Math.min(half - 1, Math.max(-half, rne(v / s)));
  const scales: number[] = [];
  for (let r = 0; r < R; r++) {
    const ints = [...Array(C).keys()].filter((j) => !outliers.includes(j))
      .map((j) => weight.data[r * C + j]!);
    const xmax = Math.max(0, ...ints.map(Math.abs)) || 1;
    let best = toF16(xmax / (half - 1)), bestErr = Infinity;
    for (let i = 0; o.clip && i < 80; i++) {
      const s = toF16(((1 - i / 100) * xmax) / (half - 1));
      const err = ints.reduce((a, v) => a + Math.abs(q(v, s) - v) ** 2.4, 0);
      if (err < bestErr) [bestErr, best] = [err, s];
    }
    scales.push(best);
  }
  let mean = 0;
  for (let j = 0; j < C; j++) mean += hessian.data[j * C + j]! / C;
  const Hd = new Float64Array(C * C);
  for (let a = 0; a < C; a++) {
    for (let b = 0; b < C; b++) Hd[a * C + b] = hessian.data[order[a]! * C + order[b]!]!;
    Hd[a * C + a]! += o.percdamp * mean;
  }
  const Hinv = invert(Hd, C);
  const W = new Float64Array(R * C);
  for (let r = 0; r < R; r++) {
    for (let c = 0; c < C; c++) W[r * C + c] = weight.data[r * C + order[c]!]!;
  }
  for (let c = 0; c < C - o.count; c++) {
    const d = Hinv[c * C + c]!;
    for (let r = 0; r < R; r++) {
      const w = W[r * C + c]!, v = q(w, scales[r]!);
      W[r * C + c] = v;
      const e = (w - v) / d;
      for (let j = c + 1; j < C; j++) W[r * C + j]! -= e * Hinv[c * C + j]!;
    }
    for (let a = c + 1; a < C; a++) {
      const f = Hinv[a * C + c]! / d;
      for (let b = c + 1; b < C; b++) Hinv[a * C + b]! -= f * Hinv[c * C + b]!;
    }
  }
  const out = new Float64Array(R * C);
  for (let r = 0; r < R; r++) for (let c = 0; c < C; c++) out[r * C + order[c]!] = W[r * C + c]!;
  return { w: out, outliers, scales };
}
