/**
 * The `@std/assert` names lmkit uses, over `node:assert/strict` (JSR is out of reach here).
 * Swapping this file for `jsr:@std/assert` changes nothing else.
 *
 * @module
 */
import assert from "node:assert/strict";

/** Asserts that `actual` deep-equals `expected`. */
export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) assert.deepStrictEqual(actual, expected);
  else assert.deepStrictEqual(actual, expected, msg);
}

/** Asserts that `actual` does not deep-equal `expected`. */
export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (msg === undefined) assert.notDeepStrictEqual(actual, expected);
  else assert.notDeepStrictEqual(actual, expected, msg);
}

/** Asserts that `expr` is truthy. */
export function assert_(expr: unknown, msg = "Assertion failed"): asserts expr {
  assert.ok(expr, msg);
}
export { assert_ as assert };

/** Asserts that |actual − expected| ≤ tolerance (default 1e-7 of |expected|). */
export function assertAlmostEquals(
  actual: number,
  expected: number,
  tolerance?: number,
  msg?: string,
): void {
  const tol = tolerance ?? Math.max(1e-7 * Math.abs(expected), 1e-7);
  if (!(Math.abs(actual - expected) <= tol) && !(actual === expected)) {
    throw new assert.AssertionError({
      message: msg ?? `Expected ${actual} to be within ${tol} of ${expected}`,
      actual,
      expected,
    });
  }
}

/** Asserts that `fn` throws, optionally an instance of `ErrorClass` whose message includes `msgIncludes`. */
export function assertThrows<E extends Error = Error>(
  fn: () => unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => E,
  msgIncludes?: string,
): E {
  try {
    fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as E;
  }
  throw new assert.AssertionError({ message: "Expected the function to throw" });
}

/** Asserts that the promise returned by `fn` rejects, optionally with `ErrorClass` and `msgIncludes`. */
export async function assertRejects<E extends Error = Error>(
  fn: () => PromiseLike<unknown>,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => E,
  msgIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    checkError(e, ErrorClass, msgIncludes);
    return e as E;
  }
  throw new assert.AssertionError({ message: "Expected the promise to reject" });
}

function checkError(
  e: unknown,
  // deno-lint-ignore no-explicit-any
  ErrorClass?: abstract new (...args: any[]) => unknown,
  msgIncludes?: string,
): void {
  if (ErrorClass && !(e instanceof ErrorClass)) {
    throw new assert.AssertionError({
      message: `Expected error to be ${ErrorClass.name}, got ${(e as Error)?.name}: ${
        (e as Error)?.message
      }`,
    });
  }
  if (msgIncludes !== undefined && !String((e as Error)?.message).includes(msgIncludes)) {
    throw new assert.AssertionError({
      message: `Expected error message to include "${msgIncludes}", got "${(e as Error)?.message}"`,
    });
  }
}

/** Options of {@linkcode assertClose}. */
export interface CloseOptions {
  /** Relative tolerance on the L2 norm of the difference (default 1e-5). */
  rtol?: number;
  /** Absolute tolerance added to the bound (default 0). */
  atol?: number;
  /** Context (seed, shape, backend) put before the message of a failure. */
  msg?: string;
}

/**
 * Asserts ‖actual − expected‖₂ ≤ rtol·‖expected‖₂ + atol·√n, for numeric arrays of equal length.
 * The message gives the relative error and the worst element.
 */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  options: CloseOptions = {},
): void {
  const { rtol = 1e-5, atol = 0 } = options, at = options.msg ? `${options.msg}: ` : "";
  if (actual.length !== expected.length) {
    throw new assert.AssertionError({
      message: `${at}Length mismatch: actual ${actual.length}, expected ${expected.length}`,
    });
  }
  let diff = 0, norm = 0, worst = 0, worstAt = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number, b = expected[i] as number;
    const d = a - b;
    if (Number.isNaN(a) !== Number.isNaN(b)) {
      throw new assert.AssertionError({ message: `${at}NaN mismatch at ${i}: ${a} vs ${b}` });
    }
    if (Number.isNaN(a)) continue;
    diff += d * d;
    norm += b * b;
    if (Math.abs(d) > worst) {
      worst = Math.abs(d);
      worstAt = i;
    }
  }
  const bound = rtol * Math.sqrt(norm) + atol * Math.sqrt(actual.length);
  if (!(Math.sqrt(diff) <= bound)) {
    throw new assert.AssertionError({
      message: `${at}Arrays differ: relative L2 error ${
        (Math.sqrt(diff) / (Math.sqrt(norm) || 1)).toExponential(3)
      } exceeds rtol ${rtol} (atol ${atol}); worst element ${worstAt}: ${actual[worstAt]} vs ${
        expected[worstAt]
      }`,
    });
  }
}
