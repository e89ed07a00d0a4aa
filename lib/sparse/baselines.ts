/**
 * One-shot baselines: magnitude pruning (smallest |w| of the whole layer, or per N:M group) and
 * Wanda (Sun et al. 2024: smallest |w_ij|·‖X_j‖₂ within each output row, or per N:M group).
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { checkFinite, checkPattern, type Pattern, type PatternOptions } from "./_pattern.ts";
import type { PruneResult } from "./sparsegpt.ts";

function applyMask(weight: Matrix, mask: Uint8Array): PruneResult {
  const w = Float32Array.from(weight.data);
  for (let i = 0; i < w.length; i++) if (mask[i]) w[i] = 0;
  return { weight: new Matrix(weight.rows, weight.cols, w), mask };
}

/** Marks the N lowest scores of every M-column group of each prunable row. */
function nmByScore(
  score: (r: number, j: number) => number,
  rows: number,
  cols: number,
  p: Pattern,
): Uint8Array {
  const mask = new Uint8Array(rows * cols);
  const idx = Array.from({ length: p.m }, (_, k) => k);
  for (let r = 0; r < rows; r++) {
    if (!p.rows[r]) continue;
    for (let c = 0; c < cols; c += p.m) {
      idx.sort((a, b) => score(r, c + a) - score(r, c + b) || a - b);
      for (let k = 0; k < p.n; k++) mask[r * cols + c + (idx[k] as number)] = 1;
      idx.sort((a, b) => a - b);
    }
  }
  return mask;
}

/**
 * Magnitude pruning: the `sparsity` fraction of the prunable weights with the smallest |w| over
 * the whole layer (or the N smallest of each N:M group).
 *
 * @example
 * ```ts
 * import { magnitudePrune } from "./baselines.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const r = magnitudePrune(Matrix.from([[4, -1], [0.5, 3]]), { sparsity: 0.5 });
 * if (r.weight.get(0, 1) !== 0 || r.weight.get(1, 0) !== 0) throw new Error("wrong mask");
 * ```
 */
export function magnitudePrune(weight: Matrix, options: PatternOptions): PruneResult {
  const { rows, cols } = weight, p = checkPattern(rows, cols, options);
  checkFinite(weight.data, "Weight", cols);
  const abs = (r: number, j: number) => Math.abs(weight.data[r * cols + j] as number);
  if (p.n) return applyMask(weight, nmByScore(abs, rows, cols, p));
  const order: number[] = [];
  for (let r = 0; r < rows; r++) {
    if (p.rows[r]) { for (let j = 0; j < cols; j++) order.push(r * cols + j); }
  }
  order.sort((a, b) =>
    Math.abs(weight.data[a] as number) - Math.abs(weight.data[b] as number) || a - b
  );
  const mask = new Uint8Array(rows * cols);
  const k = Math.floor(order.length * p.sparsity);
  for (let i = 0; i < k; i++) mask[order[i] as number] = 1;
  return applyMask(weight, mask);
}

/**
 * Wanda: scores |w_ij|·‖X_j‖₂ and prunes the lowest `sparsity` fraction within each output row
 * (or the N lowest of each N:M group). `inputNorms[j]` is ‖X_j‖₂ over the calibration tokens (any
 * positive multiple works, e.g. √diag(H)).
 */
export function wandaPrune(
  weight: Matrix,
  inputNorms: ArrayLike<number>,
  options: PatternOptions,
): PruneResult {
  const { rows, cols } = weight, p = checkPattern(rows, cols, options);
  if (inputNorms.length !== cols) {
    throw new ShapeError(`Wanda needs ${cols} input norms, got ${inputNorms.length}`);
  }
  checkFinite(weight.data, "Weight", cols);
  checkFinite(inputNorms, "Input norm");
  const score = (r: number, j: number) =>
    Math.abs(weight.data[r * cols + j] as number) * (inputNorms[j] as number);
  if (p.n) return applyMask(weight, nmByScore(score, rows, cols, p));
  const mask = new Uint8Array(rows * cols);
  const k = Math.floor(cols * p.sparsity);
  const idx = Array.from({ length: cols }, (_, j) => j);
  for (let r = 0; r < rows; r++) {
    if (!p.rows[r]) continue;
    idx.sort((a, b) => score(r, a) - score(r, b) || a - b);
    for (let i = 0; i < k; i++) mask[r * cols + (idx[i] as number)] = 1;
    idx.sort((a, b) => a - b);
  }
  return applyMask(weight, mask);
}
