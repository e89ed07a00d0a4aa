/**
 * The `nccl` device communicator: NCCL collectives on {@linkcode DeviceBuffer}s, one process per
 * GPU, through `ffi/build/liblmkit_cuda.so` (`ffi/cuda/nccl.cu`), which loads NCCL at first use:
 * `$LMKIT_NCCL` when set (the path of a `libnccl.so.2`, and only it), else `libnccl.so.2`
 * through the dynamic loader (`LD_LIBRARY_PATH`, the system's NCCL), else the `nvidia-nccl`
 * wheel that PyTorch brings, `<site-packages>/nvidia/nccl/lib/libnccl.so.2`, in the usual Python
 * folders (`$VIRTUAL_ENV`, `$CONDA_PREFIX`, `~/.local`, `/usr/local`, `/usr`, `/opt/conda`).
 *
 * A world of one needs no MPI. With several ranks, start one process per GPU with `mpirun` (each
 * process seeing one GPU); rank 0 makes NCCL's unique id and broadcasts it over the `mpi`
 * communicator, then every rank joins NCCL's communicator. Every call is enqueued on the CUDA
 * library's stream after the kernels that came before it and returns (or resolves) when its data
 * is in place. Blocking calls run on the JavaScript thread; non-blocking ones run the same C
 * function on a Deno worker thread (a `nonblocking` FFI call), so that the JavaScript thread can
 * compute, upload or start kernels meanwhile; the C side runs a communicator's calls in the order
 * they were issued (each carries a ticket), one at a time.
 *
 * @module
 */
import { BackendUnavailableError, quoteValue, ShapeError } from "../core/errors.ts";
import { check, type CudaLib, cudaLibrary, DeviceBuffer, Status } from "../../ffi/mod.ts";
import type {
  Communicator,
  DeviceCommBackend,
  DeviceCommunicator,
  DeviceSpan,
  ReduceOp,
} from "./communicator.ts";
import { CommError } from "./errors.ts";
import { MpiCommunicator } from "./mpi.ts";

/** The default timeout of a device collective, in seconds. */
export const DEFAULT_NCCL_TIMEOUT_SECONDS = 600;
/** The reductions, numbered as NCCL's ncclRedOp_t. */
const OPS: Record<ReduceOp, number> = { sum: 0, prod: 1, max: 2, min: 3, avg: 4 };
const ERR_CAP = 1024;
const ID_BYTES = 128;
const decoder = new TextDecoder();

/** Options of {@linkcode createNcclCommunicator}. */
export interface NcclOptions {
  /**
   * The host communicator of the job, which carries NCCL's unique id from rank 0 to the others
   * and gives each process its rank and the world size. Default: under `mpirun` (when
   * `OMPI_COMM_WORLD_SIZE` or `PMIX_RANK` is set and readable) the `mpi` communicator, opened
   * here and closed with this one; otherwise none, and a world of one rank.
   */
  host?: Communicator;
  /**
   * The most seconds a call may wait for the other ranks before it fails with a CommError and
   * leaves the communicator unusable (default 600).
   */
  timeoutSeconds?: number;
  /**
   * Before moving data, check with one small all-reduce that every rank is at the same call
   * with the same sizes and valid arguments (else the call fails on every rank, no data moved).
   * Default: on when there are several ranks.
   */
  agree?: boolean;
}

function cString(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return decoder.decode(buf.subarray(0, end < 0 ? buf.length : end));
}

function kind(v: unknown): string {
  return v === null
    ? "null"
    : typeof v === "object"
    ? v.constructor?.name ?? "an object"
    : typeof v;
}

function envVar(name: string): string | undefined {
  const desc = { name: "env", variable: name } as const;
  if (Deno.permissions.querySync(desc).state !== "granted") return undefined;
  return Deno.env.get(name) || undefined;
}

/** True when the process was started by mpirun (Open MPI or a PMIx launcher). */
function underMpirun(): boolean {
  return envVar("OMPI_COMM_WORLD_SIZE") !== undefined || envVar("PMIX_RANK") !== undefined;
}

/**
 * The NCCL library this process loads (path and version), or a BackendUnavailableError naming
 * what was tried ("NCCL could not be loaded: …").
 */
export function ncclLibrary(): { path: string; version: string } {
  const lib = cudaLibrary().lib;
  if (!lib) {
    throw new BackendUnavailableError(`Backend 'nccl' is unavailable: ${cudaLibrary().reason}`);
  }
  const buf = new Uint8Array(1024);
  try {
    check(lib, lib.lk_nccl_library(buf, buf.length));
  } catch (e) {
    if (!(e instanceof BackendUnavailableError)) throw e;
    throw new BackendUnavailableError(
      e.message.replace(/^lk_nccl_library: /, "Backend 'nccl' is unavailable: "),
    );
  }
  const info = JSON.parse(cString(buf)) as { path: string; version: string };
  return { path: info.path, version: info.version };
}

/** One argument as the C side takes it, or the TypeError that replaces it. */
interface Arg {
  handle: number;
  offset: number;
  count: number;
}

/**
 * NCCL's communicator over the ranks of a job, one process per GPU. Create it with
 * {@linkcode createNcclCommunicator}.
 */
export class NcclCommunicator implements DeviceCommunicator {
  /** Always `nccl`. */
  readonly backend: DeviceCommBackend = "nccl";
  /** This process's rank. */
  readonly rank: number;
  /** The number of ranks (processes, one GPU each). */
  readonly size: number;
  /** The NCCL library loaded: its path and version. */
  readonly library: { path: string; version: string };
  /** The host communicator that carried the unique id (none for a world of one without MPI). */
  readonly host: Communicator | undefined;
  #lib: CudaLib;
  #id: number;
  #next = 0;
  #closed = false;
  #ownsHost: boolean;

  private constructor(
    lib: CudaLib,
    id: number,
    rank: number,
    size: number,
    library: { path: string; version: string },
    host: Communicator | undefined,
    ownsHost: boolean,
  ) {
    this.#lib = lib;
    this.#id = id;
    this.rank = rank;
    this.size = size;
    this.library = library;
    this.host = host;
    this.#ownsHost = ownsHost;
  }

  /** What {@linkcode createNcclCommunicator} does. */
  static open(options: NcclOptions = {}): NcclCommunicator {
    const t = options.timeoutSeconds ?? DEFAULT_NCCL_TIMEOUT_SECONDS;
    if (!(typeof t === "number" && t > 0 && Number.isFinite(t))) {
      throw new RangeError(`NCCL communicator timeout ${quoteValue(t)} s is not a positive number`);
    }
    if (options.agree !== undefined && typeof options.agree !== "boolean") {
      throw new TypeError(`NCCL option agree is ${quoteValue(options.agree)}, expected a boolean`);
    }
    let host = options.host, ownsHost = false;
    if (host === undefined && underMpirun()) {
      host = MpiCommunicator.open();
      ownsHost = true;
    }
    try {
      return NcclCommunicator.#join(host, ownsHost, t, options.agree);
    } catch (e) {
      if (ownsHost) host?.close();
      throw e;
    }
  }

  static #join(
    host: Communicator | undefined,
    ownsHost: boolean,
    timeout: number,
    agree: boolean | undefined,
  ): NcclCommunicator {
    const rank = host?.rank ?? 0, size = host?.size ?? 1;
    // every rank's own problem (no library, no device, several GPUs per process, no id), shared
    // before anyone waits in NCCL, so that all fail together with the first rank's sentence
    let problem = "", library = { path: "", version: "" }, lib: CudaLib | null = null;
    const id = new Uint8Array(ID_BYTES);
    try {
      const l = cudaLibrary();
      if (!l.lib) throw new BackendUnavailableError(`Backend 'nccl' is unavailable: ${l.reason}`);
      lib = l.lib;
      library = ncclLibrary();
      const devices = new Int32Array(1);
      check(lib, lib.lk_cuda_device_count(devices, 1));
      const local = Number(envVar("OMPI_COMM_WORLD_LOCAL_SIZE") ?? 1);
      if (size > 1 && local > 1 && devices[0]! > 1) {
        throw new BackendUnavailableError(
          `Rank ${rank} sees ${devices[0]} GPUs and shares its machine with ${
            local - 1
          } other ranks: give each process one GPU (CUDA_VISIBLE_DEVICES=$OMPI_COMM_WORLD_LOCAL_RANK)`,
        );
      }
      if (rank === 0) check(lib, lib.lk_nccl_get_unique_id(id, ID_BYTES));
    } catch (e) {
      if (!host || size === 1) throw e;
      problem = `rank ${rank}: ${(e as Error).message}`;
    }
    if (host && size > 1) {
      const all = host.allGatherVSync(new TextEncoder().encode(problem));
      const first = all.map((b) => decoder.decode(b)).find((s) => s !== "");
      if (first !== undefined) {
        throw new BackendUnavailableError(`Cannot start the nccl communicator: ${first}`);
      }
      host.broadcastSync(id, 0);
    }
    const out = new Int32Array(1);
    check(
      lib!,
      lib!.lk_nccl_init(id, ID_BYTES, size, rank, timeout, (agree ?? size > 1) ? 1 : 0, out, 1),
    );
    return new NcclCommunicator(lib!, out[0]!, rank, size, library, host, ownsHost);
  }

  /** `nccl (NCCL 2.21.5, rank 0 of 2)`. */
  describe(): string {
    return `nccl (NCCL ${this.library.version}, rank ${this.rank} of ${this.size})`;
  }

  /** The C side's view: rank, size, broken, closed, agree, next ticket. */
  #info(): Float64Array {
    const out = new Float64Array(6);
    check(this.#lib, this.#lib.lk_nccl_info(this.#id, out, out.length));
    return out;
  }

  #error(call: string, status: number, err: Uint8Array): Error {
    const msg = cString(err).replace(/^lk_nccl_\w+/, `nccl ${call}`);
    switch (status) {
      case Status.ESHAPE:
        return new ShapeError(msg);
      case Status.EARG:
      case Status.EHANDLE:
        return new RangeError(msg);
      case Status.EBACKEND:
        return this.#info()[2] ? new CommError(msg) : new BackendUnavailableError(msg);
      default:
        return new Error(`${msg} (status ${status})`);
    }
  }

  #usable(call: string): void {
    if (this.#closed) throw new Error(`nccl ${call}: the communicator is closed`);
  }

  /**
   * Runs call `f` with the next ticket (blocking or not). `bad`, an error found on this side,
   * replaces the C side's (which still takes part, so that every rank fails together).
   */
  #run(
    call: string,
    bad: Error | undefined,
    f: (ticket: number, err: Uint8Array<ArrayBuffer>) => number,
  ): void {
    this.#usable(call);
    const err = new Uint8Array(ERR_CAP), st = f(this.#next++, err);
    if (bad) throw bad;
    if (st !== 0) throw this.#error(call, st, err);
  }

  async #runAsync(
    call: string,
    bad: Error | undefined,
    f: (ticket: number, err: Uint8Array<ArrayBuffer>) => Promise<number>,
  ): Promise<void> {
    this.#usable(call);
    const err = new Uint8Array(ERR_CAP), st = await f(this.#next++, err);
    if (bad) throw bad;
    if (st !== 0) throw this.#error(call, st, err);
  }

  /** A span as (handle, offset, count); a TypeError goes to `bad` and handle −1 to the C side. */
  #arg(call: string, what: string, span: DeviceSpan, bads: Error[]): Arg {
    const buf = span instanceof DeviceBuffer ? span : (span as { buffer?: unknown })?.buffer;
    if (!(buf instanceof DeviceBuffer)) {
      bads.push(
        new TypeError(
          `nccl ${call}: ${what} is ${
            kind(span)
          }, expected a DeviceBuffer or {buffer, offset?, length?}`,
        ),
      );
      return { handle: -1, offset: 0, count: 0 };
    }
    if (span instanceof DeviceBuffer) return { handle: buf.handle, offset: 0, count: buf.length };
    const r = span as { offset?: unknown; length?: unknown };
    const offset = r.offset ?? 0, count = r.length ?? buf.length - Number(offset);
    if (typeof offset !== "number" || typeof count !== "number") {
      bads.push(
        new TypeError(
          `nccl ${call}: ${what} range offset ${quoteValue(r.offset)}, length ${
            quoteValue(r.length)
          }: expected numbers`,
        ),
      );
      return { handle: -1, offset: 0, count: 0 };
    }
    if (offset + count > buf.length && Number.isInteger(offset) && Number.isInteger(count)) {
      bads.push(
        new ShapeError(
          `nccl ${call}: ${what} range [${offset}, ${
            offset + count
          }) leaves device buffer ${buf.handle}, which holds ${buf.length} ${buf.dtype} elements`,
        ),
      );
    }
    return { handle: buf.handle, offset, count };
  }

  #op(call: string, op: ReduceOp, bads: Error[]): number {
    if (Object.hasOwn(OPS, op)) return OPS[op];
    bads.push(
      new RangeError(
        `nccl ${call}: reduction ${quoteValue(op)} is not one of ${Object.keys(OPS).join(", ")}`,
      ),
    );
    return -1;
  }

  #root(call: string, root: number, bads: Error[]): number {
    if (typeof root === "number" && Number.isInteger(root)) return root; // range: the C side
    bads.push(
      new RangeError(
        `nccl ${call}: root ${quoteValue(root)} is not a rank of 0 … ${this.size - 1}`,
      ),
    );
    return -1;
  }

  /**
   * Runs `lk_nccl_<sym>` (or its `_async` twin off the JavaScript thread) with this
   * communicator's id, a ticket, `args` and an error buffer; the first argument error found on
   * this side is thrown after the C side has taken part (so every rank fails together).
   */
  #call(call: string, sym: string, args: number[], bads: Error[], async: true): Promise<void>;
  #call(call: string, sym: string, args: number[], bads: Error[], async: false): void;
  #call(
    call: string,
    sym: string,
    args: number[],
    bads: Error[],
    async: boolean,
  ): void | Promise<void> {
    const lib = this.#lib as unknown as Record<string, (...a: unknown[]) => unknown>;
    const f = lib[`lk_nccl_${sym}${async ? "_async" : ""}`]!;
    const go = (t: number, e: Uint8Array<ArrayBuffer>) => f(this.#id, t, ...args, e, ERR_CAP);
    return async
      ? this.#runAsync(
        call,
        bads[0],
        go as (t: number, e: Uint8Array<ArrayBuffer>) => Promise<number>,
      )
      : this.#run(call, bads[0], go as (t: number, e: Uint8Array<ArrayBuffer>) => number);
  }

  #reduce(buf: DeviceSpan, op: ReduceOp, bads: Error[]): number[] {
    const b = this.#arg("allReduce", "buf", buf, bads);
    return [b.handle, b.offset, b.count, this.#op("allReduce", op, bads)];
  }

  /** send and recv as (handle, offset, count) twice, and the reduction when there is one. */
  #pair(call: string, send: DeviceSpan, recv: DeviceSpan, bads: Error[], op?: ReduceOp): number[] {
    const s = this.#arg(call, "send", send, bads), r = this.#arg(call, "recv", recv, bads);
    const args = [s.handle, s.offset, s.count, r.handle, r.offset, r.count];
    return op === undefined ? args : [...args, this.#op(call, op, bads)];
  }

  #bcast(buf: DeviceSpan, root: number, bads: Error[]): number[] {
    const b = this.#arg("broadcast", "buf", buf, bads);
    return [b.handle, b.offset, b.count, this.#root("broadcast", root, bads)];
  }

  /** The element-wise reduction over ranks, in place (blocking). */
  allReduceSync(buf: DeviceSpan, op: ReduceOp = "sum"): void {
    const bads: Error[] = [];
    this.#call("allReduce", "all_reduce", this.#reduce(buf, op, bads), bads, false);
  }

  /** The element-wise reduction over ranks, in place, off the JavaScript thread. */
  allReduce(buf: DeviceSpan, op: ReduceOp = "sum"): Promise<void> {
    const bads: Error[] = [];
    return this.#call("allReduce", "all_reduce", this.#reduce(buf, op, bads), bads, true);
  }

  /** This rank's block of the reduction over ranks (blocking). */
  reduceScatterSync(send: DeviceSpan, recv: DeviceSpan, op: ReduceOp = "sum"): void {
    const bads: Error[] = [], args = this.#pair("reduceScatter", send, recv, bads, op);
    this.#call("reduceScatter", "reduce_scatter", args, bads, false);
  }

  /** This rank's block of the reduction over ranks, off the JavaScript thread. */
  reduceScatter(send: DeviceSpan, recv: DeviceSpan, op: ReduceOp = "sum"): Promise<void> {
    const bads: Error[] = [], args = this.#pair("reduceScatter", send, recv, bads, op);
    return this.#call("reduceScatter", "reduce_scatter", args, bads, true);
  }

  /** Every rank's `send`, rank r's at block r of `recv` (blocking). */
  allGatherSync(send: DeviceSpan, recv: DeviceSpan): void {
    const bads: Error[] = [], args = this.#pair("allGather", send, recv, bads);
    this.#call("allGather", "all_gather", args, bads, false);
  }

  /** Every rank's `send`, rank r's at block r of `recv`, off the JavaScript thread. */
  allGather(send: DeviceSpan, recv: DeviceSpan): Promise<void> {
    const bads: Error[] = [], args = this.#pair("allGather", send, recv, bads);
    return this.#call("allGather", "all_gather", args, bads, true);
  }

  /** Block j of `send` to rank j; block r of `recv` from rank r (blocking). */
  allToAllSync(send: DeviceSpan, recv: DeviceSpan): void {
    const bads: Error[] = [], args = this.#pair("allToAll", send, recv, bads);
    this.#call("allToAll", "all_to_all", args, bads, false);
  }

  /** Block j of `send` to rank j; block r of `recv` from rank r, off the JavaScript thread. */
  allToAll(send: DeviceSpan, recv: DeviceSpan): Promise<void> {
    const bads: Error[] = [], args = this.#pair("allToAll", send, recv, bads);
    return this.#call("allToAll", "all_to_all", args, bads, true);
  }

  /** Every rank's `buf` becomes root's (blocking). */
  broadcastSync(buf: DeviceSpan, root: number): void {
    const bads: Error[] = [];
    this.#call("broadcast", "broadcast", this.#bcast(buf, root, bads), bads, false);
  }

  /** Every rank's `buf` becomes root's, off the JavaScript thread. */
  broadcast(buf: DeviceSpan, root: number): Promise<void> {
    const bads: Error[] = [];
    return this.#call("broadcast", "broadcast", this.#bcast(buf, root, bads), bads, true);
  }

  /** Returns once every rank has called it. */
  barrierSync(): void {
    this.#run("barrier", undefined, (t, e) => this.#lib.lk_nccl_barrier(this.#id, t, e, ERR_CAP));
  }

  /** Resolves once every rank has called it. */
  barrier(): Promise<void> {
    return this.#runAsync(
      "barrier",
      undefined,
      (t, e) => this.#lib.lk_nccl_barrier_async(this.#id, t, e, ERR_CAP),
    );
  }

  /** True after a timeout or an NCCL failure: every later call throws a CommError. */
  get broken(): boolean {
    return this.#info()[2] === 1;
  }

  /**
   * Waits for every earlier call, then destroys NCCL's communicator (a broken one was aborted
   * already) and closes the host communicator when this one opened it. Does nothing the second
   * time.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const err = new Uint8Array(ERR_CAP),
      st = this.#lib.lk_nccl_destroy(this.#id, this.#next++, err, ERR_CAP);
    if (this.#ownsHost) this.host?.close();
    if (st !== 0) throw this.#error("close", st, err);
  }

  /** {@linkcode NcclCommunicator.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * The `nccl` device communicator: one process per GPU; under `mpirun` the ranks of the job
 * (unique id sent over the `mpi` communicator, or over `options.host`), otherwise a world of one.
 * Needs `liblmkit_cuda.so` with a visible GPU (or the CUDA emulator, `LMKIT_CUDA_EMU=1`, whose
 * mock NCCL is a world of one) and `--allow-ffi=ffi/build`. Throws a BackendUnavailableError when
 * NCCL cannot be loaded, naming what was tried.
 *
 * @example All-reduce a gradient bucket in place
 * ```ts ignore
 * import { createNcclCommunicator } from "./nccl.ts";
 * import { DeviceBuffer } from "../../ffi/mod.ts";
 * using comm = createNcclCommunicator(); // under mpirun: every rank of the job
 * using grads = DeviceBuffer.from(new Float32Array(1 << 20).fill(1));
 * await comm.allReduce({ buffer: grads, offset: 0, length: 1 << 19 }, "avg"); // the first bucket
 * ```
 */
export function createNcclCommunicator(options: NcclOptions = {}): NcclCommunicator {
  return NcclCommunicator.open(options);
}
