/**
 * The error class of failed collectives.
 *
 * @module
 */

/**
 * A collective failed between ranks: it did not complete within the communicator's timeout (a
 * rank died, hangs, or never made the call), MPI reported an error, the ranks were at different
 * calls, or an earlier failure left the communicator unusable. The message names the call, its
 * number and this rank.
 */
export class CommError extends Error {
  /**
   * Creates the error.
   * @param message One sentence naming the call, this rank and what went wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "CommError";
  }
}
