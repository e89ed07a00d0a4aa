/**
 * Contrast pairs: the hidden states of one layer for n statements, each rendered once with the
 * negative answer and once with the positive answer (the authors' `hs[0]` and `hs[1]`). Every probe
 * and metric in `lib/probes` takes these plain arrays; only the collection code touches a model.
 *
 * Layout: `neg` and `pos` are row-major n×d `Float64Array`s, `neg[i * d + j]` is feature j of
 * statement i rendered with the negative answer. Labels are separate 0/1 arrays (1 = the
 * statement is true), NaN marking an unlabelled pair where a function allows it.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { _checkPairs } from "./_check.ts";

/** Hidden states of n contrast pairs at one layer (row-major n×d, f64). */
export interface ContrastPairs {
  /** Number of pairs (statements). */
  readonly n: number;
  /** Hidden size. */
  readonly d: number;
  /** n×d states with the negative answer, row-major. */
  readonly neg: Float64Array;
  /** n×d states with the positive answer, row-major. */
  readonly pos: Float64Array;
}

/**
 * Builds {@linkcode ContrastPairs} from one row per statement (copies into flat f64 storage) and
 * checks that all rows have one length and finite values.
 *
 * @example
 * ```ts
 * import { contrastPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const p = contrastPairs([[1, 2], [3, 4]], [[5, 6], [7, 8]]);
 * assertEquals([p.n, p.d, p.pos[3]], [2, 2, 8]);
 * ```
 */
export function contrastPairs(
  neg: readonly ArrayLike<number>[],
  pos: readonly ArrayLike<number>[],
): ContrastPairs {
  const fn = "contrastPairs";
  if (neg.length !== pos.length) {
    throw new ShapeError(`${fn}: neg has ${neg.length} rows but pos has ${pos.length}`);
  }
  if (neg.length === 0) throw new ShapeError(`${fn}: no rows given, expected at least 1 pair`);
  const n = neg.length, d = (neg[0] as ArrayLike<number>).length;
  const out = { n, d, neg: new Float64Array(n * d), pos: new Float64Array(n * d) };
  for (const [side, rows] of [["neg", neg], ["pos", pos]] as const) {
    rows.forEach((row, i) => {
      if (row.length !== d) {
        throw new ShapeError(`${fn}: ${side}[${i}] has ${row.length} values, expected ${d}`);
      }
      out[side].set(row, i * d);
    });
  }
  _checkPairs(fn, "pairs", out);
  return out;
}

/**
 * Rows `idx` of `pairs` (copies), in that order.
 *
 * @example
 * ```ts
 * import { contrastPairs, selectPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const p = contrastPairs([[1], [2], [3]], [[4], [5], [6]]);
 * assertEquals(Array.from(selectPairs(p, [2, 0]).pos), [6, 4]);
 * ```
 */
export function selectPairs(pairs: ContrastPairs, idx: readonly number[]): ContrastPairs {
  const { n, d } = pairs, m = idx.length;
  const out = { n: m, d, neg: new Float64Array(m * d), pos: new Float64Array(m * d) };
  idx.forEach((i, k) => {
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new RangeError(
        `selectPairs: index idx[${k}] is ${i}, expected an integer in [0, ${n})`,
      );
    }
    out.neg.set(pairs.neg.subarray(i * d, (i + 1) * d), k * d);
    out.pos.set(pairs.pos.subarray(i * d, (i + 1) * d), k * d);
  });
  return out;
}
