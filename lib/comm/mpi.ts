/**
 * The `mpi` communicator: the ranks of an `mpirun` job, through `ffi/build/liblmkit_mpi.so` over
 * Open MPI (`ffi/mpi/`).
 *
 * Start a script as `mpirun -np N deno run --allow-ffi=ffi/build … --dist mpi` (across machines
 * add `--hostfile FILE`; as root `--allow-run-as-root`; more ranks than cores `--oversubscribe`).
 * Blocking calls run MPI on the JavaScript thread; non-blocking ones run the same C function on
 * one of Deno's worker threads. Each call carries its position in this process's sequence of
 * calls (a ticket) and the C side runs them strictly in that order, one at a time, so MPI runs
 * at thread level `serialized` and every rank enters its collectives in program order. Every
 * call is handed to the C side at once (a variable-size result is collected by the C side and
 * copied out afterwards), so a blocking call never waits for an earlier call that the blocked
 * JavaScript thread would still have to start.
 *
 * Before moving data, each call agrees with the other ranks on the call number, the operation
 * and its sizes (one small all-reduce): a difference fails the call on every rank with one
 * sentence naming both values. A rank that dies makes mpirun end every other rank within about
 * a second: a rank awaiting a non-blocking call (or between calls) prints one line on the SIGTERM
 * it receives, naming the call it was in; one blocked in a blocking call cannot run JavaScript
 * and is killed a second later, silently; mpirun's own message names the rank that died. A rank
 * that never joins a call makes the others fail after the timeout with a {@linkcode CommError}.
 *
 * @module
 */
import { BackendUnavailableError, quoteValue, ShapeError } from "../core/errors.ts";
import {
  cString,
  mpiInfo,
  mpiLastError,
  type MpiLib,
  mpiLibrary,
  MpiStatus,
} from "../../ffi/mpi/mod.ts";
import type { CommBackend, CommOptions, Communicator } from "./communicator.ts";
import { CommError } from "./errors.ts";
import {
  checkByteList,
  checkBytes,
  checkF32,
  checkFloats,
  checkRoot,
  packed,
  split,
} from "./_check.ts";

const ERR_CAP = 1024;
/** MPI's largest count (int). */
const INT_MAX = 2 ** 31 - 1;
/** The default timeout of a collective, in seconds. */
export const DEFAULT_COMM_TIMEOUT_SECONDS = 600;

let started = false;

function statusError(status: number, message: string): Error {
  switch (status) {
    case MpiStatus.ESHAPE:
      return new ShapeError(message);
    case MpiStatus.EARG:
      return new RangeError(message);
    case MpiStatus.EBACKEND:
      return new BackendUnavailableError(message);
    case MpiStatus.ECOMM:
      return new CommError(message);
    default:
      return new Error(`${message} (status ${status})`);
  }
}

function checkOptions(
  o: CommOptions,
): { timeout: number | undefined; maxCount: number | undefined } {
  const t = o.timeoutSeconds, m = o.maxCount;
  if (t !== undefined && !(typeof t === "number" && t > 0 && Number.isFinite(t))) {
    throw new RangeError(`Communicator timeout ${quoteValue(t)} s is not a positive number`);
  }
  if (m !== undefined && !(Number.isInteger(m) && m >= 1 && m <= INT_MAX)) {
    throw new RangeError(
      `Communicator maxCount ${quoteValue(m)} is not an integer in [1, ${INT_MAX}]`,
    );
  }
  return { timeout: t, maxCount: m };
}

type Err = Uint8Array<ArrayBuffer>;

/**
 * The ranks of an `mpirun` job. Create it with `createCommunicator("mpi")`; there is one per
 * process, and after {@linkcode MpiCommunicator.close} MPI cannot be started again. It closes
 * itself when the process ends normally (exit status 0), and never after a failure: MPI_Finalize
 * would wait for the other ranks.
 */
export class MpiCommunicator implements Communicator {
  /** Always `mpi`. */
  readonly backend: CommBackend = "mpi";
  /** This process's rank in the job. */
  readonly rank: number;
  /** The number of ranks in the job. */
  readonly size: number;
  /** The MPI library's version line, e.g. `Open MPI v4.1.4, package: Debian OpenMPI, …`. */
  readonly library: string;
  /** The thread level MPI provides (`serialized` or `multiple`). */
  readonly threadLevel: string;
  #lib: MpiLib;
  #next = 0;
  #closed = false;
  #timeout: number;
  #maxCount = INT_MAX;
  #pending = new Map<number, string>();
  #onTerm = () => this.#terminated();
  #onUnload = () => this.#unload();

  private constructor(lib: MpiLib, rank: number, size: number, timeout: number) {
    this.#lib = lib;
    this.rank = rank;
    this.size = size;
    this.#timeout = timeout;
    const info = mpiInfo(lib);
    this.library = String(info.library);
    this.threadLevel = String(info.threadLevel);
    try {
      Deno.addSignalListener("SIGTERM", this.#onTerm);
    } catch { /* no signals on this platform */ }
    globalThis.addEventListener("unload", this.#onUnload);
  }

  /**
   * Starts MPI and returns the job's communicator (what `createCommunicator("mpi", options)`
   * does). Throws a BackendUnavailableError when the library cannot be loaded or MPI cannot
   * start.
   */
  static open(options: CommOptions = {}): MpiCommunicator {
    const { timeout, maxCount } = checkOptions(options);
    const { lib, reason } = mpiLibrary();
    if (!lib) throw new BackendUnavailableError(`Backend 'mpi' is unavailable: ${reason}`);
    if (started) {
      throw new Error(
        "Cannot create a second mpi communicator: MPI was already started in this process",
      );
    }
    const out = new Int32Array(4), t = timeout ?? DEFAULT_COMM_TIMEOUT_SECONDS;
    const st = lib.lk_mpi_init(t, out, out.length);
    if (st !== 0) throw statusError(st, mpiLastError(lib));
    started = true;
    const comm = new MpiCommunicator(lib, out[0]!, out[1]!, t);
    if (maxCount !== undefined && maxCount !== INT_MAX) comm.configureSync({ maxCount });
    return comm;
  }

  /** `mpi (Open MPI v4.1.4, rank 0 of 4, thread level serialized)`. */
  describe(): string {
    const lib = this.library.split(",")[0];
    return `mpi (${lib}, rank ${this.rank} of ${this.size}, thread level ${this.threadLevel})`;
  }

  /**
   * Collective: changes the timeout and the chunk limit (the most elements per MPI call; every
   * rank must pass the same) for the calls after this one.
   */
  configureSync(options: CommOptions): void {
    const { timeout, maxCount } = checkOptions(options);
    const t = timeout ?? this.#timeout, m = maxCount ?? this.#maxCount;
    this.#call("configure", (k, e) => this.#lib.lk_mpi_configure(k, t, m, e, ERR_CAP));
    this.#timeout = t;
    this.#maxCount = m;
  }

  #usable(call: string): void {
    if (this.#closed) throw new Error(`${call}: the mpi communicator is closed`);
  }

  /** Makes call number `ticket` (the next); returns the ticket. */
  #call(call: string, f: (ticket: number, err: Err) => number): number {
    this.#usable(call);
    const err = new Uint8Array(ERR_CAP), t = this.#next++;
    const st = f(t, err);
    if (st !== 0) throw statusError(st, cString(err));
    return t;
  }

  /** Starts call number `ticket` (the next) at once, off the JavaScript thread; resolves to it. */
  async #callAsync(
    call: string,
    f: (ticket: number, err: Err) => Promise<number>,
  ): Promise<number> {
    this.#usable(call);
    const err = new Uint8Array(ERR_CAP), t = this.#next++;
    this.#pending.set(t, call);
    try {
      const st = await f(t, err);
      if (st !== 0) throw statusError(st, cString(err));
      return t;
    } finally {
      this.#pending.delete(t);
    }
  }

  /** The element-wise sum over ranks, in place (blocking). */
  allReduceSync(buf: Float32Array | Float64Array): void {
    checkFloats("allReduce", "buf", buf);
    this.#call(
      "allReduce",
      (t, e) =>
        buf instanceof Float32Array
          ? this.#lib.lk_mpi_allreduce_f32(t, buf, buf.length, e, ERR_CAP)
          : this.#lib.lk_mpi_allreduce_f64(t, buf, buf.length, e, ERR_CAP),
    );
  }

  /** The element-wise sum over ranks, in place, off the JavaScript thread. */
  async allReduce(buf: Float32Array | Float64Array): Promise<void> {
    checkFloats("allReduce", "buf", buf);
    await this.#callAsync(
      "allReduce",
      (t, e) =>
        buf instanceof Float32Array
          ? this.#lib.lk_mpi_allreduce_f32_async(t, buf, buf.length, e, ERR_CAP)
          : this.#lib.lk_mpi_allreduce_f64_async(t, buf, buf.length, e, ERR_CAP),
    );
  }

  #rsOut(send: Float32Array, out: Float32Array | undefined): Float32Array {
    checkF32("reduceScatter", "send", send);
    if (out !== undefined) return checkF32("reduceScatter", "out", out);
    return new Float32Array(Math.floor(send.length / this.size));
  }

  /** This rank's block of the sum over ranks (blocking). */
  reduceScatterSync(send: Float32Array, out?: Float32Array): Float32Array {
    const o = this.#rsOut(send, out);
    this.#call(
      "reduceScatter",
      (t, e) => this.#lib.lk_mpi_reduce_scatter_f32(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  /** This rank's block of the sum over ranks, off the JavaScript thread. */
  async reduceScatter(send: Float32Array, out?: Float32Array): Promise<Float32Array> {
    const o = this.#rsOut(send, out);
    await this.#callAsync(
      "reduceScatter",
      (t, e) =>
        this.#lib.lk_mpi_reduce_scatter_f32_async(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  #bytesOut(
    call: string,
    send: Uint8Array,
    out: Uint8Array | undefined,
    blocks: number,
  ): Uint8Array {
    checkBytes(call, "send", send);
    return out === undefined ? new Uint8Array(send.length * blocks) : checkBytes(call, "out", out);
  }

  /** Every rank's `send`, one after another (blocking). */
  allGatherSync(send: Uint8Array, out?: Uint8Array): Uint8Array {
    const o = this.#bytesOut("allGather", send, out, this.size);
    this.#call(
      "allGather",
      (t, e) => this.#lib.lk_mpi_allgather(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  /** Every rank's `send`, one after another, off the JavaScript thread. */
  async allGather(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array> {
    const o = this.#bytesOut("allGather", send, out, this.size);
    await this.#callAsync(
      "allGather",
      (t, e) => this.#lib.lk_mpi_allgather_async(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  /** Every rank's block for this rank (blocking). */
  allToAllSync(send: Uint8Array, out?: Uint8Array): Uint8Array {
    const o = this.#bytesOut("allToAll", send, out, 1);
    this.#call(
      "allToAll",
      (t, e) => this.#lib.lk_mpi_alltoall(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  /** Every rank's block for this rank, off the JavaScript thread. */
  async allToAll(send: Uint8Array, out?: Uint8Array): Promise<Uint8Array> {
    const o = this.#bytesOut("allToAll", send, out, 1);
    await this.#callAsync(
      "allToAll",
      (t, e) => this.#lib.lk_mpi_alltoall_async(t, send, send.length, o, o.length, e, ERR_CAP),
    );
    return o;
  }

  /** Every rank's `buf` becomes root's (blocking). */
  broadcastSync(buf: Uint8Array, root: number): void {
    checkBytes("broadcast", "buf", buf);
    const r = checkRoot("broadcast", root, this.size);
    this.#call("broadcast", (t, e) => this.#lib.lk_mpi_bcast(t, buf, buf.length, r, e, ERR_CAP));
  }

  /** Every rank's `buf` becomes root's, off the JavaScript thread. */
  async broadcast(buf: Uint8Array, root: number): Promise<void> {
    checkBytes("broadcast", "buf", buf);
    const r = checkRoot("broadcast", root, this.size);
    await this.#callAsync(
      "broadcast",
      (t, e) => this.#lib.lk_mpi_bcast_async(t, buf, buf.length, r, e, ERR_CAP),
    );
  }

  /** Returns once every rank has called it. */
  barrierSync(): void {
    this.#call("barrier", (t, e) => this.#lib.lk_mpi_barrier(t, e, ERR_CAP));
  }

  /** Resolves once every rank has called it. */
  async barrier(): Promise<void> {
    await this.#callAsync("barrier", (t, e) => this.#lib.lk_mpi_barrier_async(t, e, ERR_CAP));
  }

  /** The result the C side kept for call `ticket` (counts[r] bytes from rank r), copied out. */
  #take(ticket: number, counts: Float64Array): Uint8Array[] {
    let buf: Uint8Array;
    try {
      buf = new Uint8Array(counts.reduce((a, b) => a + b, 0));
    } catch (e) {
      this.#lib.lk_mpi_take(ticket, null, 0); // free it
      throw e;
    }
    const st = this.#lib.lk_mpi_take(ticket, buf, buf.length);
    if (st !== 0) throw statusError(st, mpiLastError(this.#lib));
    return split(buf, counts);
  }

  /** Every rank's `send`, of any lengths (blocking). */
  allGatherVSync(send: Uint8Array): Uint8Array[] {
    checkBytes("allGatherV", "send", send);
    const counts = new Float64Array(this.size);
    const ticket = this.#call(
      "allGatherV",
      (t, e) =>
        this.#lib.lk_mpi_allgatherv(t, send, send.length, counts, counts.length, e, ERR_CAP),
    );
    return this.#take(ticket, counts);
  }

  /** Every rank's `send`, of any lengths, off the JavaScript thread. */
  async allGatherV(send: Uint8Array): Promise<Uint8Array[]> {
    checkBytes("allGatherV", "send", send);
    const counts = new Float64Array(this.size);
    const ticket = await this.#callAsync(
      "allGatherV",
      (t, e) =>
        this.#lib.lk_mpi_allgatherv_async(t, send, send.length, counts, counts.length, e, ERR_CAP),
    );
    return this.#take(ticket, counts);
  }

  /** What every rank sent this rank, for sends of any lengths (blocking). */
  allToAllVSync(send: readonly Uint8Array[]): Uint8Array[] {
    checkByteList("allToAllV", send);
    const data = packed(send), sendCounts = Float64Array.from(send, (b) => b.length);
    const recvCounts = new Float64Array(this.size);
    const ticket = this.#call("allToAllV", (t, e) =>
      this.#lib.lk_mpi_alltoallv(
        t,
        data,
        data.length,
        sendCounts,
        sendCounts.length,
        recvCounts,
        recvCounts.length,
        e,
        ERR_CAP,
      ));
    return this.#take(ticket, recvCounts);
  }

  /** What every rank sent this rank, for sends of any lengths, off the JavaScript thread. */
  async allToAllV(send: readonly Uint8Array[]): Promise<Uint8Array[]> {
    checkByteList("allToAllV", send);
    const data = packed(send), sendCounts = Float64Array.from(send, (b) => b.length);
    const recvCounts = new Float64Array(this.size);
    const ticket = await this.#callAsync("allToAllV", (t, e) =>
      this.#lib.lk_mpi_alltoallv_async(
        t,
        data,
        data.length,
        sendCounts,
        sendCounts.length,
        recvCounts,
        recvCounts.length,
        e,
        ERR_CAP,
      ));
    return this.#take(ticket, recvCounts);
  }

  /**
   * Ends every rank of the job now (MPI_Abort with `code`): for a failure after which the job
   * cannot go on. mpirun prints which rank aborted.
   */
  abort(code = 1): never {
    this.#lib.lk_mpi_abort(code);
    Deno.exit(code); // only if MPI_Abort returned
  }

  #removeListeners(): void {
    try {
      Deno.removeSignalListener("SIGTERM", this.#onTerm);
    } catch { /* never added */ }
    globalThis.removeEventListener("unload", this.#onUnload);
  }

  /**
   * Collective: waits for every earlier call, then finalises MPI. On a communicator that a
   * failed call left unusable it only marks it closed (MPI_Finalize would wait for ranks that
   * may be gone): exit with a non-zero status and mpirun ends the job.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#removeListeners();
    if (mpiInfo(this.#lib).broken) return;
    const err = new Uint8Array(ERR_CAP), t = this.#next++;
    const st = this.#lib.lk_mpi_finalize(t, err, ERR_CAP);
    if (st !== 0) throw statusError(st, cString(err));
  }

  /** {@linkcode MpiCommunicator.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #unload(): void {
    if (this.#closed || Deno.exitCode !== 0) return;
    try {
      this.close();
    } catch (e) {
      console.error(`rank ${this.rank} of ${this.size}: ${(e as Error).message}`);
    }
  }

  #terminated(): void {
    const calls = [...this.#pending.entries()].sort((a, b) => a[0] - b[0]);
    const where = calls.length
      ? `while waiting in ${calls[0]![1]} (call #${calls[0]![0]})`
      : "between collective calls";
    console.error(
      `lmkit comm: rank ${this.rank} of ${this.size} stopped by SIGTERM ${where}; mpirun ends ` +
        "every rank when one fails, and its message names the rank that failed",
    );
    Deno.exit(143);
  }
}
