/**
 * Top-K sparsification of one gradient tensor over a {@linkcode Communicator}, with error
 * feedback: x = grad + residual; the k = ⌈density·n⌉ entries of largest |x| (ties to the lower
 * index, lib/kernels' `topk`) travel as k u32 indices and k f32 values in one all-gather of
 * varying lengths; every rank adds every rank's sparse part, in rank order, into a dense sum (the
 * same bits on every rank); the residual is x with the sent entries set to 0, so that
 * sent + residual = x exactly.
 *
 * Conventions: the result is the SUM over ranks (lmkit's data-parallel path sums gradients
 * already scaled by 1 / global tokens); a tensor whose compressed form is not smaller
 * (8·k ≥ 4·n bytes) travels uncompressed, as one all-reduce of x (the residual, if any, travels
 * with it and is then dropped). A gradient that is not finite or has the wrong length fails the
 * call on EVERY rank (the bad rank sends a 4-byte marker, or NaN into the all-reduce, so that no
 * rank waits for it), and the state is unchanged.
 *
 * @module
 */
import { NumericalError, quoteValue, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import type { KernelOptions } from "../kernels/mod.ts";
import { topk } from "../kernels/topk.ts";
import type { Communicator } from "./communicator.ts";
import { _nonFinite, type ExchangeResult, type RoundTrip, simulateAllReduce } from "./powersgd.ts";

/** Options of {@linkcode TopKCompressor} and {@linkcode topKRoundTrip}. */
export interface TopKOptions extends KernelOptions {
  /** The share of entries sent, in (0, 1] (default 0.01): k = ⌈density·n⌉. */
  density?: number;
  /** Keep the residual and add it to the next gradient (default true). */
  errorFeedback?: boolean;
}

function checkDensity(d: unknown): number {
  if (typeof d !== "number" || !(d > 0 && d <= 1)) {
    throw new RangeError(`Top-K density ${quoteValue(d)} is invalid: expected a number in (0, 1]`);
  }
  return d;
}

/** k = ⌈density·n⌉ for n entries, at least 1 (⌈0.1·30⌉ is 3, not the 4 of 0.1·30 in doubles). */
export function topKCount(n: number, density: number): number {
  checkDensity(density);
  let k = Math.ceil(density * n);
  if (k > 1 && (k - 1) / n >= density) k--;
  return Math.max(1, Math.min(n, k));
}

/** A rank's message: k u32 indices, then k f32 values. */
function views(msg: Uint8Array, k: number): [Uint32Array, Float32Array] {
  const m = msg.byteOffset % 4 === 0 ? msg : msg.slice();
  return [
    new Uint32Array(m.buffer, m.byteOffset, k),
    new Float32Array(m.buffer, m.byteOffset + 4 * k, k),
  ];
}

/**
 * One rank's Top-K state for one tensor of n f32 values (its residual). Every rank makes one
 * with the same n and density and calls {@linkcode TopKCompressor.exchange} at every step.
 *
 * @example One rank: the 2 largest of 8 travel, the rest stays behind
 * ```ts
 * import { TopKCompressor } from "./topk.ts";
 * import { createCommunicator } from "./communicator.ts";
 * using comm = createCommunicator("single");
 * const c = new TopKCompressor(8, { density: 0.25, backend: "ts" });
 * const { sum, bytesSent } = c.exchangeSync(comm, new Float32Array([1, -5, 2, 0, 4, 0, 0, 1]));
 * if (bytesSent !== 2 * 8 || sum.join() !== "0,-5,0,0,4,0,0,0") throw new Error();
 * if (c.residual!.join() !== "1,0,2,0,0,0,0,1") throw new Error();
 * ```
 */
export class TopKCompressor {
  /** Entries of the tensor. */
  readonly n: number;
  readonly #errorFeedback: boolean;
  readonly #kernel: KernelOptions;
  #density = 0.01;
  #k = 1;
  #residual: Float32Array | null = null;
  #steps = 0;

  /**
   * Creates one rank's state.
   * @param n Entries of the tensor (any shape, flattened), an integer ≥ 1.
   * @param options Density, error feedback, kernel backend.
   */
  constructor(n: number, options: TopKOptions = {}) {
    if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1) {
      throw new RangeError(
        `Top-K tensor size ${quoteValue(n)} is invalid: expected an integer in [1, 2^31 − 1]`,
      );
    }
    this.n = n;
    this.#errorFeedback = options.errorFeedback ?? true;
    this.#kernel = options.backend ? { backend: options.backend } : {};
    this.setDensity(options.density ?? 0.01);
  }

  /** The density in use. */
  get density(): number {
    return this.#density;
  }

  /** Entries sent per step, ⌈density·n⌉. */
  get k(): number {
    return this.#k;
  }

  /** Whether the tensor travels compressed (8·k < 4·n). */
  get compressed(): boolean {
    return 2 * this.#k < this.n;
  }

  /** Steps exchanged so far. */
  get steps(): number {
    return this.#steps;
  }

  /** The residual left by the last step (n values), or null. */
  get residual(): Float32Array | null {
    return this.#residual;
  }

  /** Bytes one rank sends per exchange: 8·k compressed, else 4·n. */
  get bytesPerStep(): number {
    return this.compressed ? 8 * this.#k : 4 * this.n;
  }

  /**
   * Changes the density (L-GreCo's per-layer choice); the residual is kept. Every rank must
   * make the same change.
   * @param density A number in (0, 1].
   */
  setDensity(density: number): void {
    this.#k = topKCount(this.n, density);
    this.#density = density;
  }

  /** The sentence rejecting grad and the error class, or "". */
  #check(grad: Float32Array): [string, "shape" | "value" | ""] {
    if (!(grad instanceof Float32Array)) {
      return [`The gradient of the ${this.n}-value Top-K tensor is not a Float32Array`, "shape"];
    }
    if (grad.length !== this.n) {
      return [
        `The gradient of the ${this.n}-value Top-K tensor has ${grad.length} elements: expected ${this.n}`,
        "shape",
      ];
    }
    const bad = _nonFinite(grad, `The gradient of the ${this.n}-value Top-K tensor`);
    return bad ? [bad, "value"] : ["", ""];
  }

  static #throw(bad: string, kind: "shape" | "value" | ""): never {
    throw kind === "shape" ? new ShapeError(bad) : new NumericalError(bad);
  }

  /** grad + residual, as a new array. */
  #x(grad: Float32Array): Float32Array {
    const x = new Float32Array(grad), res = this.#errorFeedback ? this.#residual : null;
    if (res) { for (let i = 0; i < x.length; i++) x[i]! += res[i]!; }
    return x;
  }

  /** This rank's message and the residual it would leave. */
  #compress(x: Float32Array): { msg: Uint8Array; residual: Float32Array } {
    const k = this.#k, sel = topk(new Matrix(1, this.n, x), k, { ...this.#kernel, byAbs: true });
    const msg = new Uint8Array(8 * k), [idx, val] = views(msg, k);
    idx.set(sel.indices);
    val.set(sel.values);
    const residual = x; // x becomes the residual: the sent entries leave it
    for (let j = 0; j < k; j++) residual[idx[j]!] = 0;
    return { msg, residual };
  }

  /** The dense sum of every rank's message, in rank order; throws on a marker or bad length. */
  #decode(msgs: readonly Uint8Array[]): Float32Array {
    const k = this.#k, out = new Float32Array(this.n);
    msgs.forEach((m, r) => {
      if (m.byteLength !== 8 * k) {
        throw m.byteLength === 4
          ? new NumericalError(
            `Rank ${r} sent no part of the ${this.n}-value Top-K tensor: its gradient is not finite or has the wrong length`,
          )
          : new ShapeError(
            `Rank ${r} sent ${m.byteLength} bytes for the ${this.n}-value Top-K tensor, this rank expected ${
              8 * k
            }: every rank must use the same size and density`,
          );
      }
    });
    for (const m of msgs) {
      const [idx, val] = views(m, k);
      for (let j = 0; j < k; j++) {
        const i = idx[j]!;
        if (i >= this.n) {
          throw new ShapeError(`A Top-K index ${i} is out of range for ${this.n} values`);
        }
        out[i]! += val[j]!;
      }
    }
    return out;
  }

  #checkSum(sum: Float32Array): void {
    const b = _nonFinite(
      sum,
      `The all-reduced gradient of the ${this.n}-value Top-K tensor`,
      ": a rank's gradient is not finite, or the sum overflowed",
    );
    if (b) throw new NumericalError(b);
  }

  #done(sum: Float32Array, residual: Float32Array | null, compressed: boolean): ExchangeResult {
    this.#residual = this.#errorFeedback ? residual : null;
    this.#steps++;
    return { sum, bytesSent: this.bytesPerStep, compressed };
  }

  /**
   * One step, blocking: every rank passes its gradient; returns the sum over ranks of every
   * rank's top k (the same on every rank) and the bytes this rank sent.
   * @param comm The communicator (every rank calls with the same tensor in the same order).
   * @param grad This rank's gradient, n finite f32 values (not modified).
   */
  exchangeSync(comm: Communicator, grad: Float32Array): ExchangeResult {
    const [bad, kind] = this.#check(grad);
    if (!this.compressed) {
      const x = bad ? new Float32Array(this.n).fill(NaN) : this.#x(grad);
      comm.allReduceSync(x);
      if (bad) TopKCompressor.#throw(bad, kind);
      this.#checkSum(x);
      return this.#done(x, null, false);
    }
    const c = bad ? null : this.#compress(this.#x(grad));
    const msgs = comm.allGatherVSync(c ? c.msg : new Uint8Array(4));
    if (bad) TopKCompressor.#throw(bad, kind);
    return this.#done(this.#decode(msgs), c!.residual, true);
  }

  /**
   * {@linkcode TopKCompressor.exchangeSync} with the collective off the JavaScript thread.
   * @param comm The communicator.
   * @param grad This rank's gradient (not modified).
   */
  async exchange(comm: Communicator, grad: Float32Array): Promise<ExchangeResult> {
    const [bad, kind] = this.#check(grad);
    if (!this.compressed) {
      const x = bad ? new Float32Array(this.n).fill(NaN) : this.#x(grad);
      await comm.allReduce(x);
      if (bad) TopKCompressor.#throw(bad, kind);
      this.#checkSum(x);
      return this.#done(x, null, false);
    }
    const c = bad ? null : this.#compress(this.#x(grad));
    const msgs = await comm.allGatherV(c ? c.msg : new Uint8Array(4));
    if (bad) TopKCompressor.#throw(bad, kind);
    return this.#done(this.#decode(msgs), c!.residual, true);
  }

  /** @internal See {@linkcode simulateTopK}. */
  static _simulate(
    states: readonly TopKCompressor[],
    grads: readonly Float32Array[],
  ): ExchangeResult[] {
    const s0 = states[0]!;
    states.forEach((s, r) => {
      if (s.n !== s0.n || s.#k !== s0.#k || s.#steps !== s0.#steps) {
        throw new RangeError(
          `Rank ${r}'s state (${s.n} values, k ${s.#k}, ${s.#steps} steps) differs from rank 0's (${s0.n} values, k ${s0.#k}, ${s0.#steps} steps)`,
        );
      }
      const [bad, kind] = s.#check(grads[r]!);
      if (bad) TopKCompressor.#throw(`On rank ${r}: ${bad[0]!.toLowerCase()}${bad.slice(1)}`, kind);
    });
    if (!s0.compressed) {
      const sum = simulateAllReduce(states.map((s, r) => s.#x(grads[r]!)));
      s0.#checkSum(sum);
      return states.map((s) => s.#done(new Float32Array(sum), null, false));
    }
    const parts = states.map((s, r) => s.#compress(s.#x(grads[r]!)));
    const sum = s0.#decode(parts.map((p) => p.msg));
    return states.map((s, r) => s.#done(new Float32Array(sum), parts[r]!.residual, true));
  }

  /** @internal See {@linkcode topKRoundTrip}. */
  static _roundTrip(x: Float32Array, density: number, options: KernelOptions): RoundTrip {
    const c = new TopKCompressor(x.length, { ...options, density, errorFeedback: false });
    const [bad, kind] = c.#check(x);
    if (bad) TopKCompressor.#throw(bad, kind);
    if (!c.compressed) return { approximation: new Float32Array(x), error: 0, bytes: 4 * c.n };
    const { msg, residual } = c.#compress(new Float32Array(x));
    const approximation = new Float32Array(c.n), [idx, val] = views(msg, c.#k);
    for (let j = 0; j < idx.length; j++) approximation[idx[j]!] = val[j]!;
    let error = 0;
    for (const v of residual) error += v * v;
    return { approximation, error, bytes: c.bytesPerStep };
  }
}

/**
 * What {@linkcode TopKCompressor.exchangeSync} gives every rank of an N-rank world, computed in
 * one process: `states[r]` and `grads[r]` are rank r's (the states advance as the ranks' would).
 * Bit for bit what the exchange gives when compressed (the same rank-order sum); uncompressed,
 * the sum follows {@linkcode simulateAllReduce}.
 *
 * @example Two ranks, one entry each
 * ```ts
 * import { simulateTopK, TopKCompressor } from "./topk.ts";
 * const ranks = [0, 1].map(() => new TopKCompressor(4, { density: 0.25, backend: "ts" }));
 * const [a] = simulateTopK(ranks, [new Float32Array([0, 3, 1, 0]), new Float32Array([2, 3, 0, 0])]);
 * if (a!.sum.join() !== "0,6,0,0") throw new Error(); // rank 1's tie goes to the lower index
 * ```
 */
export function simulateTopK(
  states: readonly TopKCompressor[],
  grads: readonly Float32Array[],
): ExchangeResult[] {
  if (states.length === 0 || states.length !== grads.length) {
    throw new RangeError(
      `Cannot simulate ${states.length} ranks with ${grads.length} gradients: expected one state and one gradient per rank, at least one`,
    );
  }
  return TopKCompressor._simulate(states, grads);
}

/**
 * One rank's tensor through Top-K at a candidate density and back, with no residual: the
 * ‖C(x) − x‖² (the sum of squares left out) and bytes L-GreCo tabulates per layer and density. A
 * tensor that would travel uncompressed comes back as it is (error 0, bytes 4·n).
 *
 * @example
 * ```ts
 * import { topKRoundTrip } from "./topk.ts";
 * const r = topKRoundTrip(new Float32Array([3, -1, 0.5, 2, 0, 0, 0, 0]), 0.25, { backend: "ts" });
 * if (r.error !== 1.25 || r.bytes !== 16 || r.approximation.join() !== "3,0,0,2,0,0,0,0") throw new Error();
 * ```
 */
export function topKRoundTrip(
  x: Float32Array,
  density: number,
  options: KernelOptions = {},
): RoundTrip {
  return TopKCompressor._roundTrip(x, density, options);
}
