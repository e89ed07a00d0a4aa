/**
 * Quantized collectives over a {@linkcode Communicator}, as QSDP and CGX run them: f32 data
 * travel as the packed messages of `./quantize.ts` (bucketed max–min levels + per-bucket
 * metadata), and every receiver dequantizes in f32.
 *
 * - all-gather (weights): each rank quantizes its shard, the messages are all-gathered, and every
 *   rank dequantizes every shard, its own included, so every rank holds the same bits;
 * - reduce-scatter (gradients): each rank quantizes the chunk destined for rank j, the messages
 *   go all-to-all, and the owner sums in f32 in rank order (0, 1, …): the dequantized chunks of
 *   the others and its own chunk unquantized (CGX's scatter-reduce);
 * - all-reduce: reduce-scatter of chunks of ⌈N / size⌉ elements (the last ones may be short or
 *   empty), then an all-gather of the reduced chunks, quantized again: every rank ends with the
 *   identical sum.
 *
 * Draws are seeded: call c (counted from 0 on each {@linkcode QuantizedCollectives}; every rank
 * issues the same calls in the same order) quantizes rank r's gather message with
 * `collectiveSeed(seed, c, "gather", r)` and its chunk for rank j with `collectiveSeed(seed, c,
 * "scatter", r, j)`, so a run is reproducible and a single process can simulate it exactly.
 * Tensors of fewer than `minElements` elements (the gathered or reduced tensor) travel
 * uncompressed through the communicator's own collective. Each call returns the bytes it put on
 * the wire ({@linkcode WireBytes}).
 *
 * A rank whose input holds NaN or ±Infinity still takes part, sending NaN metadata, and then
 * throws NumericalError naming the element; a rank that receives such a message finishes the
 * call (the affected elements NaN) and throws NumericalError naming the sender. So an
 * all-gather or all-reduce fails on every rank; a reduce-scatter on the sender and the owners
 * of its non-finite chunks.
 *
 * @module
 */
import { NumericalError, ShapeError } from "../core/errors.ts";
import type { Communicator } from "./communicator.ts";
import {
  type Backend,
  type BucketQuantSpec,
  dequantizeBuckets,
  dequantizeBucketsAdd,
  deriveSeed,
  type MetaType,
  quantizeBuckets,
  quantizedBytes,
  type Rounding,
} from "./quantize.ts";

export type { Backend };

/** Options of {@linkcode QuantizedCollectives}; every rank must pass the same. */
export interface QuantizedOptions extends BucketQuantSpec {
  /** `stochastic` (default; unbiased) or `nearest`. */
  rounding?: Rounding;
  /** The base seed of every call's draws, an integer 0 … 2^53 − 1 (default 0). */
  seed?: number;
  /** Tensors with fewer elements travel uncompressed (default 1024). */
  minElements?: number;
  /** The quantizer's backend (default: `LMKIT_BACKEND`, else the best available). */
  backend?: Backend;
}

/**
 * The bytes of one call, counted exactly: what this rank sends to and receives from the other
 * ranks (its own block never leaves it), for an all-reduce those of its reduce-scatter and
 * all-gather together. Uncompressed calls count 4 bytes an element the same way (the logical
 * volume: MPI's internal algorithm may move more).
 */
export interface WireBytes {
  /** Whether the data travelled quantized. */
  compressed: boolean;
  /** Bytes sent to other ranks. */
  sent: number;
  /** Bytes received from other ranks. */
  received: number;
  /** Bytes the same call would send as f32. */
  uncompressed: number;
}

/** Result of a quantized collective: its output buffer and its bytes on the wire. */
export interface QuantizedResult {
  /** The output (for an all-reduce, the input buffer, reduced in place). */
  out: Float32Array;
  /** Bytes on the wire. */
  bytes: WireBytes;
}

/** The seed of one message of call `call` (see the module's documentation). */
export function collectiveSeed(
  seed: number,
  call: number,
  phase: "gather" | "scatter",
  rank: number,
  block = 0,
): number {
  return phase === "gather"
    ? deriveSeed(seed, call, 0, rank)
    : deriveSeed(seed, call, 1, rank, block);
}

// The collectives are generators of communicator requests, run by a blocking or a Promise
// driver, so that both forms share one body.
type Req =
  | { op: "allGather"; send: Uint8Array; out?: Uint8Array }
  | { op: "allGatherV"; send: Uint8Array }
  | { op: "allToAll"; send: Uint8Array }
  | { op: "allToAllV"; send: Uint8Array[] }
  | { op: "reduceScatter"; send: Float32Array; out: Float32Array }
  | { op: "allReduce"; buf: Float32Array };
type Reply = Uint8Array | Uint8Array[] | Float32Array | void;
type Steps<T> = Generator<Req, T, Reply>;

function runSync<T>(comm: Communicator, steps: Steps<T>): T {
  let s = steps.next();
  while (!s.done) {
    const r = s.value;
    let reply: Reply;
    switch (r.op) {
      case "allGather":
        reply = comm.allGatherSync(r.send, r.out);
        break;
      case "allGatherV":
        reply = comm.allGatherVSync(r.send);
        break;
      case "allToAll":
        reply = comm.allToAllSync(r.send);
        break;
      case "allToAllV":
        reply = comm.allToAllVSync(r.send);
        break;
      case "reduceScatter":
        reply = comm.reduceScatterSync(r.send, r.out);
        break;
      case "allReduce":
        reply = comm.allReduceSync(r.buf);
    }
    s = steps.next(reply);
  }
  return s.value;
}

async function runAsync<T>(comm: Communicator, steps: Steps<T>): Promise<T> {
  let s = steps.next(); // the first request is issued before this returns
  while (!s.done) {
    const r = s.value;
    let reply: Reply;
    switch (r.op) {
      case "allGather":
        reply = await comm.allGather(r.send, r.out);
        break;
      case "allGatherV":
        reply = await comm.allGatherV(r.send);
        break;
      case "allToAll":
        reply = await comm.allToAll(r.send);
        break;
      case "allToAllV":
        reply = await comm.allToAllV(r.send);
        break;
      case "reduceScatter":
        reply = await comm.reduceScatter(r.send, r.out);
        break;
      case "allReduce":
        reply = await comm.allReduce(r.buf);
    }
    s = steps.next(reply);
  }
  return s.value;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Collectives that send f32 tensors quantized, over `comm`. Create one per stream of calls
 * (e.g. one per model), with the same options on every rank.
 *
 * @example A world of one (every rank runs the same)
 * ```ts
 * import { createCommunicator } from "./communicator.ts";
 * import { QuantizedCollectives } from "./quantized.ts";
 * using comm = createCommunicator("single");
 * const q = new QuantizedCollectives(comm, { bits: 8, minElements: 0, backend: "ts" });
 * const g = new Float32Array(4096).map((_, i) => Math.sin(i));
 * const { out, bytes } = q.allGatherSync(g); // quantized and back: within one unit
 * if (Math.abs(out[5]! - g[5]!) > 2 / 255 || !bytes.compressed) throw new Error("too far");
 * ```
 */
export class QuantizedCollectives {
  /** The communicator. */
  readonly comm: Communicator;
  readonly #o: QuantizedOptions;
  readonly #spec: BucketQuantSpec;
  readonly #min: number;
  readonly #seed: number;
  #calls = 0;

  /** Checks the options (the quantizer's spec included) on every rank alike. */
  constructor(comm: Communicator, options: QuantizedOptions) {
    this.comm = comm;
    this.#o = options;
    this.#spec = {
      bits: options.bits,
      ...(options.bucketSize !== undefined ? { bucketSize: options.bucketSize } : {}),
      ...(options.meta !== undefined ? { meta: options.meta as MetaType } : {}),
    };
    quantizedBytes(0, this.#spec); // checks bits, bucket size and metadata
    this.#min = options.minElements ?? 1024;
    if (!(this.#min >= 0)) {
      throw new RangeError(`Cannot use minElements ${this.#min}: expected a number ≥ 0`);
    }
    this.#seed = options.seed ?? 0;
    deriveSeed(this.#seed); // checks it
  }

  /** How many calls have been issued (the next call's number). */
  get calls(): number {
    return this.#calls;
  }

  /** The packed size of n elements under these options. */
  messageBytes(n: number): number {
    return quantizedBytes(n, this.#spec);
  }

  /**
   * Every rank's `shard` (n elements, the same n on every rank), rank r's at [r·n, (r+1)·n) of
   * the result (`out`, size·n elements, or a new buffer), dequantized alike on every rank.
   */
  allGatherSync(shard: Float32Array, out?: Float32Array): QuantizedResult {
    return runSync(this.comm, this.#allGather(shard, out));
  }

  /** {@linkcode QuantizedCollectives.allGatherSync}, the transfer off the JavaScript thread. */
  allGather(shard: Float32Array, out?: Float32Array): Promise<QuantizedResult> {
    return runAsync(this.comm, this.#allGather(shard, out));
  }

  /**
   * `send` holds size chunks of n elements, chunk j for rank j; the result (`out`, n elements,
   * or a new buffer) is the sum over ranks of their chunk number `rank`, in rank order.
   */
  reduceScatterSync(send: Float32Array, out?: Float32Array): QuantizedResult {
    return runSync(this.comm, this.#reduceScatter(send, out));
  }

  /** {@linkcode QuantizedCollectives.reduceScatterSync}, the transfers off the JavaScript thread. */
  reduceScatter(send: Float32Array, out?: Float32Array): Promise<QuantizedResult> {
    return runAsync(this.comm, this.#reduceScatter(send, out));
  }

  /** In place: `buf` (same length on every rank) becomes the sum over ranks, identical on all. */
  allReduceSync(buf: Float32Array): QuantizedResult {
    return runSync(this.comm, this.#allReduce(buf));
  }

  /** {@linkcode QuantizedCollectives.allReduceSync}, the transfers off the JavaScript thread. */
  allReduce(buf: Float32Array): Promise<QuantizedResult> {
    return runAsync(this.comm, this.#allReduce(buf));
  }

  // ---- the bodies ----

  /** Quantizes x; on non-finite input, a message of NaN metadata and the error to throw later. */
  #pack(x: Float32Array, seed: number, offset = 0): [Uint8Array, Error | undefined] {
    const out = new Uint8Array(this.messageBytes(x.length));
    try {
      quantizeBuckets(x, {
        ...this.#spec,
        seed,
        ...(this.#o.rounding ? { rounding: this.#o.rounding } : {}),
        ...(this.#o.backend ? { backend: this.#o.backend } : {}),
      }, out);
      return [out, undefined];
    } catch (e) {
      if (!(e instanceof NumericalError)) throw e;
      const err = this.#ownChunk(x, offset) ??
        new NumericalError(`Elements from ${offset} on: ${e.message}`);
      out.fill(0);
      const f16 = this.#spec.meta === "f16",
        metaBytes = Math.ceil(x.length / this.#bucket()) *
          (f16 ? 4 : 8);
      const v = new DataView(out.buffer);
      for (let o = 0; o < metaBytes; o += f16 ? 2 : 4) {
        if (f16) v.setUint16(o, 0x7e00, true);
        else v.setFloat32(o, NaN, true);
      }
      return [out, err];
    }
  }

  /** The error for this rank's own (unquantized) chunk when it holds NaN or ±Infinity. */
  #ownChunk(x: Float32Array, offset: number): Error | undefined {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i]!)) {
        return new NumericalError(
          `x[${offset + i}] is ${x[i]}: expected finite values to quantize`,
        );
      }
    }
    return undefined;
  }

  /** Throws when a received message carries the NaN metadata of a failed sender. */
  #checkPoison(msg: Uint8Array, n: number, whose: string, what: string, call: number): void {
    if (n === 0) return;
    const f16 = this.#spec.meta === "f16";
    const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    const nb = Math.ceil(n / this.#bucket());
    for (let q = 0; q < nb; q++) {
      if (
        f16
          ? (v.getUint16(q * 4, true) & 0x7c00) === 0x7c00
          : !Number.isFinite(v.getFloat32(q * 8, true))
      ) {
        throw new NumericalError(
          `Quantized ${what} (call #${call}): ${whose} held NaN or Infinity, so the result does too`,
        );
      }
    }
  }

  #bucket(): number {
    return this.#spec.bucketSize ?? 1024;
  }

  #deq(): { backend?: Backend } & BucketQuantSpec {
    return { ...this.#spec, ...(this.#o.backend ? { backend: this.#o.backend } : {}) };
  }

  *#allGather(shard: Float32Array, out?: Float32Array): Steps<QuantizedResult> {
    const call = this.#calls++, { rank, size } = this.comm, n = shard.length;
    const result = out ?? new Float32Array(size * n);
    if (result.length !== size * n) {
      throw new ShapeError(
        `Cannot all-gather ${size} shards of ${n} elements into ${result.length}: expected ${
          size * n
        }`,
      );
    }
    const uncompressed = (size - 1) * n * 4;
    if (size * n < this.#min) {
      yield { op: "allGather", send: bytesOf(shard), out: bytesOf(result) };
      return {
        out: result,
        bytes: { compressed: false, sent: uncompressed, received: uncompressed, uncompressed },
      };
    }
    const [msg, err] = this.#pack(shard, collectiveSeed(this.#seed, call, "gather", rank));
    const all = (yield { op: "allGather", send: msg }) as Uint8Array;
    const b = msg.length;
    for (let r = 0; r < size; r++) {
      dequantizeBuckets(
        all.subarray(r * b, (r + 1) * b),
        n,
        this.#deq(),
        result.subarray(r * n, (r + 1) * n),
      );
    }
    if (err) throw err;
    for (let r = 0; r < size; r++) {
      this.#checkPoison(
        all.subarray(r * b, (r + 1) * b),
        n,
        `rank ${r}'s data`,
        "all-gather",
        call,
      );
    }
    const wire = (size - 1) * b;
    return { out: result, bytes: { compressed: true, sent: wire, received: wire, uncompressed } };
  }

  *#reduceScatter(send: Float32Array, out?: Float32Array): Steps<QuantizedResult> {
    const call = this.#calls++, { rank, size } = this.comm;
    if (send.length % size !== 0) {
      throw new ShapeError(
        `Cannot reduce-scatter ${send.length} elements over ${size} ranks: expected a multiple of ${size}`,
      );
    }
    const n = send.length / size, result = out ?? new Float32Array(n);
    if (result.length !== n) {
      throw new ShapeError(
        `Cannot reduce-scatter chunks of ${n} elements into ${result.length}: expected ${n}`,
      );
    }
    const uncompressed = (size - 1) * n * 4;
    if (send.length < this.#min) {
      yield { op: "reduceScatter", send, out: result };
      return {
        out: result,
        bytes: { compressed: false, sent: uncompressed, received: uncompressed, uncompressed },
      };
    }
    const b = this.messageBytes(n), msgs = new Uint8Array(size * b);
    let err: Error | undefined;
    for (let j = 0; j < size; j++) {
      if (j === rank) continue;
      const [m, e] = this.#pack(
        send.subarray(j * n, (j + 1) * n),
        collectiveSeed(this.#seed, call, "scatter", rank, j),
        j * n,
      );
      msgs.set(m, j * b);
      err ??= e;
    }
    const recv = (yield { op: "allToAll", send: msgs }) as Uint8Array;
    err ??= this.#ownChunk(send.subarray(rank * n, (rank + 1) * n), rank * n);
    if (err) throw err;
    this.#sumInRankOrder(
      result,
      (r) => recv.subarray(r * b, (r + 1) * b),
      send.subarray(rank * n, (rank + 1) * n),
    );
    for (let r = 0; r < size; r++) {
      if (r === rank) continue;
      this.#checkPoison(
        recv.subarray(r * b, (r + 1) * b),
        n,
        `rank ${r}'s data`,
        "reduce-scatter",
        call,
      );
    }
    const wire = (size - 1) * b;
    return { out: result, bytes: { compressed: true, sent: wire, received: wire, uncompressed } };
  }

  /** out = Σ_r (r = rank ? own : dequantized message of r), in rank order from 0. */
  #sumInRankOrder(out: Float32Array, msg: (r: number) => Uint8Array, own: Float32Array): void {
    out.fill(0);
    for (let r = 0; r < this.comm.size; r++) {
      if (r === this.comm.rank) {
        for (let i = 0; i < out.length; i++) out[i]! += own[i]!;
      } else {
        dequantizeBucketsAdd(msg(r), out, this.#deq());
      }
    }
  }

  *#allReduce(buf: Float32Array): Steps<QuantizedResult> {
    const call = this.#calls++, { rank, size } = this.comm, total = buf.length;
    const c = Math.ceil(total / size);
    const chunk = (j: number) => buf.subarray(Math.min(j * c, total), Math.min((j + 1) * c, total));
    const lens = Array.from({ length: size }, (_, j) => chunk(j).length), mine = lens[rank]!;
    const others = (f: (len: number) => number) =>
      lens.reduce((s, len, j) => s + (j === rank ? 0 : f(len)), 0);
    const uncompressed = others((len) => len * 4) + (size - 1) * mine * 4;
    if (total < this.#min) {
      yield { op: "allReduce", buf };
      const received = (size - 1) * mine * 4 + others((len) => len * 4);
      return { out: buf, bytes: { compressed: false, sent: uncompressed, received, uncompressed } };
    }
    // reduce-scatter: chunk j to rank j, all-to-all of messages of each chunk's size
    let err: Error | undefined;
    const msgs = lens.map((_, j) => {
      if (j === rank) return new Uint8Array(0);
      const [m, e] = this.#pack(
        chunk(j),
        collectiveSeed(this.#seed, call, "scatter", rank, j),
        Math.min(j * c, total),
      );
      err ??= e;
      return m;
    });
    const recv = (yield { op: "allToAllV", send: msgs }) as Uint8Array[];
    err ??= this.#ownChunk(chunk(rank), Math.min(rank * c, total));
    const reduced = new Float32Array(mine);
    if (!err) this.#sumInRankOrder(reduced, (r) => recv[r]!, chunk(rank));
    else reduced.fill(NaN);
    // all-gather of the reduced chunks, every one (this rank's too) dequantized into buf
    // (a reduced chunk that is not finite goes out as NaN metadata: every rank throws below)
    const [msg] = this.#pack(reduced, collectiveSeed(this.#seed, call, "gather", rank));
    const parts = (yield { op: "allGatherV", send: msg }) as Uint8Array[];
    for (let j = 0; j < size; j++) dequantizeBuckets(parts[j]!, lens[j]!, this.#deq(), chunk(j));
    if (err) throw err;
    for (let j = 0; j < size; j++) {
      this.#checkPoison(
        parts[j]!,
        lens[j]!,
        `the sum of chunk ${j} (some rank's data)`,
        "all-reduce",
        call,
      );
    }
    const sent = others((len) => this.messageBytes(len)) + (size - 1) * this.messageBytes(mine);
    const received = (size - 1) * this.messageBytes(mine) + others((len) => this.messageBytes(len));
    return { out: buf, bytes: { compressed: true, sent, received, uncompressed } };
  }
}
