/**
 * Small numeric helpers shared by scripts, benches and tests.
 *
 * @module
 */

/**
 * ‖a − b‖₂ / ‖b‖₂ (or the plain norm of the difference when b is zero).
 *
 * @example
 * ```ts
 * import { relativeL2Error } from "./numeric.ts";
 * if (relativeL2Error([1, 2], [1, 2]) !== 0) throw new Error("equal arrays differ");
 * ```
 */
export function relativeL2Error(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) {
    throw new RangeError(`Cannot compare arrays of ${a.length} and ${b.length} values`);
  }
  let d = 0, n = 0;
  for (let i = 0; i < a.length; i++) {
    d += ((a[i] as number) - (b[i] as number)) ** 2;
    n += (b[i] as number) ** 2;
  }
  return Math.sqrt(d) / (Math.sqrt(n) || 1);
}
