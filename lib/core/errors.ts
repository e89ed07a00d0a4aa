/**
 * Error classes that callers may want to catch by type. Everything else throws the built-in
 * `TypeError` (wrong kind of value) or `RangeError` (value out of its allowed range).
 *
 * @module
 */

/** A matrix or tensor does not have the shape an operation needs. */
export class ShapeError extends Error {
  /**
   * Creates the error.
   * @param message One sentence naming the offending shape and the expected one.
   */
  constructor(message: string) {
    super(message);
    this.name = "ShapeError";
  }
}

/** A file or record is malformed; the message names the file and, where known, the line. */
export class FormatError extends Error {
  /**
   * Creates the error.
   * @param message One sentence naming the file, the place and what was expected.
   */
  constructor(message: string) {
    super(message);
    this.name = "FormatError";
  }
}

/** A kernel backend (cpu or cuda) was asked for but cannot be used here. */
export class BackendUnavailableError extends Error {
  /**
   * Creates the error.
   * @param message One sentence naming the backend and why it is unavailable.
   */
  constructor(message: string) {
    super(message);
    this.name = "BackendUnavailableError";
  }
}

/** A numerical procedure failed (not positive definite, NaN in the input, no convergence). */
export class NumericalError extends Error {
  /**
   * Creates the error.
   * @param message One sentence naming what failed and with which parameters.
   */
  constructor(message: string) {
    super(message);
    this.name = "NumericalError";
  }
}

/**
 * `v` as an error message quotes it: JSON (numbers as written, Infinity too), cut to `max`
 * characters; never throws, not even for a nesting deeper than the stack.
 *
 * @example
 * ```ts
 * import { quoteValue } from "./errors.ts";
 * if (quoteValue([1, "a"]) !== '[1,"a"]' || quoteValue(Infinity) !== "Infinity") throw new Error();
 * ```
 */
export function quoteValue(v: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof v === "number" || typeof v === "bigint" || v === undefined
      ? String(v)
      : JSON.stringify(v) ?? typeof v;
  } catch { // deeper than the stack, or a BigInt inside
    s = Array.isArray(v) ? "a deeply nested list" : `a deeply nested ${typeof v}`;
  }
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

/**
 * The error for a checkpoint folder without `config.json`: when the folder itself does not exist
 * it says so, relative to the working directory (a mistyped `--model` path), else that the folder
 * has no config.json.
 *
 * @example
 * ```ts
 * import { missingConfigError } from "./errors.ts";
 * const e = missingConfigError("no/such/model");
 * if (!e.message.startsWith("Checkpoint folder 'no/such/model' does not exist")) throw e;
 * ```
 */
export function missingConfigError(dir: string, what = "Checkpoint folder"): FormatError {
  let exists = true;
  try {
    Deno.statSync(dir);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) exists = false;
  }
  if (exists) return new FormatError(`${what} '${dir}' has no config.json`);
  const rel = dir.startsWith("/") ? "" : (() => {
    try {
      return ` (relative to '${Deno.cwd()}')`;
    } catch {
      return " (relative to the working directory)";
    }
  })();
  return new FormatError(`${what} '${dir}' does not exist${rel}`);
}
