/**
 * Descriptive statistics shared by the analyses.
 *
 * @module
 */

/**
 * The mean and the sample standard deviation (n − 1 in the denominator; NaN for one value).
 *
 * @example
 * ```ts
 * import { meanSd } from "./descriptive.ts";
 * const [m, sd] = meanSd([1, 2, 3, 4]);
 * if (m !== 2.5 || Math.abs(sd - Math.sqrt(5 / 3)) > 1e-12) throw new Error("meanSd");
 * ```
 */
export function meanSd(v: readonly number[]): [number, number] {
  const m = v.reduce((s, x) => s + x, 0) / v.length;
  const ss = v.reduce((s, x) => s + (x - m) ** 2, 0);
  return [m, Math.sqrt(ss / (v.length - 1))];
}
