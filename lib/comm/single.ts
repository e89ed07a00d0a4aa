/**
 * The `single` communicator: a world of one rank, with no dependency. Every collective is its
 * definition for one rank (a sum over one rank is the input; a gather is a copy); arguments are
 * checked as on the other backends.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import type { CommBackend, Communicator } from "./communicator.ts";
import { checkByteList, checkBytes, checkF32, checkFloats, checkRoot } from "./_check.ts";

function sameLength(call: string, what: string, have: number, need: number, why: string): void {
  if (have !== need) {
    throw new ShapeError(`${call}: ${what} holds ${have} elements, expected ${need} (${why})`);
  }
}

function copyInto<T extends Uint8Array | Float32Array>(
  call: string,
  src: T,
  out: T | undefined,
  make: (n: number) => T,
): T {
  if (out === undefined) return copy(src, make);
  sameLength(call, "out", out.length, src.length, "the input's length");
  out.set(src);
  return out;
}

function copy<T extends Uint8Array | Float32Array>(src: T, make: (n: number) => T): T {
  const out = make(src.length);
  out.set(src);
  return out;
}

/**
 * A world of one rank.
 *
 * @example
 * ```ts
 * import { SingleCommunicator } from "./single.ts";
 * const comm = new SingleCommunicator();
 * const parts = await comm.allToAllV([new Uint8Array([1, 2, 3])]);
 * if (comm.rank !== 0 || parts[0]!.length !== 3) throw new Error("wrong world");
 * comm.close();
 * ```
 */
export class SingleCommunicator implements Communicator {
  /** Always `single`. */
  readonly backend: CommBackend = "single";
  /** Always 0. */
  readonly rank = 0;
  /** Always 1. */
  readonly size = 1;
  #closed = false;

  /** `single (rank 0 of 1)`. */
  describe(): string {
    return "single (rank 0 of 1)";
  }

  #open(call: string): void {
    if (this.#closed) throw new Error(`${call}: the communicator is closed`);
  }

  /** Checks `buf`; a sum over one rank leaves it as it is. */
  allReduceSync(buf: Float32Array | Float64Array): void {
    this.#open("allReduce");
    checkFloats("allReduce", "buf", buf);
  }

  /** {@linkcode SingleCommunicator.allReduceSync} as a Promise. */
  allReduce(buf: Float32Array | Float64Array): Promise<void> {
    return Promise.try(() => this.allReduceSync(buf));
  }

  /** A copy of `send` (one block, summed over one rank). */
  reduceScatterSync(send: Float32Array, out?: Float32Array): Float32Array {
    this.#open("reduceScatter");
    checkF32("reduceScatter", "send", send);
    if (out !== undefined) checkF32("reduceScatter", "out", out);
    return copyInto("reduceScatter", send, out, (n) => new Float32Array(n));
  }

  /** {@linkcode SingleCommunicator.reduceScatterSync} as a Promise. */
  reduceScatter(send: Float32Array, out?: Float32Array): Promise<Float32Array> {
    return Promise.try(() => this.reduceScatterSync(send, out));
  }

  /** A copy of `send`. */
  allGatherSync(send: Uint8Array, out?: Uint8Array): Uint8Array {
    this.#open("allGather");
    checkBytes("allGather", "send", send);
    if (out !== undefined) checkBytes("allGather", "out", out);
    return copyInto("allGather", send, out, (n) => new Uint8Array(n));
  }

  /** {@linkcode SingleCommunicator.allGatherSync} as a Promise. */
  allGather(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array> {
    return Promise.try(() => this.allGatherSync(send, out));
  }

  /** `[a copy of send]`. */
  allGatherVSync(send: Uint8Array): Uint8Array[] {
    this.#open("allGatherV");
    return [copy(checkBytes("allGatherV", "send", send), (n) => new Uint8Array(n))];
  }

  /** {@linkcode SingleCommunicator.allGatherVSync} as a Promise. */
  allGatherV(send: Uint8Array): Promise<Uint8Array[]> {
    return Promise.try(() => this.allGatherVSync(send));
  }

  /** A copy of `send` (one block, to and from this rank). */
  allToAllSync(send: Uint8Array, out?: Uint8Array): Uint8Array {
    this.#open("allToAll");
    checkBytes("allToAll", "send", send);
    if (out !== undefined) checkBytes("allToAll", "out", out);
    return copyInto("allToAll", send, out, (n) => new Uint8Array(n));
  }

  /** {@linkcode SingleCommunicator.allToAllSync} as a Promise. */
  allToAll(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array> {
    return Promise.try(() => this.allToAllSync(send, out));
  }

  /** `[a copy of send[0]]`; `send` must have one entry. */
  allToAllVSync(send: readonly Uint8Array[]): Uint8Array[] {
    this.#open("allToAllV");
    checkByteList("allToAllV", send);
    sameLength("allToAllV", "send", send.length, 1, "one block per rank");
    return [copy(send[0]!, (n) => new Uint8Array(n))];
  }

  /** {@linkcode SingleCommunicator.allToAllVSync} as a Promise. */
  allToAllV(send: readonly Uint8Array[]): Promise<Uint8Array[]> {
    return Promise.try(() => this.allToAllVSync(send));
  }

  /** Checks the arguments; `root` must be 0. */
  broadcastSync(buf: Uint8Array, root: number): void {
    this.#open("broadcast");
    checkBytes("broadcast", "buf", buf);
    checkRoot("broadcast", root, 1);
  }

  /** {@linkcode SingleCommunicator.broadcastSync} as a Promise. */
  broadcast(buf: Uint8Array, root: number): Promise<void> {
    return Promise.try(() => this.broadcastSync(buf, root));
  }

  /** Returns at once. */
  barrierSync(): void {
    this.#open("barrier");
  }

  /** Resolves at once. */
  barrier(): Promise<void> {
    return Promise.try(() => this.barrierSync());
  }

  /** Ends the communicator; later calls throw. */
  close(): void {
    this.#closed = true;
  }

  /** {@linkcode SingleCommunicator.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}
