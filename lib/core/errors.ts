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
