/**
 * PowerSGD (Vogels et al., 2019) exchange of one layer's gradient matrix over a
 * {@linkcode Communicator}, as torch's `powerSGD_hook` does it per tensor: error feedback
 * (M = grad + residual), P = M·Q, all-reduce P, orthogonalise P (Gram–Schmidt), Q = Mᵀ·P,
 * all-reduce Q, approximation P·Qᵀ, and Q kept for the next step (warm start).
 *
 * Conventions (where lmkit differs from torch, it says so):
 * - The result is the SUM over ranks, P·Q_sumᵀ (torch's hook returns the mean, P·Q_sumᵀ / N):
 *   lmkit's data-parallel path sums gradients that are already scaled by 1 / global tokens. Given
 *   the same inputs and the same start Q, lmkit's result is N × torch's, and the residuals agree.
 * - Residual (as torch): residual = M − P·Q_sumᵀ / N, this rank's M less its equal share of the
 *   sum. Over ranks the residuals add up to Σ M − result, so nothing is lost: Σ grad over steps =
 *   Σ results + Σ residuals (up to the rounding of the f32 subtraction, one half-ulp per element).
 * - Matrices whose compressed form is not smaller, (rows + cols)·r·minCompressionRate ≥ rows·cols
 *   with r = min(rank, rows, cols) (1-D tensors are n×1 and always fall here), travel
 *   uncompressed: one all-reduce of grad (+ the residual left from an earlier compressed step, if
 *   any), and no residual afterwards (torch keeps local − mean as their "error"; lmkit keeps none).
 * - Orthogonalisation is torch's modified Gram–Schmidt for every rank (torch switches to a
 *   Householder QR above rank 2: the columns may differ in sign, P·Qᵀ does not), with its
 *   epsilon added to each column norm; a zero column stays zero (torch, with epsilon 0,
 *   divides by zero and yields NaN).
 * - Q starts from normals of lmkit's seeded {@linkcode Rng} (the same on every rank), not from
 *   torch's generator: to reproduce a torch run, give both the same Q ({@linkcode PowerSgdCompressor.setQ}).
 * - A gradient that is not finite, or of the wrong length, fails the call on EVERY rank (the bad
 *   rank sends NaN instead of its P, so that no rank waits for it): NumericalError or ShapeError
 *   on that rank, NumericalError naming the collective on the others; the state is unchanged.
 *
 * @module
 */
import { NumericalError, ShapeError } from "../core/errors.ts";
import { quoteValue } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { Rng } from "../core/rng.ts";
import { gemm } from "../kernels/gemm.ts";
import type { KernelOptions } from "../kernels/mod.ts";
import type { Communicator } from "./communicator.ts";

/** What one exchange of a compressed gradient (PowerSGD or Top-K) gives this rank. */
export interface ExchangeResult {
  /** The sum over ranks of every rank's compressed gradient (dense, the same on every rank). */
  sum: Float32Array;
  /**
   * Bytes this rank put into collectives in this call: the payload (P and Q, indices and values,
   * or the raw f32 gradient), not the transport's traffic (a ring all-reduce moves ~2× that).
   */
  bytesSent: number;
  /** Whether the gradient travelled compressed (else as one all-reduce of the raw values). */
  compressed: boolean;
}

/** One rank's tensor compressed and decompressed at a candidate level, as L-GreCo measures it. */
export interface RoundTrip {
  /** C(x), the decompressed tensor. */
  approximation: Float32Array;
  /** ‖C(x) − x‖², summed in f64. */
  error: number;
  /** Bytes one rank would send for x at this level (see {@linkcode ExchangeResult.bytesSent}). */
  bytes: number;
}

/** Options of {@linkcode PowerSgdCompressor}. */
export interface PowerSgdOptions extends KernelOptions {
  /** Approximation rank r ≥ 1 (default 1); min(r, rows, cols) is used, as in torch. */
  rank?: number;
  /** Added to every column norm in Gram–Schmidt (default 0, torch's default). */
  epsilon?: number;
  /** Seed of the normals Q starts from; every rank must pass the same (default 0). */
  seed?: number;
  /** Keep Q between steps (default true); false draws a fresh Q every step. */
  warmStart?: boolean;
  /** Keep the residual and add it to the next gradient (default true). */
  errorFeedback?: boolean;
  /**
   * Compress only when (rows + cols)·r·minCompressionRate < rows·cols (default 1: whenever the
   * compressed form is smaller; torch's default is 2).
   */
  minCompressionRate?: number;
}

/** Options of {@linkcode powerSgdRoundTrip}. */
export interface PowerSgdRoundTripOptions extends KernelOptions {
  /** Power iterations (default 1, what one exchange does; L-GreCo's tables use 5). */
  iterations?: number;
  /** Added to every column norm in Gram–Schmidt (default 0). */
  epsilon?: number;
  /** Seed of the start Q when `q` is not given (default 0). */
  seed?: number;
  /** The start Q (cols × r, row-major), e.g. a compressor's warm-start {@linkcode PowerSgdCompressor.q}. */
  q?: Float32Array;
  /** As {@linkcode PowerSgdOptions.minCompressionRate} (default 1). */
  minCompressionRate?: number;
}

function checkInt(v: unknown, what: string, min: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) {
    throw new RangeError(`${what} ${quoteValue(v)} is invalid: expected an integer ≥ ${min}`);
  }
  return v;
}

function checkFiniteNonNegative(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new RangeError(`${what} ${quoteValue(v)} is invalid: expected a finite number ≥ 0`);
  }
  return v;
}

/**
 * @internal The sentence "`whose` holds NaN at element i`tail`" for x's first non-finite
 * element, or "".
 */
export function _nonFinite(
  x: Float32Array,
  whose: string,
  tail = ": expected finite values",
): string {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (v - v !== 0) return `${whose} holds ${quoteValue(v)} at element ${i}${tail}`;
  }
  return "";
}

/**
 * The element-wise sum of one f32 array per rank, added in the order this machine's MPI
 * all-reduce uses (checked by tests/comm/powersgd_test.ts at 2 and 4 ranks): pairwise,
 * ((x₀ + x₁) + (x₂ + x₃)), for a power-of-two count, else in rank order. With 1 or 2 ranks every
 * order gives the same bits; beyond, an MPI may pick another order, within f32 rounding.
 *
 * @example
 * ```ts
 * import { simulateAllReduce } from "./powersgd.ts";
 * const s = simulateAllReduce([new Float32Array([1, 2]), new Float32Array([3, 4])]);
 * if (s[0] !== 4 || s[1] !== 6) throw new Error();
 * ```
 */
export function simulateAllReduce(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 0) throw new RangeError("Cannot sum over 0 ranks: expected at least 1");
  const n = parts[0]!.length;
  parts.forEach((p, r) => {
    if (p.length !== n) {
      throw new ShapeError(`Rank ${r}'s array has ${p.length} elements, rank 0's ${n}`);
    }
  });
  const pow2 = (parts.length & (parts.length - 1)) === 0;
  if (!pow2) {
    const out = new Float32Array(parts[0]!);
    for (let r = 1; r < parts.length; r++) {
      const p = parts[r]!;
      for (let i = 0; i < n; i++) out[i]! += p[i]!;
    }
    return out;
  }
  let level: Float32Array[] = parts.map((p) => new Float32Array(p));
  while (level.length > 1) {
    const next: Float32Array[] = [];
    for (let j = 0; j < level.length; j += 2) {
      const a = level[j]!, b = level[j + 1]!;
      for (let i = 0; i < n; i++) a[i]! += b[i]!;
      next.push(a);
    }
    level = next;
  }
  return level[0]!;
}

/**
 * In place: torch's modified Gram–Schmidt over the r columns of a row-major n×r matrix (sums in
 * f64, values rounded to f32): each column is divided by its norm + epsilon, then its projection
 * is taken out of every later column. A zero column (norm 0, epsilon 0) stays zero.
 *
 * @example
 * ```ts
 * import { orthogonalize } from "./powersgd.ts";
 * const a = new Float32Array([3, 1, 4, 1]); // [[3, 1], [4, 1]]
 * orthogonalize(a, 2, 2);
 * if (Math.abs(a[0]! - 0.6) > 1e-7 || Math.abs(a[0]! * a[1]! + a[2]! * a[3]!) > 1e-6) throw new Error();
 * ```
 */
export function orthogonalize(a: Float32Array, n: number, r: number, epsilon = 0): void {
  if (a.length !== n * r) {
    throw new ShapeError(`Cannot view ${a.length} elements as a ${n}×${r} matrix`);
  }
  for (let i = 0; i < r; i++) {
    let ss = 0;
    for (let j = 0; j < n; j++) ss += a[j * r + i]! * a[j * r + i]!;
    const d = Math.sqrt(ss) + epsilon;
    if (d === 0) {
      for (let j = 0; j < n; j++) a[j * r + i] = 0;
      continue;
    }
    for (let j = 0; j < n; j++) a[j * r + i] = a[j * r + i]! / d;
    for (let c = i + 1; c < r; c++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += a[j * r + i]! * a[j * r + c]!;
      for (let j = 0; j < n; j++) a[j * r + c] = a[j * r + c]! - dot * a[j * r + i]!;
    }
  }
}

/** Whether a rows×cols matrix at rank r travels compressed. */
function worthCompressing(rows: number, cols: number, r: number, rate: number): boolean {
  return (rows + cols) * r * rate < rows * cols;
}

/** One step's local state between the collectives of a compressed exchange. */
interface Pending {
  m: Float32Array;
  p: Float32Array;
  bad: string;
  badKind: "shape" | "value" | "";
  rngState: ReturnType<Rng["state"]>;
}

/**
 * One rank's PowerSGD state for one layer (a rows×cols gradient, row-major f32): the warm-start
 * Q, the residual, the seeded generator. Every rank makes one with the same shape and options,
 * and calls {@linkcode PowerSgdCompressor.exchange} with its gradient at every step.
 *
 * @example Two steps in a world of one (the `single` communicator)
 * ```ts
 * import { PowerSgdCompressor } from "./powersgd.ts";
 * import { createCommunicator } from "./communicator.ts";
 * using comm = createCommunicator("single");
 * const c = new PowerSgdCompressor(4, 3, { rank: 1, backend: "ts" });
 * const g = new Float32Array([1, 2, 3, 2, 4, 6, 3, 6, 9, 4, 8, 12]); // rank one: u·vᵀ
 * const { sum, bytesSent } = c.exchangeSync(comm, g);
 * if (bytesSent !== (4 + 3) * 1 * 4) throw new Error("expected P and Q only");
 * if (sum.some((v, i) => Math.abs(v - g[i]!) > 1e-5)) throw new Error("rank one is exact");
 * if (c.residual!.some((v) => Math.abs(v) > 1e-5)) throw new Error("nothing left behind");
 * ```
 */
export class PowerSgdCompressor {
  /** Rows of the gradient matrix. */
  readonly rows: number;
  /** Columns of the gradient matrix. */
  readonly cols: number;
  readonly #epsilon: number;
  readonly #warmStart: boolean;
  readonly #errorFeedback: boolean;
  readonly #minRate: number;
  readonly #kernel: KernelOptions;
  #rank = 1;
  #compressed = false;
  #rng: Rng;
  #q: Float32Array | null = null;
  #residual: Float32Array | null = null;
  #steps = 0;

  /**
   * Creates one rank's state.
   * @param rows Rows of the gradient (for a 1-D tensor: its length, and cols 1).
   * @param cols Columns of the gradient.
   * @param options Rank, epsilon, seed, warm start, error feedback, kernel backend.
   */
  constructor(rows: number, cols: number, options: PowerSgdOptions = {}) {
    this.rows = checkInt(rows, "PowerSGD row count", 1);
    this.cols = checkInt(cols, "PowerSGD column count", 1);
    this.#epsilon = checkFiniteNonNegative(options.epsilon ?? 0, "PowerSGD epsilon");
    this.#minRate = checkFiniteNonNegative(
      options.minCompressionRate ?? 1,
      "PowerSGD minCompressionRate",
    );
    this.#warmStart = options.warmStart ?? true;
    this.#errorFeedback = options.errorFeedback ?? true;
    this.#kernel = options.backend ? { backend: options.backend } : {};
    this.#rng = new Rng(checkInt(options.seed ?? 0, "PowerSGD seed", -(2 ** 53)));
    this.setRank(options.rank ?? 1);
  }

  /** The rank in use, min(requested, rows, cols). */
  get rank(): number {
    return this.#rank;
  }

  /** Whether the gradient travels compressed at this rank (see the module's conventions). */
  get compressed(): boolean {
    return this.#compressed;
  }

  /** Steps exchanged so far. */
  get steps(): number {
    return this.#steps;
  }

  /** The residual left by the last step (rows·cols), or null (none yet, or uncompressed). */
  get residual(): Float32Array | null {
    return this.#residual;
  }

  /** The Q the next step starts from (cols × rank, row-major, before orthogonalisation), or null. */
  get q(): Float32Array | null {
    return this.#q;
  }

  /**
   * Bytes one rank sends per exchange: 4·(rows + cols)·r compressed, else 4·rows·cols.
   */
  get bytesPerStep(): number {
    return 4 * (this.#compressed ? (this.rows + this.cols) * this.#rank : this.rows * this.cols);
  }

  /**
   * Changes the rank (L-GreCo's per-layer choice); the residual is kept, Q is drawn afresh at
   * the next step when the rank changed. Every rank must make the same change.
   * @param rank The new rank, an integer ≥ 1.
   */
  setRank(rank: number): void {
    checkInt(rank, "PowerSGD rank", 1);
    const r = Math.min(rank, this.rows, this.cols);
    if (r !== this.#rank) this.#q = null;
    this.#rank = r;
    this.#compressed = worthCompressing(this.rows, this.cols, r, this.#minRate);
  }

  /**
   * Sets the Q the next step starts from (cols × rank, row-major; it is orthogonalised first),
   * e.g. to start from the same Q as a torch run. Every rank must set the same.
   * @param q cols × rank finite values.
   */
  setQ(q: Float32Array): void {
    if (q.length !== this.cols * this.#rank) {
      throw new ShapeError(
        `Cannot set a Q of ${q.length} values for a ${this.rows}×${this.cols} layer at rank ${this.#rank}: expected ${
          this.cols * this.#rank
        }`,
      );
    }
    const bad = _nonFinite(q, `The Q given to the ${this.#shape()}`);
    if (bad) throw new NumericalError(bad);
    this.#q = new Float32Array(q);
  }

  #shape(): string {
    return `${this.rows}×${this.cols} PowerSGD layer`;
  }

  /** The sentence that rejects `grad`, and its kind, or "". */
  #check(grad: Float32Array): [string, Pending["badKind"]] {
    if (!(grad instanceof Float32Array)) {
      return [`The gradient of the ${this.#shape()} is not a Float32Array`, "shape"];
    }
    const n = this.rows * this.cols;
    if (grad.length !== n) {
      return [
        `The gradient of the ${this.#shape()} has ${grad.length} elements: expected ${n}`,
        "shape",
      ];
    }
    const bad = _nonFinite(grad, `The gradient of the ${this.#shape()}`);
    return bad ? [bad, "value"] : ["", ""];
  }

  #throwBad(bad: string, kind: Pending["badKind"]): never {
    throw kind === "shape" ? new ShapeError(bad) : new NumericalError(bad);
  }

  /** grad (+ residual) as a new array, or NaN where grad is bad. */
  #withResidual(grad: Float32Array, bad: string): Float32Array {
    const n = this.rows * this.cols;
    if (bad) return new Float32Array(n).fill(NaN);
    const m = new Float32Array(grad);
    const res = this.#errorFeedback ? this.#residual : null;
    if (res) { for (let i = 0; i < n; i++) m[i]! += res[i]!; }
    return m;
  }

  /** After the all-reduce of `sum` (named `what`): throws on every rank if any rank was bad. */
  #checkSum(sum: Float32Array, what: string, bad: string, kind: Pending["badKind"]): void {
    if (bad) this.#throwBad(bad, kind);
    const b = _nonFinite(
      sum,
      `The all-reduced ${what} of the ${this.#shape()}`,
      ": a rank's gradient is not finite, or the sum overflowed",
    );
    if (b) throw new NumericalError(b);
  }

  #begin(grad: Float32Array): Pending {
    const [bad, badKind] = this.#check(grad);
    const m = this.#withResidual(grad, bad);
    const r = this.#rank, rngState = this.#rng.state();
    let q = this.#warmStart ? this.#q : null;
    q = q ? new Float32Array(q) : this.#rng.normalArray(this.cols * r);
    orthogonalize(q, this.cols, r, this.#epsilon);
    const p = bad
      ? new Float32Array(this.rows * r).fill(NaN)
      : gemm(new Matrix(this.rows, this.cols, m), new Matrix(this.cols, r, q), this.#kernel).data;
    return { m, p, bad, badKind, rngState };
  }

  #middle(s: Pending): Float32Array {
    orthogonalize(s.p, this.rows, this.#rank, this.#epsilon);
    return gemm(
      new Matrix(this.rows, this.cols, s.m),
      new Matrix(this.rows, this.#rank, s.p),
      { ...this.#kernel, transA: true },
    ).data;
  }

  #end(s: Pending, qSum: Float32Array, size: number): ExchangeResult {
    const r = this.#rank;
    const out = gemm(
      new Matrix(this.rows, r, s.p),
      new Matrix(this.cols, r, qSum),
      { ...this.#kernel, transB: true },
    ).data;
    if (this.#errorFeedback) {
      const res = new Float32Array(out.length), m = s.m;
      for (let i = 0; i < res.length; i++) res[i] = m[i]! - out[i]! / size;
      this.#residual = res;
    }
    this.#q = qSum;
    this.#steps++;
    return { sum: out, bytesSent: this.bytesPerStep, compressed: true };
  }

  #fail(s: Pending, e: unknown): never {
    this.#rng = Rng.fromState(s.rngState);
    throw e;
  }

  #endUncompressed(sum: Float32Array): ExchangeResult {
    this.#residual = null;
    this.#steps++;
    return { sum, bytesSent: this.bytesPerStep, compressed: false };
  }

  /**
   * One step, blocking: every rank passes its gradient; returns the sum over ranks of the
   * compressed gradients (the same on every rank) and the bytes this rank sent.
   * @param comm The communicator (every rank calls with the same layer in the same order).
   * @param grad This rank's gradient, rows·cols finite f32 values (not modified).
   */
  exchangeSync(comm: Communicator, grad: Float32Array): ExchangeResult {
    if (!this.#compressed) {
      const [bad, kind] = this.#check(grad);
      const x = this.#withResidual(grad, bad);
      comm.allReduceSync(x);
      this.#checkSum(x, "gradient", bad, kind);
      return this.#endUncompressed(x);
    }
    const s = this.#begin(grad);
    try {
      comm.allReduceSync(s.p);
      this.#checkSum(s.p, "P", s.bad, s.badKind);
      const q = this.#middle(s);
      comm.allReduceSync(q);
      this.#checkSum(q, "Q", "", "");
      return this.#end(s, q, comm.size);
    } catch (e) {
      this.#fail(s, e);
    }
  }

  /**
   * {@linkcode PowerSgdCompressor.exchangeSync} with the all-reduces off the JavaScript thread.
   * @param comm The communicator.
   * @param grad This rank's gradient (not modified; do not write it until the Promise settles).
   */
  async exchange(comm: Communicator, grad: Float32Array): Promise<ExchangeResult> {
    if (!this.#compressed) {
      const [bad, kind] = this.#check(grad);
      const x = this.#withResidual(grad, bad);
      await comm.allReduce(x);
      this.#checkSum(x, "gradient", bad, kind);
      return this.#endUncompressed(x);
    }
    const s = this.#begin(grad);
    try {
      await comm.allReduce(s.p);
      this.#checkSum(s.p, "P", s.bad, s.badKind);
      const q = this.#middle(s);
      await comm.allReduce(q);
      this.#checkSum(q, "Q", "", "");
      return this.#end(s, q, comm.size);
    } catch (e) {
      this.#fail(s, e);
    }
  }

  /** @internal One simulated step of N ranks (see {@linkcode simulatePowerSgd}). */
  static _simulate(
    states: readonly PowerSgdCompressor[],
    grads: readonly Float32Array[],
  ): ExchangeResult[] {
    const s0 = states[0]!, size = states.length;
    for (let r = 0; r < size; r++) {
      const [bad, kind] = states[r]!.#check(grads[r]!);
      if (bad) states[r]!.#throwBad(`On rank ${r}: ${bad[0]!.toLowerCase()}${bad.slice(1)}`, kind);
    }
    if (!s0.#compressed) {
      const sum = simulateAllReduce(states.map((s, r) => s.#withResidual(grads[r]!, "")));
      return states.map((s) => s.#endUncompressed(new Float32Array(sum)));
    }
    const pend = states.map((s, r) => s.#begin(grads[r]!));
    const pSum = simulateAllReduce(pend.map((p) => p.p));
    s0.#checkSum(pSum, "P", "", "");
    pend.forEach((p) => p.p.set(pSum));
    const qSum = simulateAllReduce(states.map((s, r) => s.#middle(pend[r]!)));
    s0.#checkSum(qSum, "Q", "", "");
    return states.map((s, r) => s.#end(pend[r]!, new Float32Array(qSum), size));
  }

  /** @internal See {@linkcode powerSgdRoundTrip}. */
  static _roundTrip(
    x: Float32Array,
    shape: readonly [number, number],
    rank: number,
    options: PowerSgdRoundTripOptions,
  ): RoundTrip {
    const [rows, cols] = shape;
    const c = new PowerSgdCompressor(rows, cols, {
      rank,
      errorFeedback: false,
      epsilon: options.epsilon ?? 0,
      seed: options.seed ?? 0,
      minCompressionRate: options.minCompressionRate ?? 1,
      ...(options.backend ? { backend: options.backend } : {}),
    });
    const iterations = checkInt(options.iterations ?? 1, "PowerSGD iteration count", 1);
    const [bad, kind] = c.#check(x);
    if (bad) c.#throwBad(bad, kind);
    if (options.q) c.setQ(options.q);
    if (!c.compressed) {
      return { approximation: new Float32Array(x), error: 0, bytes: c.bytesPerStep };
    }
    let out: ExchangeResult | null = null;
    for (let i = 0; i < iterations; i++) {
      const s = c.#begin(x);
      const q = c.#middle(s);
      out = c.#end(s, q, 1);
    }
    const approximation = out!.sum;
    let error = 0;
    for (let i = 0; i < x.length; i++) error += (approximation[i]! - x[i]!) ** 2;
    return { approximation, error, bytes: c.bytesPerStep };
  }

  /** @internal Whether two states can stand for ranks of one exchange. */
  _sameLayer(o: PowerSgdCompressor): boolean {
    return o.rows === this.rows && o.cols === this.cols && o.#rank === this.#rank &&
      o.#compressed === this.#compressed && o.#steps === this.#steps;
  }
}

/**
 * What {@linkcode PowerSgdCompressor.exchangeSync} gives every rank of an N-rank world, computed
 * in one process: `states[r]` and `grads[r]` are rank r's (the states advance as the ranks'
 * would). The sums over ranks follow {@linkcode simulateAllReduce}'s order.
 *
 * @example Two ranks; the sum of a rank-one gradient pair is exact at rank 1
 * ```ts
 * import { PowerSgdCompressor, simulatePowerSgd } from "./powersgd.ts";
 * const ranks = [0, 1].map(() => new PowerSgdCompressor(2, 3, { backend: "ts" }));
 * const [a, b] = simulatePowerSgd(ranks, [
 *   new Float32Array([1, 2, 3, 2, 4, 6]),
 *   new Float32Array([1, 2, 3, 2, 4, 6]),
 * ]);
 * if (Math.abs(a!.sum[5]! - 12) > 1e-5 || a!.sum.some((v, i) => v !== b!.sum[i])) throw new Error();
 * ```
 */
export function simulatePowerSgd(
  states: readonly PowerSgdCompressor[],
  grads: readonly Float32Array[],
): ExchangeResult[] {
  if (states.length === 0 || states.length !== grads.length) {
    throw new RangeError(
      `Cannot simulate ${states.length} ranks with ${grads.length} gradients: expected one state and one gradient per rank, at least one`,
    );
  }
  states.forEach((s, r) => {
    if (!states[0]!._sameLayer(s)) {
      throw new RangeError(
        `Rank ${r}'s state (${s.rows}×${s.cols}, rank ${s.rank}, ${s.steps} steps) differs from rank 0's (${
          states[0]!.rows
        }×${states[0]!.cols}, rank ${states[0]!.rank}, ${states[0]!.steps} steps)`,
      );
    }
  });
  return PowerSgdCompressor._simulate(states, grads);
}

/**
 * One rank's tensor through PowerSGD at rank r and back, with no residual and no other rank:
 * the ‖C(x) − x‖² and bytes L-GreCo tabulates per layer and candidate rank. With `iterations`
 * i: i rounds of (orthogonalise Q, P = x·Q, orthogonalise P, Q = xᵀ·P), C(x) = P·Qᵀ. A tensor that
 * would travel uncompressed comes back as it is (error 0, bytes 4·rows·cols).
 *
 * @example Rank 1 keeps the larger singular value; rank 2 is no smaller than a 4×4 matrix
 * ```ts
 * import { powerSgdRoundTrip } from "./powersgd.ts";
 * const x = new Float32Array([1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // diag(1, 2, 0, 0)
 * const r1 = powerSgdRoundTrip(x, [4, 4], 1, { iterations: 30, backend: "ts" });
 * const r2 = powerSgdRoundTrip(x, [4, 4], 2, { backend: "ts" });
 * if (Math.abs(r1.error - 1) > 1e-6 || r1.bytes !== (4 + 4) * 1 * 4) throw new Error();
 * if (r2.error !== 0 || r2.bytes !== 4 * 4 * 4) throw new Error("travels uncompressed");
 * ```
 */
export function powerSgdRoundTrip(
  x: Float32Array,
  shape: readonly [number, number],
  rank: number,
  options: PowerSgdRoundTripOptions = {},
): RoundTrip {
  return PowerSgdCompressor._roundTrip(x, shape, rank, options);
}
