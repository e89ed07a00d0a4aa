// Pruning patterns for the sparse benchmarks (random weights, so any rule gives the same timing).
import { Matrix } from "../lib/core/matrix.ts";
import type { Rng } from "../lib/core/rng.ts";

/** In place: zeros the two smallest magnitudes of every group of four (2:4 along rows). */
export function keepTwoOfFour(g: Float32Array): void {
  for (let i = 0; i < g.length; i += 4) {
    let s1 = 0;
    for (let j = 1; j < 4; j++) if (Math.abs(g[i + j]!) < Math.abs(g[i + s1]!)) s1 = j;
    let s2 = s1 === 0 ? 1 : 0;
    for (let j = 0; j < 4; j++) if (j !== s1 && Math.abs(g[i + j]!) < Math.abs(g[i + s2]!)) s2 = j;
    g[i + s1] = 0;
    g[i + s2] = 0;
  }
}

/** In place: keeps the n largest magnitudes of every group of m (N:M along rows). */
export function keepNofM(g: Float32Array, n: number, m: number): void {
  const order = Array.from({ length: m }, (_, j) => j);
  for (let i = 0; i < g.length; i += m) {
    order.sort((a, b) => Math.abs(g[i + b]!) - Math.abs(g[i + a]!) || a - b);
    for (const j of order.slice(n)) g[i + j] = 0;
  }
}

/**
 * A copy of `w` pruned to `pattern`: "2:4" (or any "N:M"), or "S%" with each entry zeroed with
 * probability S %.
 */
export function prunedCopy(w: Matrix, pattern: string, rng: Rng): Matrix {
  const out = new Matrix(w.rows, w.cols, w.data.slice() as Float32Array);
  const nm = pattern.match(/^(\d+):(\d+)$/);
  if (pattern === "2:4") {
    keepTwoOfFour(out.data);
  } else if (nm) {
    keepNofM(out.data, Number(nm[1]), Number(nm[2]));
  } else {
    const s = Number(pattern.replace("%", "")) / 100;
    for (let i = 0; i < out.data.length; i++) if (rng.uniform() < s) out.data[i] = 0;
  }
  return out;
}
