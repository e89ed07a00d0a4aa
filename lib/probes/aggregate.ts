/**
 * The aggregates the authors report for the heavy-tailed per-item errors (exp1_analysis.py):
 * `x.mean()`, `np.median`, `scipy.stats.trim_mean(x, 0.2)`, `np.numpyPercentile(x, 20)` and
 * `np.numpyPercentile(x, 80)`, reproduced with numpy's handling of ±∞ and NaN (the errors divide by the
 * premise effect, which can be 0): mean, median and percentiles are NaN when any value is NaN;
 * `trimMean` sorts NaN last and cuts ⌊0.2·n⌋ values from each end first, as scipy's partition does.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";

/** The five aggregates of one per-item error. */
export interface Aggregates {
  /** Arithmetic mean. */
  mean: number;
  /** Median (mean of the two middle values for even n). */
  median: number;
  /** Mean after cutting ⌊0.2·n⌋ values from each end (scipy `trim_mean(x, 0.2)`). */
  trimMean: number;
  /** 20th percentile, numpy's linear interpolation. */
  p20: number;
  /** 80th percentile, numpy's linear interpolation. */
  p80: number;
}

function values(fn: string, x: ArrayLike<number>): Float64Array {
  if (x === null || typeof x !== "object" || typeof x.length !== "number") {
    throw new TypeError(`${fn}: values is ${String(x)}, expected an array of numbers`);
  }
  if (x.length === 0) throw new ShapeError(`${fn}: values is empty, expected at least 1 value`);
  for (let i = 0; i < x.length; i++) {
    if (typeof x[i] !== "number") {
      throw new TypeError(`${fn}: values[${i}] is ${String(x[i])}, expected a number`);
    }
  }
  return Float64Array.from(x);
}

function hasNaN(x: Float64Array): boolean {
  return x.some(Number.isNaN);
}

/** Ascending with NaN last (numpy's sort order). */
function sorted(x: Float64Array): Float64Array {
  return x.sort((
    a,
    b,
  ) => (Number.isNaN(a) ? 1 : Number.isNaN(b) ? -1 : a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Arithmetic mean (NaN if any value is NaN; ∞ − ∞ gives NaN).
 *
 * @example
 * ```ts
 * import { mean } from "./aggregate.ts";
 * import { assertEquals } from "@std/assert";
 * assertEquals(mean([1, 2, 6]), 3);
 * ```
 */
export function mean(x: ArrayLike<number>): number {
  const v = values("mean", x);
  let s = 0;
  for (const e of v) s += e;
  return s / v.length;
}

/**
 * `np.median`: the middle value, or the mean of the two middle values; NaN if any value is NaN.
 *
 * @example
 * ```ts
 * import { median } from "./aggregate.ts";
 * import { assertEquals } from "@std/assert";
 * assertEquals([median([3, 1, 2]), median([4, 1, 3, 2])], [2, 2.5]);
 * ```
 */
export function median(x: ArrayLike<number>): number {
  const v = values("median", x);
  if (hasNaN(v)) return NaN;
  const s = sorted(v), n = s.length, h = n >> 1;
  return n % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * `np.numpyPercentile(x, q)` with the default linear method: position q/100·(n − 1) between the sorted
 * values, interpolated by numpy's `_lerp`; NaN if any value is NaN.
 *
 * @example
 * ```ts
 * import { numpyPercentile } from "./aggregate.ts";
 * import { assertAlmostEquals } from "@std/assert";
 * assertAlmostEquals(numpyPercentile([1, 2, 3, 4, 5, 6], 20), 2, 1e-15); // position 1.0
 * assertAlmostEquals(numpyPercentile([10, 0, 5], 80), 8, 1e-12); // position 1.6: 5 + 0.6·5
 * ```
 */
export function numpyPercentile(x: ArrayLike<number>, q: number): number {
  const v = values("numpyPercentile", x);
  if (!(q >= 0 && q <= 100)) {
    throw new RangeError(`numpyPercentile: q is ${q}, expected a number in [0, 100]`);
  }
  if (hasNaN(v)) return NaN;
  const s = sorted(v), pos = (q / 100) * (s.length - 1), lo = Math.floor(pos);
  const hi = Math.min(lo + 1, s.length - 1), t = pos - lo, a = s[lo]!, b = s[hi]!;
  const diff = b - a;
  // numpy _lerp: a + diff·t, recomputed from b when t ≥ 0.5
  return t >= 0.5 ? b - diff * (1 - t) : a + diff * t;
}

/**
 * `scipy.stats.trim_mean(x, proportion)`: cut ⌊proportion·n⌋ values from each end of the sorted
 * values (NaN sorted last) and average the rest.
 *
 * @example
 * ```ts
 * import { trimMean } from "./aggregate.ts";
 * import { assertEquals } from "@std/assert";
 * // n = 10: cut 2 from each end → mean of 3…8
 * assertEquals(trimMean([1, 2, 3, 4, 5, 6, 7, 8, 9, 1000], 0.2), 5.5);
 * ```
 */
export function trimMean(x: ArrayLike<number>, proportion = 0.2): number {
  const v = values("trimMean", x);
  if (!(proportion >= 0 && proportion < 0.5)) {
    throw new RangeError(`trimMean: proportion is ${proportion}, expected a number in [0, 0.5)`);
  }
  const n = v.length, cut = Math.trunc(proportion * n), s = sorted(v);
  let sum = 0;
  for (let i = cut; i < n - cut; i++) sum += s[i]!;
  return sum / (n - 2 * cut);
}

/**
 * The authors' five aggregates of one per-item error: mean, median, 20 % trimmed mean, 20th and
 * 80th percentile.
 *
 * @example
 * ```ts
 * import { aggregate } from "./aggregate.ts";
 * import { assertEquals } from "@std/assert";
 * const a = aggregate([0, 1, 2, 3, 4]);
 * assertEquals([a.mean, a.median, a.trimMean, a.p20, a.p80], [2, 2, 2, 0.8, 3.2]);
 * ```
 */
export function aggregate(x: ArrayLike<number>): Aggregates {
  values("aggregate", x);
  return {
    mean: mean(x),
    median: median(x),
    trimMean: trimMean(x, 0.2),
    p20: numpyPercentile(x, 20),
    p80: numpyPercentile(x, 80),
  };
}
