// Input checks shared by the probe and metric code: each failure is one sentence naming the
// function, the argument and the element, thrown as ShapeError (sizes), NumericalError (non-finite
// values) or RangeError (values outside their domain).
import { NumericalError, ShapeError } from "../core/errors.ts";
import type { ContrastPairs } from "./pairs.ts";

/** Checks a count: a positive integer (ShapeError otherwise). */
export function _checkCount(fn: string, what: string, n: unknown): asserts n is number {
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new ShapeError(`${fn}: ${what} is ${String(n)}, expected an integer ≥ 1`);
  }
}

/** Checks that `pairs` is a well-formed, finite {@linkcode ContrastPairs}. */
export function _checkPairs(fn: string, what: string, pairs: ContrastPairs, minN = 1): void {
  if (typeof pairs !== "object" || pairs === null) {
    throw new TypeError(
      `${fn}: ${what} is ${String(pairs)}, expected contrast pairs {n, d, neg, pos}`,
    );
  }
  const { n, d } = pairs;
  if (n === 0 && minN > 0) {
    throw new ShapeError(`${fn}: ${what} is empty (0 pairs), expected at least ${minN}`);
  }
  _checkCount(fn, `${what}.n`, n);
  if (n < minN) {
    throw new ShapeError(`${fn}: ${what} has ${n} pair(s), expected at least ${minN}`);
  }
  _checkCount(fn, `${what}.d`, d);
  for (const side of ["neg", "pos"] as const) {
    const a = pairs[side];
    if (!(a instanceof Float64Array)) {
      throw new TypeError(`${fn}: ${what}.${side} is not a Float64Array`);
    }
    if (a.length !== n * d) {
      throw new ShapeError(
        `${fn}: ${what}.${side} has ${a.length} values, expected n·d = ${n}·${d} = ${n * d}`,
      );
    }
    for (let k = 0; k < a.length; k++) {
      const v = a[k] as number;
      if (!Number.isFinite(v)) {
        throw new NumericalError(
          `${fn}: ${what}.${side}[${Math.floor(k / d)}][${
            k % d
          }] is ${v}, expected a finite number`,
        );
      }
    }
  }
}

/** Checks a finite vector of length `len` (any numeric array-like). */
export function _checkVector(fn: string, what: string, v: ArrayLike<number>, len?: number): void {
  if (v === null || typeof v !== "object" || typeof v.length !== "number") {
    throw new TypeError(`${fn}: ${what} is ${String(v)}, expected an array of numbers`);
  }
  if (v.length === 0) throw new ShapeError(`${fn}: ${what} is empty, expected at least 1 value`);
  if (len !== undefined && v.length !== len) {
    throw new ShapeError(`${fn}: ${what} has ${v.length} values, expected ${len}`);
  }
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isFinite(x)) {
      throw new NumericalError(`${fn}: ${what}[${i}] is ${String(x)}, expected a finite number`);
    }
  }
}

/** Checks probabilities: finite and in [0, 1]. */
export function _checkProbabilities(
  fn: string,
  what: string,
  p: ArrayLike<number>,
  len?: number,
): void {
  _checkVector(fn, what, p, len);
  for (let i = 0; i < p.length; i++) {
    const x = p[i] as number;
    if (x < 0 || x > 1) {
      throw new RangeError(`${fn}: ${what}[${i}] is ${x}, expected a probability in [0, 1]`);
    }
  }
}

/**
 * Checks 0/1 labels of length `n` (NaN allowed for unlabelled pairs when `allowNaN`); returns
 * the number of pairs labelled 0 and 1.
 */
export function _checkLabels(
  fn: string,
  what: string,
  y: ArrayLike<number>,
  n: number,
  allowNaN = false,
): [number, number] {
  if (y === null || typeof y !== "object" || typeof y.length !== "number") {
    throw new TypeError(`${fn}: ${what} is ${String(y)}, expected an array of 0/1 labels`);
  }
  if (y.length !== n) {
    throw new ShapeError(`${fn}: ${what} has ${y.length} labels for ${n} pairs`);
  }
  let n0 = 0, n1 = 0;
  for (let i = 0; i < n; i++) {
    const v = y[i];
    if (v === 0) n0++;
    else if (v === 1) n1++;
    else if (!(allowNaN && typeof v === "number" && Number.isNaN(v))) {
      throw new RangeError(
        `${fn}: ${what}[${i}] is ${String(v)}, expected 0 or 1${
          allowNaN ? " (or NaN for unlabelled)" : ""
        }`,
      );
    }
  }
  return [n0, n1];
}

/** Checks that a numeric option is finite (and > 0 when `positive`). */
export function _checkOption(fn: string, what: string, v: number, positive = true): void {
  if (typeof v !== "number" || !Number.isFinite(v) || (positive && !(v > 0))) {
    throw new RangeError(
      `${fn}: option ${what} is ${String(v)}, expected a finite number${positive ? " > 0" : ""}`,
    );
  }
}
