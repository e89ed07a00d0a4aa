/**
 * Data-parallel training's exchanges over a {@linkcode Communicator}: the gradient cut into
 * buckets of whole tensors in backward order (PyTorch DDP's scheme), each summed over the ranks
 * as soon as its last tensor's gradient is final, off the JavaScript thread while the backward
 * goes on; the weights sent from rank 0 at the start; and a hash of every rank's weights that
 * proves the replicas are equal.
 *
 * @module
 */
import type { Communicator } from "../comm/communicator.ts";
import { quoteValue } from "../core/errors.ts";
import type { LlamaParams, ParamLayout } from "./params.ts";

/** PyTorch DDP's default bucket size, 25 MiB. */
export const DEFAULT_BUCKET_BYTES = 25 * 2 ** 20;

/** A run of whole tensors, elements [lo, hi) of the flat gradient. */
export interface GradientBucket {
  /** First element. */
  readonly lo: number;
  /** One past the last element. */
  readonly hi: number;
  /** The tensors it holds, in buffer order. */
  readonly names: readonly string[];
}

/**
 * The layout's tensors in backward order (the buffer from its end to its start) grouped into
 * buckets of at least `bucketBytes` (f32) each, the last one smaller; a tensor larger than
 * `bucketBytes` is a bucket of its own. Bucket 0 holds the head, the last one the embedding.
 *
 * @example
 * ```ts
 * import { gradientBuckets } from "./ddp.ts";
 * import { paramLayout } from "./params.ts";
 * import { parseLlamaConfig } from "../model/config.ts";
 * const config = parseLlamaConfig(await Deno.readTextFile("data/models/tinyllama-bytes/config.json"));
 * const layout = paramLayout(config);
 * const b = gradientBuckets(layout, 4 * 2 ** 20);
 * if (b[0]!.hi !== layout.size || b.at(-1)!.lo !== 0 || b.length !== 5) throw new Error();
 * ```
 */
export function gradientBuckets(layout: ParamLayout, bucketBytes: number): GradientBucket[] {
  if (!(Number.isFinite(bucketBytes) && bucketBytes >= 4)) {
    throw new RangeError(`Bucket size ${quoteValue(bucketBytes)} bytes is not a number ≥ 4`);
  }
  const out: GradientBucket[] = [];
  let names: string[] = [], hi = layout.size, lo = layout.size;
  for (let i = layout.views.length - 1; i >= 0; i--) {
    const v = layout.views[i]!;
    names.unshift(v.name);
    lo = v.offset;
    if ((hi - lo) * 4 >= bucketBytes || i === 0) {
      out.push({ lo, hi, names });
      names = [];
      hi = lo;
    }
  }
  return out;
}

/** Seconds spent in a step's gradient exchange. */
export interface ReduceTiming {
  /** Seconds the JavaScript thread waited for the all-reduces after its backward. */
  waitSeconds: number;
}

/**
 * Sums a gradient buffer over the ranks bucket by bucket. Per step: {@linkcode begin}, then
 * {@linkcode ready} with the tensors whose gradients are final (the backward's order; a bucket
 * starts its non-blocking all-reduce when its last tensor is ready and every earlier bucket has
 * started, so every rank starts the same all-reduces in the same order), then
 * {@linkcode wait}. {@linkcode reduceSync} instead sums every bucket after the backward,
 * blocking (no overlap).
 */
export class BucketReducer {
  /** The buckets, in the order they are reduced. */
  readonly buckets: readonly GradientBucket[];
  readonly #comm: Communicator;
  readonly #grad: Float32Array;
  readonly #bucketOf = new Map<string, number>();
  readonly #missing: number[];
  #next = 0;
  #pending: Promise<void>[] = [];

  /**
   * A reducer of `grad` (laid out as the parameters) over `comm`.
   * @param comm The ranks.
   * @param grad The gradient buffer, summed in place.
   * @param bucketBytes Bucket size (default {@linkcode DEFAULT_BUCKET_BYTES}).
   */
  constructor(comm: Communicator, grad: LlamaParams, bucketBytes = DEFAULT_BUCKET_BYTES) {
    this.#comm = comm;
    this.#grad = grad.data;
    this.buckets = gradientBuckets(grad.layout, bucketBytes);
    this.buckets.forEach((b, i) => b.names.forEach((n) => this.#bucketOf.set(n, i)));
    this.#missing = this.buckets.map((b) => b.names.length);
  }

  /** Starts a step: no tensor is ready. */
  begin(): void {
    if (this.#pending.length) throw new Error("BucketReducer.begin: the last step was not waited");
    this.buckets.forEach((b, i) => this.#missing[i] = b.names.length);
    this.#next = 0;
  }

  /** The gradients of `names` are final: start every bucket that is now complete. */
  ready(names: readonly string[]): void {
    for (const n of names) {
      const i = this.#bucketOf.get(n);
      if (i === undefined) throw new RangeError(`The gradient has no tensor '${n}'`);
      this.#missing[i]!--;
    }
    while (this.#next < this.buckets.length && this.#missing[this.#next] === 0) this.#start();
  }

  /** Starts every bucket not yet started (a rank that failed still takes part). */
  flush(): void {
    while (this.#next < this.buckets.length) this.#start();
  }

  /** Waits for every bucket (each started first if it was not). */
  async wait(): Promise<ReduceTiming> {
    this.flush();
    const t = performance.now();
    const pending = this.#pending;
    this.#pending = [];
    await Promise.all(pending);
    return { waitSeconds: (performance.now() - t) / 1000 };
  }

  /** Sums every bucket now, blocking, in bucket order. */
  reduceSync(): ReduceTiming {
    const t = performance.now();
    for (const b of this.buckets) this.#comm.allReduceSync(this.#grad.subarray(b.lo, b.hi));
    this.#next = this.buckets.length;
    return { waitSeconds: (performance.now() - t) / 1000 };
  }

  #start(): void {
    const b = this.buckets[this.#next++]!;
    this.#pending.push(this.#comm.allReduce(this.#grad.subarray(b.lo, b.hi)));
  }
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Makes every rank's `buffers` equal to rank 0's (blocking). */
export function broadcastFromRoot(comm: Communicator, buffers: readonly Float32Array[]): void {
  if (comm.size === 1) return;
  for (const b of buffers) comm.broadcastSync(bytesOf(b), 0);
}

/** A 64-bit hash (16 hex digits) of the bits of `buffers`. */
export function bitsHash(buffers: readonly Float32Array[]): string {
  let a = 0x811c9dc5, b = 0x9e3779b9;
  for (const buf of buffers) {
    const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length);
    for (let i = 0; i < w.length; i++) {
      a = Math.imul(a ^ w[i]!, 0x01000193);
      b = Math.imul(b + w[i]!, 0x85ebca6b) ^ (b >>> 13);
    }
    a = Math.imul(a ^ w.length, 0x01000193);
  }
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

/**
 * The hash of `buffers` on every rank (blocking); throws when they differ, naming each rank's.
 * `what` says when, e.g. "after step 20". Returns the common hash.
 */
export function checkReplicas(
  comm: Communicator,
  buffers: readonly Float32Array[],
  what: string,
): string {
  const mine = bitsHash(buffers);
  if (comm.size === 1) return mine;
  const all = comm.allGatherSync(new TextEncoder().encode(mine));
  const hashes = Array.from(
    { length: comm.size },
    (_, r) => new TextDecoder().decode(all.subarray(r * 16, (r + 1) * 16)),
  );
  if (hashes.some((h) => h !== hashes[0])) {
    throw new Error(
      `The ranks' weights differ ${what} (hashes ${
        hashes.map((h, r) => `rank ${r} ${h}`).join(", ")
      }): the replicas diverged`,
    );
  }
  return mine;
}
