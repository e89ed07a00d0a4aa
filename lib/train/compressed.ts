/**
 * Compressed gradient exchange for data-parallel training: each projection's gradient (plus its
 * error-feedback residual) is compressed at a per-tensor level and summed over the ranks by the
 * compressor's own collectives; the residual keeps what compression left out, so nothing is lost,
 * only delayed. 1-D tensors (RMSNorm weights) and tensors a level would not shrink travel raw, in
 * one all-reduce. Levels can change between steps (L-GreCo).
 *
 * @module
 */
import type { Communicator } from "../comm/communicator.ts";
import {
  type LgrecoAdjustment,
  LgrecoSchedule,
  type LgrecoScheduleOptions,
} from "../comm/lgreco.ts";
import { quoteValue } from "../core/errors.ts";
import type { LlamaParams, ParamLayout, ParamView } from "./params.ts";
import type { GradientExchange } from "./trainer.ts";

/**
 * One family of gradient compression (bucketed quantization, Top-K, PowerSGD) at numbered
 * levels (bits, density, rank), each with error feedback.
 */
export interface GradientCompressor {
  /** The family, for reports. */
  readonly name: string;
  /**
   * Bytes one rank sends for a tensor of `shape` at `level`; null when that is not fewer than
   * the raw tensor's 4 bytes per element (the tensor then travels raw).
   */
  bytes(shape: readonly number[], level: number): number | null;
  /** ‖C(x) − x‖² of one rank's tensor `x` at `level` (what L-GreCo budgets). */
  error(x: Float32Array, shape: readonly number[], level: number): number;
  /**
   * Collective. In place: `x` (this rank's gradient plus residual) becomes the sum over the
   * ranks of their compressed tensors, and `residual` becomes x − C(x). `key` names the tensor
   * (for state kept between steps, e.g. PowerSGD's Q). Resolves to the bytes this rank sent.
   */
  exchange(
    comm: Communicator,
    x: Float32Array,
    residual: Float32Array,
    options: { shape: readonly number[]; level: number; key: string },
  ): Promise<number>;
}

/** Options of {@linkcode CompressedExchange}. */
export interface CompressedExchangeOptions {
  /** The level of each compressible tensor at the start (null: raw). */
  level: (view: ParamView) => number | null;
  /**
   * Called each step with x = this rank's gradient + residual (what is about to be compressed),
   * before any exchange; it may change levels ({@linkcode CompressedExchange.setLevel}), as
   * L-GreCo does. Collective calls in it must be made on every rank.
   */
  onInput?: (x: LlamaParams, step: number, exchange: CompressedExchange) => void;
}

/**
 * A {@linkcode GradientExchange} that compresses each 2-D tensor with error feedback.
 *
 * @example A world of one with a compressor that keeps the top half of each tensor
 * ```ts
 * import { CompressedExchange, type GradientCompressor } from "./compressed.ts";
 * import { createCommunicator } from "../comm/communicator.ts";
 * import { LlamaParams } from "./params.ts";
 * import { parseLlamaConfig } from "../model/config.ts";
 * const config = parseLlamaConfig(await Deno.readTextFile("data/models/tinyllama-bytes/config.json"));
 * const half: GradientCompressor = {
 *   name: "first half",
 *   bytes: (shape) => 2 * shape[0]! * shape[1]!,
 *   error: (x) => x.subarray(x.length >> 1).reduce((a, v) => a + v * v, 0),
 *   exchange(_comm, x, residual) {
 *     residual.set(x.subarray(x.length >> 1), x.length >> 1);
 *     x.fill(0, x.length >> 1);
 *     return Promise.resolve(2 * x.length);
 *   },
 * };
 * const grad = new LlamaParams(config);
 * grad.data.fill(1);
 * const ex = new CompressedExchange(createCommunicator("single"), grad, half, { level: () => 1 });
 * const sent = await ex.reduce(grad, 1);
 * if (!(sent < grad.data.byteLength) || ex.residual.data.every((v) => v === 0)) throw new Error();
 * ```
 */
export class CompressedExchange implements GradientExchange {
  /** Error-feedback residuals, laid out as the parameters. */
  readonly residual: LlamaParams;
  /** The compressor. */
  readonly compressor: GradientCompressor;
  readonly #comm: Communicator;
  readonly #layout: ParamLayout;
  readonly #levels = new Map<string, number | null>();
  readonly #onInput: CompressedExchangeOptions["onInput"];

  /**
   * An exchange over `comm` of gradients laid out as `params`.
   * @param comm The ranks.
   * @param params The parameters (for their layout).
   * @param compressor The compression family.
   * @param options The starting level of each tensor, and a hook on the raw gradient.
   */
  constructor(
    comm: Communicator,
    params: LlamaParams,
    compressor: GradientCompressor,
    options: CompressedExchangeOptions,
  ) {
    const layout = params.layout;
    this.#comm = comm;
    this.#layout = layout;
    this.compressor = compressor;
    this.#onInput = options.onInput;
    this.residual = params.zerosLike();
    for (const v of layout.views) {
      this.setLevel(v.name, v.shape.length === 2 ? options.level(v) : null);
    }
  }

  /** The current level of each tensor (null: raw). */
  levels(): Map<string, number | null> {
    return new Map(this.#levels);
  }

  /**
   * Sets tensor `name`'s level (null: raw from now on; its residual is then added to its next
   * gradient and cleared, so nothing is lost). Every rank must set the same levels.
   */
  setLevel(name: string, level: number | null): void {
    const v = this.#layout.views.find((x) => x.name === name);
    if (!v) throw new RangeError(`The gradient has no tensor ${quoteValue(name)}`);
    if (level !== null && (v.shape.length !== 2 || !Number.isFinite(level))) {
      throw new RangeError(
        `Tensor '${name}' (${v.shape.join(" × ")}) cannot be compressed at level ${
          quoteValue(level)
        }: only 2-D tensors at a finite level`,
      );
    }
    this.#levels.set(
      name,
      level !== null && this.compressor.bytes(v.shape, level) !== null ? level : null,
    );
  }

  /** Bytes this rank sends per step at the current levels. */
  stepBytes(): number {
    let n = 0;
    for (const v of this.#layout.views) {
      const l = this.#levels.get(v.name)!;
      n += l === null ? 4 * v.size : this.compressor.bytes(v.shape, l)!;
    }
    return n;
  }

  /** Sums `grad` over the ranks in place (compressed where a level is set); the bytes sent. */
  async reduce(grad: LlamaParams, step: number): Promise<number> {
    const e = this.residual.data, g = grad.data, raw: ParamView[] = [];
    for (let i = 0; i < g.length; i++) g[i] = g[i]! + e[i]!; // error feedback: x = g + e
    this.#onInput?.(grad, step, this);
    let sent = 0;
    for (const v of this.#layout.views) {
      const lo = v.offset, hi = v.offset + v.size;
      const level = this.#levels.get(v.name)!;
      if (level === null) {
        e.fill(0, lo, hi);
        raw.push(v);
        continue;
      }
      sent += await this.compressor.exchange(this.#comm, g.subarray(lo, hi), e.subarray(lo, hi), {
        shape: v.shape,
        level,
        key: v.name,
      });
    }
    // the raw tensors in one all-reduce
    const n = raw.reduce((a, v) => a + v.size, 0), buf = new Float32Array(n);
    let at = 0;
    for (const v of raw) buf.set(g.subarray(v.offset, v.offset + v.size), (at += v.size) - v.size);
    if (this.#comm.size > 1) await this.#comm.allReduce(buf);
    at = 0;
    for (const v of raw) g.set(buf.subarray(at, at += v.size), v.offset);
    return sent + 4 * n;
  }
}

/** Options of {@linkcode LgrecoLevels}: the candidate levels and the authors' schedule. */
export interface LgrecoLevelsOptions extends Omit<LgrecoScheduleOptions, "uniform" | "initial"> {
  /** The candidate levels of every compressible tensor (bits, densities or ranks). */
  candidates: readonly number[];
  /** The index in `candidates` of the uniform setting (the budget, and the start). */
  uniform: number;
}

/**
 * L-GreCo on the data-parallel path: the levels of a {@linkcode CompressedExchange} chosen per
 * tensor by the authors' schedule and DP (lib/comm/lgreco.ts). Pass {@linkcode onInput} as the
 * exchange's `onInput`. Each step every rank follows the same plan: during warm-up every tensor
 * travels raw; then at the start of each window rank 0 measures every candidate on the inputs
 * (gradient + residual) it accumulated over the last window's final `accIter` steps — the error
 * ‖C(x) − x‖ (the Frobenius norm, as the authors) and the bytes — solves, and broadcasts the
 * choice, which every rank sets before compressing.
 */
export class LgrecoLevels {
  /** The schedule (rank 0's holds the accumulated inputs). */
  readonly schedule: LgrecoSchedule;
  /** The compressible (2-D) tensors, the schedule's layers. */
  readonly names: readonly string[];
  /** Every solve: its step and result (rank 0: with the tables; others: the choice). */
  readonly history: { step: number; choice: number[]; adjustment?: LgrecoAdjustment }[] = [];
  readonly #comm: Communicator;
  readonly #compressor: GradientCompressor;
  readonly #candidates: readonly number[];
  readonly #shapes: (readonly number[])[];

  /**
   * The levels of `params`' 2-D tensors under `compressor`.
   * @param comm The ranks.
   * @param params The parameters (for their layout).
   * @param compressor The compression family.
   * @param options Candidates, the uniform index, and the schedule (warmup, adjustFreq, …).
   */
  constructor(
    comm: Communicator,
    params: LlamaParams,
    compressor: GradientCompressor,
    options: LgrecoLevelsOptions,
  ) {
    const views = params.layout.views.filter((v) => v.shape.length === 2);
    this.#comm = comm;
    this.#compressor = compressor;
    this.#candidates = options.candidates;
    this.#shapes = views.map((v) => v.shape);
    this.names = views.map((v) => v.name);
    if (!(Number.isInteger(options.uniform) && options.candidates[options.uniform] !== undefined)) {
      throw new RangeError(
        `The uniform setting ${
          quoteValue(options.uniform)
        } is not an index of the ${options.candidates.length} candidates`,
      );
    }
    this.schedule = new LgrecoSchedule(views.length, options.candidates.length, options);
  }

  /** The exchange's `onInput`: plans the step, solves when due, accumulates, sets the levels. */
  readonly onInput = (x: LlamaParams, _step: number, exchange: CompressedExchange): void => {
    const plan = this.schedule.plan(), root = this.#comm.rank === 0;
    if (plan.solve) {
      let choice: Int32Array;
      let adjustment: LgrecoAdjustment | undefined;
      if (root) {
        adjustment = this.schedule.solve((layer, c, acc) => {
          const shape = this.#shapes[layer]!, level = this.#candidates[c]!;
          const f = Float32Array.from(acc);
          return {
            error: Math.sqrt(this.#compressor.error(f, shape, level)),
            bytes: this.#compressor.bytes(shape, level) ?? 4 * f.length,
          };
        });
        choice = Int32Array.from(adjustment.choice);
      } else choice = new Int32Array(this.names.length);
      if (this.#comm.size > 1) {
        this.#comm.broadcastSync(new Uint8Array(choice.buffer), 0);
        if (!root) this.schedule.adopt([...choice]);
      }
      this.history.push({
        step: plan.step,
        choice: [...choice],
        ...(adjustment ? { adjustment } : {}),
      });
    }
    const levels = this.schedule.choice;
    this.names.forEach((n, l) =>
      exchange.setLevel(n, plan.compressed ? this.#candidates[levels[l]!]! : null)
    );
    if (plan.accumulate && root) {
      this.names.forEach((n, l) => this.schedule.accumulate(l, x.view(n)));
    }
    this.schedule.advance();
  };
}

/** Options of {@linkcode AccordionLevels}. */
export interface AccordionLevelsOptions {
  /** The level in critical regimes (low compression, e.g. PowerSGD rank r0). */
  fine: number;
  /** The level elsewhere (high compression, e.g. rank r0/2). */
  coarse: number;
  /** Uncompressed steps first (default 0). */
  warmup?: number;
  /** Steps per detection window (Accordion: an epoch). */
  interval: number;
  /** A tensor is critical when its window gradient norm changed by ≥ eta of the last (0.5). */
  eta?: number;
}

/**
 * Accordion (Agarwal et al., MLSys 2021), the adaptive baseline L-GreCo compares with: per tensor,
 * the low-compression level in critical regimes — where the norm of the gradient summed over a
 * window changed by at least `eta` (0.5) relative to the previous window's — and the
 * high-compression level elsewhere; the first window is critical (as uw-mad-dash/Accordion's
 * `auto_scale.py`). Rank 0 decides on its own inputs (gradient + residual) and broadcasts, like
 * {@linkcode LgrecoLevels}. Pass {@linkcode onInput} as the exchange's `onInput`.
 */
export class AccordionLevels {
  /** The compressible (2-D) tensors. */
  readonly names: readonly string[];
  /** Every decision: its step and each tensor's level. */
  readonly history: { step: number; levels: number[] }[] = [];
  readonly #comm: Communicator;
  readonly #o: Required<AccordionLevelsOptions>;
  readonly #sums: Float64Array[];
  #prev: Float64Array | undefined;
  #levels: Int32Array;
  #step = 0;

  /**
   * Accordion's levels for `params`' 2-D tensors.
   * @param comm The ranks.
   * @param params The parameters (for their layout).
   * @param options The two levels, the warm-up, the window and eta.
   */
  constructor(comm: Communicator, params: LlamaParams, options: AccordionLevelsOptions) {
    const views = params.layout.views.filter((v) => v.shape.length === 2);
    this.#comm = comm;
    this.#o = { warmup: 0, eta: 0.5, ...options };
    for (const k of ["warmup", "interval"] as const) {
      const v = this.#o[k];
      if (!Number.isInteger(v) || v < (k === "interval" ? 1 : 0)) {
        throw new RangeError(
          `Accordion ${k} ${quoteValue(v)} is not an integer ≥ ${k === "interval" ? 1 : 0}`,
        );
      }
    }
    this.names = views.map((v) => v.name);
    this.#sums = comm.rank === 0 ? views.map((v) => new Float64Array(v.size)) : [];
    this.#levels = new Int32Array(views.length).fill(this.#o.fine);
  }

  /** The exchange's `onInput`: at each window's end decides the levels; sets them; accumulates. */
  readonly onInput = (x: LlamaParams, _step: number, exchange: CompressedExchange): void => {
    const k = this.#step++ - this.#o.warmup, root = this.#comm.rank === 0;
    if (k > 0 && k % this.#o.interval === 0) {
      if (root) {
        const norms = Float64Array.from(this.#sums, (s) => {
          let q = 0;
          for (const v of s) q += v * v;
          return Math.sqrt(q);
        });
        this.names.forEach((_, l) => {
          const prev = this.#prev?.[l], now = norms[l]!;
          const critical = prev === undefined || prev === 0 ||
            Math.abs(prev - now) / prev >= this.#o.eta;
          this.#levels[l] = critical ? this.#o.fine : this.#o.coarse;
        });
        this.#prev = norms;
        for (const s of this.#sums) s.fill(0);
      }
      if (this.#comm.size > 1) this.#comm.broadcastSync(new Uint8Array(this.#levels.buffer), 0);
      this.history.push({ step: this.#step - 1, levels: [...this.#levels] });
    }
    this.names.forEach((n, l) => exchange.setLevel(n, k >= 0 ? this.#levels[l]! : null));
    if (root && k >= 0) {
      this.names.forEach((n, l) => {
        const s = this.#sums[l]!, g = x.view(n);
        for (let i = 0; i < g.length; i++) s[i]! += g[i]!;
      });
    }
  };
}
