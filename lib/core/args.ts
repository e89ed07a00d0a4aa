/**
 * Typed command-line values: parse a flag's string as an integer or number, or fail with one
 * sentence naming the flag.
 *
 * @module
 */

/**
 * `value` as an integer within [min, max], or a RangeError naming `flag`.
 *
 * @example
 * ```ts
 * import { intFlag } from "./args.ts";
 * if (intFlag("--n", "12", 1) !== 12) throw new Error("bad parse");
 * ```
 */
export function intFlag(
  flag: string,
  value: string | undefined,
  min = -Infinity,
  max = Infinity,
): number {
  const n = Number(value);
  if (value === undefined || value.trim() === "" || !Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`${flag} '${value}' is not an integer${rangeText(min, max)}`);
  }
  return n;
}

/** `value` as a finite number within [min, max], or a RangeError naming `flag`. */
export function numFlag(
  flag: string,
  value: string | undefined,
  min = -Infinity,
  max = Infinity,
): number {
  const n = Number(value);
  if (value === undefined || value.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
    throw new RangeError(`${flag} '${value}' is not a number${rangeText(min, max)}`);
  }
  return n;
}

/** " in [min, max]", " ≥ min", " ≤ max" or "" (no bound). */
function rangeText(min: number, max: number): string {
  if (min === -Infinity) return max === Infinity ? "" : ` ≤ ${max}`;
  return max === Infinity ? ` ≥ ${min}` : ` in [${min}, ${max}]`;
}
