/**
 * Failing together: a step that every rank runs (or that rank 0 runs for all) and that, when it
 * throws on any rank, ends every rank with the error — rank 0 with the failing rank's error, the
 * others with {@linkcode RankFailed} — instead of leaving them waiting in the next collective.
 *
 * @module
 */
import type { Communicator } from "./communicator.ts";
import { FormatError } from "../core/errors.ts";

/**
 * Thrown on the ranks other than 0 when some rank failed: rank 0 throws the error itself. The
 * communicator is closed by then; end the process with a non-zero status.
 */
export class RankFailed extends Error {
  /**
   * Creates the error.
   * @param message Which rank failed and how.
   */
  constructor(message: string) {
    super(message);
    this.name = "RankFailed";
  }
}

/** An error as it travels between ranks. */
export interface WireError {
  /** The error's class name, e.g. "FormatError". */
  name: string;
  /** Its message. */
  message: string;
}

/** An error as it travels between ranks. */
export function wireError(e: unknown): WireError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message };
}

/** An error of the class `name` names (FormatError, the built-in ones, Deno.errors.*). */
export function reviveError(w: WireError): Error {
  const classes: Record<string, new (m: string) => Error> = {
    FormatError,
    RangeError,
    TypeError,
    ...(Deno.errors as unknown as Record<string, new (m: string) => Error>),
  };
  const C = Object.hasOwn(classes, w.name) ? classes[w.name]! : Error;
  const err = new C(w.message);
  if (err.name !== w.name) err.name = w.name;
  return err;
}

const enc = new TextEncoder(), dec = new TextDecoder();

/**
 * Runs `fn` on every rank; when it throws on any, every rank knows: the communicator is closed,
 * rank 0 throws the error of the lowest failing rank (its own when it failed) and the others
 * throw {@linkcode RankFailed}. On one rank it is `fn()`.
 */
export async function onEveryRank<T>(comm: Communicator, fn: () => T | Promise<T>): Promise<T> {
  if (comm.size === 1) return await fn();
  let value: T | undefined, failure: unknown, failed = false;
  try {
    value = await fn();
  } catch (e) {
    failure = e;
    failed = true;
  }
  const all = comm.allGatherVSync(enc.encode(JSON.stringify(failed ? wireError(failure) : null)))
    .map((b) => JSON.parse(dec.decode(b)) as WireError | null);
  const first = all.findIndex((x) => x !== null);
  if (first < 0) return value as T;
  comm.close();
  if (comm.rank !== 0) throw new RankFailed(`rank ${first} failed: ${all[first]!.message}`);
  throw first === 0 ? failure : reviveError(all[first]!);
}

/**
 * Runs `fn` on rank 0 only and hands its value (anything JSON holds) to every rank; an error
 * ends every rank as in {@linkcode onEveryRank}.
 */
export async function fromRoot<T>(comm: Communicator, fn: () => T | Promise<T>): Promise<T> {
  if (comm.size === 1) return await fn();
  let mine = new Uint8Array(0), failure: unknown;
  if (comm.rank === 0) {
    try {
      mine = enc.encode(JSON.stringify({ value: await fn() }));
    } catch (e) {
      failure = e;
      mine = enc.encode(JSON.stringify({ error: wireError(e) }));
    }
  }
  const got = JSON.parse(dec.decode(comm.allGatherVSync(mine)[0]!)) as {
    value?: T;
    error?: WireError;
  };
  if (got.error === undefined) return got.value as T;
  comm.close();
  if (comm.rank !== 0) throw new RankFailed(`rank 0 failed: ${got.error.message}`);
  throw failure;
}

/**
 * `p`'s value; when `p` throws {@linkcode RankFailed} (another rank failed, and rank 0 reports
 * it) this process exits with status 1 without a message of its own. A script wraps each
 * {@linkcode onEveryRank} or {@linkcode fromRoot} step in it.
 */
export async function exitIfRankFailed<T>(p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (e) {
    if (e instanceof RankFailed) Deno.exit(1);
    throw e;
  }
}
