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

/** A copy of `w` pruned to `pattern`: "2:4", or "S%" with each entry zeroed with probability S %. */
export function prunedCopy(w: Matrix, pattern: string, rng: Rng): Matrix {
  const out = new Matrix(w.rows, w.cols, w.data.slice() as Float32Array);
  if (pattern === "2:4") {
    keepTwoOfFour(out.data);
  } else {
    const s = Number(pattern.replace("%", "")) / 100;
    for (let i = 0; i < out.data.length; i++) if (rng.uniform() < s) out.data[i] = 0;
  }
  return out;
}
