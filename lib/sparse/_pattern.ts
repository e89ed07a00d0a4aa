// Private: validation of the sparsity pattern options shared by every pruner.
import { ShapeError } from "../core/errors.ts";

/** Unstructured fraction, or N zeros in every M consecutive inputs of a row. */
export interface PatternOptions {
  /** Fraction of (prunable) weights set to zero, in (0, 1). */
  sparsity?: number;
  /** [N, M]: N zeros in every group of M consecutive columns of a row (e.g. [2, 4]). */
  nm?: [number, number];
  /** 1 where a row may be pruned (default: every row); other rows stay dense. */
  prunableRows?: Uint8Array;
}

export interface Pattern {
  sparsity: number;
  n: number;
  m: number;
  rows: Uint8Array;
}

export function checkPattern(rows: number, cols: number, o: PatternOptions): Pattern {
  const prunable = o.prunableRows ?? new Uint8Array(rows).fill(1);
  if (prunable.length !== rows) {
    throw new ShapeError(
      `prunableRows has ${prunable.length} entries for a weight of ${rows} rows`,
    );
  }
  if (o.nm) {
    const [n, m] = o.nm;
    if (!Number.isInteger(n) || !Number.isInteger(m) || n < 1 || m <= n) {
      throw new RangeError(`N:M pattern ${n}:${m} is invalid: expected integers with 1 ≤ N < M`);
    }
    if (cols % m !== 0) {
      throw new ShapeError(`N:M pattern ${n}:${m} needs M to divide the ${cols} columns`);
    }
    return { sparsity: n / m, n, m, rows: prunable };
  }
  const s = o.sparsity;
  if (s === undefined || !(s > 0 && s < 1)) {
    throw new RangeError(`Sparsity ${s} is outside (0, 1)`);
  }
  return { sparsity: s, n: 0, m: 0, rows: prunable };
}
