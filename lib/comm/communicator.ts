/**
 * One communicator interface over a world of `size` ranks, and the choice of its backend.
 *
 * Every collective has a blocking form (`allReduceSync`, …) and a non-blocking one (`allReduce`,
 * …) that returns a Promise and runs off the JavaScript thread (on the `mpi` backend, in a Deno
 * `nonblocking` FFI call on a worker thread), so that computation can overlap communication.
 * Calls, blocking or not, run in the order they were issued, one at a time, and every rank must
 * issue the same collectives in the same order. Until a non-blocking call's Promise settles, its
 * buffers belong to the communicator: do not read or write them.
 *
 * Failures are symmetric where they can be: a size that differs between ranks, or an invalid
 * argument on one rank, fails the call on every rank (ShapeError or RangeError, no data moved)
 * and the communicator stays usable. A call that times out or that MPI reports failed throws
 * {@linkcode CommError} and leaves the communicator unusable; the process should then exit with
 * a non-zero status (mpirun ends the other ranks).
 *
 * {@linkcode DeviceCommunicator} is the same set of collectives over GPU memory
 * ({@linkcode DeviceBuffer}s, or ranges of them), with the `nccl` backend
 * (`createNcclCommunicator` in `./nccl.ts`): one process per GPU, NCCL loaded at run time, its
 * unique id sent over the `mpi` communicator.
 *
 * @module
 */
import { quoteValue } from "../core/errors.ts";
import type { DeviceBuffer } from "../../ffi/mod.ts";
import { SingleCommunicator } from "./single.ts";
import { MpiCommunicator } from "./mpi.ts";

/** The communicator backends. */
export type CommBackend = "single" | "mpi";
/** The communicator backends: `single` (the default) and `mpi`. */
export const COMM_BACKENDS: readonly CommBackend[] = ["single", "mpi"];

/** Options of {@linkcode createCommunicator}. */
export interface CommOptions {
  /**
   * mpi: the most seconds a collective may wait for the other ranks before it fails with a
   * CommError and leaves the communicator unusable (default 600).
   */
  timeoutSeconds?: number;
  /**
   * mpi: the most elements one MPI call moves (default and upper bound 2^31 − 1, MPI's int
   * counts); larger buffers are split. Every rank must pass the same.
   */
  maxCount?: number;
}

/**
 * A world of `size` ranks that exchange buffers. Sums are element-wise; byte collectives move
 * `Uint8Array`s (view other typed arrays as bytes with `new Uint8Array(a.buffer, a.byteOffset,
 * a.byteLength)`). Each result buffer is new unless an `out` buffer is given.
 */
export interface Communicator extends Disposable {
  /** The backend in use. */
  readonly backend: CommBackend;
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** One line for a script's report: the backend, its library, rank and size. */
  describe(): string;

  /** In place: `buf` becomes the element-wise sum of every rank's `buf` (same length on all). */
  allReduceSync(buf: Float32Array | Float64Array): void;
  /** {@linkcode Communicator.allReduceSync}, off the JavaScript thread. */
  allReduce(buf: Float32Array | Float64Array): Promise<void>;

  /**
   * `send` holds `size` blocks of n elements; the result (n elements) is the sum over ranks of
   * their block number `rank`. Every rank passes the same n.
   */
  reduceScatterSync(send: Float32Array, out?: Float32Array): Float32Array;
  /** {@linkcode Communicator.reduceScatterSync}, off the JavaScript thread. */
  reduceScatter(send: Float32Array, out?: Float32Array): Promise<Float32Array>;

  /** Every rank's `send` (same length n on all), rank r's at bytes [r·n, (r+1)·n). */
  allGatherSync(send: Uint8Array, out?: Uint8Array): Uint8Array;
  /** {@linkcode Communicator.allGatherSync}, off the JavaScript thread. */
  allGather(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array>;

  /** Every rank's `send`, of any lengths: element r is rank r's (views of one new buffer). */
  allGatherVSync(send: Uint8Array): Uint8Array[];
  /** {@linkcode Communicator.allGatherVSync}, off the JavaScript thread. */
  allGatherV(send: Uint8Array): Promise<Uint8Array[]>;

  /**
   * `send` holds `size` blocks of b bytes, block j for rank j (same b on all); the result holds
   * the block for this rank from every rank, rank r's at bytes [r·b, (r+1)·b).
   */
  allToAllSync(send: Uint8Array, out?: Uint8Array): Uint8Array;
  /** {@linkcode Communicator.allToAllSync}, off the JavaScript thread. */
  allToAll(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array>;

  /**
   * `send[j]` (any length) goes to rank j; element r of the result is what rank r sent this
   * rank (views of one new buffer). `send` has one entry per rank.
   */
  allToAllVSync(send: readonly Uint8Array[]): Uint8Array[];
  /** {@linkcode Communicator.allToAllVSync}, off the JavaScript thread. */
  allToAllV(send: readonly Uint8Array[]): Promise<Uint8Array[]>;

  /** In place: every rank's `buf` becomes `root`'s (same length and root on all ranks). */
  broadcastSync(buf: Uint8Array, root: number): void;
  /** {@linkcode Communicator.broadcastSync}, off the JavaScript thread. */
  broadcast(buf: Uint8Array, root: number): Promise<void>;

  /** Returns once every rank has called it. */
  barrierSync(): void;
  /** {@linkcode Communicator.barrierSync}, off the JavaScript thread. */
  barrier(): Promise<void>;

  /**
   * Collective: waits for every earlier call, then ends the communicator (on `mpi`, finalises
   * MPI; a process cannot start MPI again). Does nothing the second time.
   */
  close(): void;
}

/**
 * A communicator of the given backend (a script's `--dist` flag): `single` (the default) is a
 * world of one rank with no dependency; `mpi` needs the process to be started by `mpirun`,
 * `ffi/build/liblmkit_mpi.so` built over Open MPI, and `--allow-ffi=ffi/build`.
 *
 * @example A world of one
 * ```ts
 * import { createCommunicator } from "./communicator.ts";
 * using comm = createCommunicator("single");
 * const g = new Float32Array([1, 2, 3]);
 * await comm.allReduce(g); // the sum over one rank
 * const all = comm.allGatherVSync(new Uint8Array([7, 8]));
 * if (comm.size !== 1 || g[2] !== 3 || all[0]![1] !== 8) throw new Error("wrong world");
 * ```
 */
export function createCommunicator(
  backend: string = "single",
  options: CommOptions = {},
): Communicator {
  switch (backend) {
    case "single":
      return new SingleCommunicator();
    case "mpi":
      return MpiCommunicator.open(options);
    default:
      throw new RangeError(
        `Unknown communicator backend ${quoteValue(backend)}: expected ${
          COMM_BACKENDS.join(" or ")
        }${
          backend === "nccl"
            ? " (nccl moves device buffers, not host arrays: use createNcclCommunicator())"
            : ""
        }`,
      );
  }
}

/** The device communicator backends. */
export type DeviceCommBackend = "nccl";

/** A reduction of {@linkcode DeviceCommunicator}: element-wise over ranks (`avg`: sum / size). */
export type ReduceOp = "sum" | "prod" | "max" | "min" | "avg";

/**
 * Elements [offset, offset + length) of a device buffer (offset 0 and the rest of the buffer by
 * default): a DDP bucket or an FSDP shard is a range of one flat buffer.
 */
export interface DeviceRange {
  /** The buffer. */
  readonly buffer: DeviceBuffer;
  /** The first element (default 0). */
  readonly offset?: number;
  /** The number of elements (default: to the end of the buffer). */
  readonly length?: number;
}

/** A whole device buffer or a range of one. */
export type DeviceSpan = DeviceBuffer | DeviceRange;

/**
 * A world of `size` ranks, one process per GPU, that exchange device memory. Lengths count
 * elements of the buffers' element type; send and recv of one call share it. Reductions take
 * f32, f64 or bf16. Each blocking call returns when its data is in place on this rank; each
 * non-blocking one runs the same call on a worker thread and resolves then (until it settles,
 * its buffers belong to the communicator: do not free, read or write them). Calls, blocking or
 * not, run in the order they were issued, and every rank must issue the same calls in the same
 * order. A call that fails its argument checks throws (ShapeError, RangeError, TypeError) and
 * the communicator stays usable; with several ranks such a failure, or sizes that differ
 * between ranks, fails the call on every rank. A call that times out or that NCCL reports
 * failed throws {@linkcode CommError} and leaves the communicator unusable.
 */
export interface DeviceCommunicator extends Disposable {
  /** The backend in use. */
  readonly backend: DeviceCommBackend;
  /** This process's rank, 0 … size − 1. */
  readonly rank: number;
  /** The number of ranks. */
  readonly size: number;
  /** One line for a script's report: the backend, its library, rank and size. */
  describe(): string;

  /** In place: `buf` becomes the reduction (default `sum`) of every rank's `buf` (same length). */
  allReduceSync(buf: DeviceSpan, op?: ReduceOp): void;
  /** {@linkcode DeviceCommunicator.allReduceSync}, off the JavaScript thread. */
  allReduce(buf: DeviceSpan, op?: ReduceOp): Promise<void>;

  /**
   * `send` holds `size` blocks of n elements; `recv` (n elements) becomes the reduction over
   * ranks of their block number `rank`. In place when `recv` is that block of `send`.
   */
  reduceScatterSync(send: DeviceSpan, recv: DeviceSpan, op?: ReduceOp): void;
  /** {@linkcode DeviceCommunicator.reduceScatterSync}, off the JavaScript thread. */
  reduceScatter(send: DeviceSpan, recv: DeviceSpan, op?: ReduceOp): Promise<void>;

  /**
   * `recv` (`size` × n elements) becomes every rank's `send` (n elements), rank r's at block r.
   * In place when `send` is block `rank` of `recv`.
   */
  allGatherSync(send: DeviceSpan, recv: DeviceSpan): void;
  /** {@linkcode DeviceCommunicator.allGatherSync}, off the JavaScript thread. */
  allGather(send: DeviceSpan, recv: DeviceSpan): Promise<void>;

  /**
   * `send` holds `size` blocks of b elements, block j for rank j; `recv` (as long, not
   * overlapping `send`) becomes the block for this rank from every rank, rank r's at block r.
   */
  allToAllSync(send: DeviceSpan, recv: DeviceSpan): void;
  /** {@linkcode DeviceCommunicator.allToAllSync}, off the JavaScript thread. */
  allToAll(send: DeviceSpan, recv: DeviceSpan): Promise<void>;

  /** In place: every rank's `buf` becomes `root`'s (same length and root on all ranks). */
  broadcastSync(buf: DeviceSpan, root: number): void;
  /** {@linkcode DeviceCommunicator.broadcastSync}, off the JavaScript thread. */
  broadcast(buf: DeviceSpan, root: number): Promise<void>;

  /** Returns once every rank has called it. */
  barrierSync(): void;
  /** {@linkcode DeviceCommunicator.barrierSync}, off the JavaScript thread. */
  barrier(): Promise<void>;

  /** Waits for every earlier call, then ends the communicator. Does nothing the second time. */
  close(): void;
}
