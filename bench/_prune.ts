// Pruning patterns for the sparse benchmarks (random weights, so any rule gives the same timing).
import { Matrix } from "../lib/core/matrix.ts";
import type { Rng } from "../lib/core/rng.ts";

/**
 * In place: zeros the m − n smallest magnitudes of every group of m (N:M along rows), the smallest
 * first, ties to the lower index.
 */
export function keepNofM(g: Float32Array, n: number, m: number): void {
  for (let i = 0; i < g.length; i += m) {
    let zeroed = 0; // bit j: g[i + j] is among the smallest
    for (let z = n; z < m; z++) {
      let s = -1;
      for (let j = 0; j < m; j++) {
        if (!((zeroed >> j) & 1) && (s < 0 || Math.abs(g[i + j]!) < Math.abs(g[i + s]!))) s = j;
      }
      zeroed |= 1 << s;
    }
    for (let j = 0; j < m; j++) if ((zeroed >> j) & 1) g[i + j] = 0;
  }
}

/**
 * A copy of `w` pruned to `pattern`: "2:4" (or any "N:M"), or "S%" with each entry zeroed with
 * probability S %.
 */
export function prunedCopy(w: Matrix, pattern: string, rng: Rng): Matrix {
  const out = new Matrix(w.rows, w.cols, w.data.slice() as Float32Array);
  const nm = pattern.match(/^(\d+):(\d+)$/);
  if (nm) {
    keepNofM(out.data, Number(nm[1]), Number(nm[2]));
  } else {
    const s = Number(pattern.replace("%", "")) / 100;
    for (let i = 0; i < out.data.length; i++) if (rng.uniform() < s) out.data[i] = 0;
  }
  return out;
}
