// Private: validation of the sparsity pattern options shared by every pruner.
import { ShapeError } from "../core/errors.ts";
import type { LinearName, LlamaModel } from "../model/llama.ts";

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

/**
 * A RangeError naming the first non-finite weight (magnitude pruning kept a NaN: it sorts as
 * neither small nor large), or nothing.
 */
export function checkFinite(data: ArrayLike<number>, what: string, cols?: number): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      const at = cols === undefined ? `${i}` : `${Math.floor(i / cols)}, ${i % cols}`;
      throw new RangeError(`${what} [${at}] is ${data[i]}: expected finite`);
    }
  }
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

/**
 * Checks the pattern against the projections `names` of every block of `model`, before a whole-model
 * pass spends calibration time or replaces a layer (an N:M pattern whose M does not divide one
 * projection's columns would otherwise fail only when that projection's turn came).
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { checkModelPattern } from "./_pattern.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * checkModelPattern(model, ["up_proj"], { nm: [2, 4] }); // fine
 * let msg = "";
 * try { checkModelPattern(model, ["up_proj"], { nm: [3, 7] }); } catch (e) { msg = (e as Error).message; }
 * if (!msg.startsWith("Block 0 up_proj: N:M pattern 3:7 needs M to divide")) throw new Error(msg);
 * ```
 */
export function checkModelPattern(
  model: LlamaModel,
  names: readonly LinearName[],
  o: PatternOptions,
): void {
  model.blocks.forEach((blk, l) => {
    for (const name of names) {
      const lin = blk.linears[name];
      try {
        checkPattern(lin.outFeatures, lin.inFeatures, o);
      } catch (e) {
        if (e instanceof ShapeError) throw new ShapeError(`Block ${l} ${name}: ${e.message}`);
        throw e;
      }
    }
  });
}
