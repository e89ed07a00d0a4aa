/**
 * Per-side mean centring of contrast pairs, the authors' `normalize` step (evaluate.py): for each
 * side (neg, pos) separately, subtract the mean over pairs of every feature. As in the authors'
 * code the mean is a `nanmean` over the finite values only (non-finite entries are left in place,
 * so later checks can name them), and each split (train, eval) is centred with its own means.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { _checkCount } from "./_check.ts";
import type { ContrastPairs } from "./pairs.ts";

/** Options of {@linkcode centerPairs}. */
export interface CenterOptions {
  /**
   * Also divide each centred feature by its sample standard deviation (n − 1), the authors'
   * `var_normalize` (default false, as in all their configs).
   */
  varNormalize?: boolean;
}

/**
 * x_side − nanmean(x_side, over pairs), for side ∈ {neg, pos}; a new object, inputs untouched.
 * A feature with no finite value on a side becomes NaN on that side, as `torch.nanmean` gives.
 *
 * @example
 * ```ts
 * import { centerPairs } from "./center.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const c = centerPairs(contrastPairs([[1, 10], [3, 20]], [[0, 0], [4, 2]]));
 * assertEquals(Array.from(c.neg), [-1, -5, 1, 5]);
 * assertEquals(Array.from(c.pos), [-2, -1, 2, 1]);
 * ```
 */
export function centerPairs(pairs: ContrastPairs, options: CenterOptions = {}): ContrastPairs {
  const fn = "centerPairs";
  if (typeof pairs !== "object" || pairs === null) {
    throw new TypeError(
      `${fn}: pairs is ${String(pairs)}, expected contrast pairs {n, d, neg, pos}`,
    );
  }
  if (pairs.n === 0) throw new ShapeError(`${fn}: pairs is empty (0 pairs), expected at least 1`);
  _checkCount(fn, "pairs.n", pairs.n);
  _checkCount(fn, "pairs.d", pairs.d);
  const { n, d } = pairs;
  const center = (side: "neg" | "pos"): Float64Array => {
    const x = pairs[side];
    if (!(x instanceof Float64Array)) {
      throw new TypeError(`${fn}: pairs.${side} is not a Float64Array`);
    }
    if (x.length !== n * d) {
      throw new ShapeError(`${fn}: pairs.${side} has ${x.length} values, expected n·d = ${n * d}`);
    }
    const sum = new Float64Array(d), cnt = new Float64Array(d);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < d; j++) {
        const v = x[i * d + j] as number;
        if (Number.isFinite(v)) sum[j]! += v, cnt[j]!++;
      }
    }
    const out = new Float64Array(n * d);
    for (let j = 0; j < d; j++) sum[j] = cnt[j]! > 0 ? sum[j]! / cnt[j]! : NaN;
    for (let k = 0; k < n * d; k++) out[k] = (x[k] as number) - (sum[k % d] as number);
    if (options.varNormalize) {
      for (let j = 0; j < d; j++) {
        let m = 0, ss = 0;
        for (let i = 0; i < n; i++) m += out[i * d + j] as number;
        m /= n;
        for (let i = 0; i < n; i++) ss += ((out[i * d + j] as number) - m) ** 2;
        const sd = Math.sqrt(ss / (n - 1));
        for (let i = 0; i < n; i++) out[i * d + j]! /= sd;
      }
    }
    return out;
  };
  return { n, d, neg: center("neg"), pos: center("pos") };
}
