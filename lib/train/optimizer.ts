/**
 * AdamW over flat parameter buffers (moments beside the parameters, same layout), global-norm
 * gradient clipping, and the finite check that keeps a NaN update from ever being applied.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import { adamwStep, type Backend, selectBackend } from "../kernels/mod.ts";
import type { LlamaParams, ParamView } from "./params.ts";

/** Options of {@linkcode AdamW}. */
export interface AdamWOptions {
  /** First-moment decay (default 0.9). */
  beta1?: number;
  /** Second-moment decay (default 0.999, torch's). */
  beta2?: number;
  /** Added to the root of the second moment (default 1e-8). */
  eps?: number;
  /** Decoupled weight decay (default 0.01, torch's). */
  weightDecay?: number;
  /** Decay RMSNorm weights and embeddings too (default false: projections only). */
  decayAll?: boolean;
  /** Kernel backend (default: the best available). */
  backend?: Backend;
}

/**
 * AdamW as `torch.optim.AdamW` (bias-corrected moments, decay applied to the parameter before
 * the Adam update), with two groups: projections (lm_head included) decay, RMSNorm weights and
 * embeddings do not unless `decayAll`.
 *
 * @example
 * ```ts
 * import { AdamW } from "./optimizer.ts";
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const params = LlamaParams.fromModel(await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" }));
 * const grad = params.zerosLike();
 * grad.data.fill(1e-3);
 * const opt = new AdamW(params, { backend: "ts" });
 * const before = params.data[0]!;
 * opt.update(params, grad, 1e-3);
 * if (opt.step !== 1 || !(params.data[0]! < before)) throw new Error("no step");
 * ```
 */
export class AdamW {
  /** First moments, laid out as the parameters. */
  readonly m: LlamaParams;
  /** Second moments. */
  readonly v: LlamaParams;
  /** Updates applied so far. */
  step = 0;
  /** The hyperparameters. */
  readonly options: Required<Omit<AdamWOptions, "backend">>;
  readonly #backend: Backend;
  readonly #runs: { offset: number; size: number; decay: boolean }[];

  /**
   * Zero moments for `params`.
   * @param params The parameters (for the layout).
   * @param options Hyperparameters.
   */
  constructor(params: LlamaParams, options: AdamWOptions = {}) {
    this.options = {
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.999,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.01,
      decayAll: options.decayAll ?? false,
    };
    for (const [k, v] of Object.entries(this.options)) {
      if (
        typeof v === "number" && (!Number.isFinite(v) || v < 0 || (k.startsWith("beta") && v >= 1))
      ) {
        throw new RangeError(`AdamW ${k} ${v} is out of range`);
      }
    }
    this.#backend = selectBackend(options.backend);
    this.m = params.zerosLike();
    this.v = params.zerosLike();
    // contiguous runs of tensors with the same decay: one kernel call each
    this.#runs = [];
    for (const view of params.layout.views) {
      const decay = this.options.decayAll || decaysByDefault(view), last = this.#runs.at(-1);
      if (last && last.decay === decay) last.size += view.size;
      else this.#runs.push({ offset: view.offset, size: view.size, decay });
    }
  }

  /** Applies one update with learning rate `lr` (the gradient must be finite: see {@linkcode checkFinite}). */
  update(params: LlamaParams, grad: LlamaParams, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) {
      throw new RangeError(`Learning rate ${lr} is not finite and ≥ 0`);
    }
    this.step++;
    const o = this.options;
    for (const r of this.#runs) {
      const s = (b: LlamaParams) => b.data.subarray(r.offset, r.offset + r.size);
      adamwStep(s(params), s(grad), s(this.m), s(this.v), {
        lr,
        beta1: o.beta1,
        beta2: o.beta2,
        eps: o.eps,
        weightDecay: r.decay ? o.weightDecay : 0,
        step: this.step,
      }, { backend: this.#backend });
    }
  }
}

/** Whether a tensor decays by default: projections yes, RMSNorm weights and embeddings no. */
export function decaysByDefault(view: ParamView): boolean {
  return view.kind === "linear";
}

/** The gradient's global L2 norm (f64 sum). */
export function gradNorm(grad: LlamaParams): number {
  let s = 0;
  for (const g of grad.data) s += g * g;
  return Math.sqrt(s);
}

/**
 * Scales the gradient so that its global L2 norm is at most `maxNorm`, as
 * `torch.nn.utils.clip_grad_norm_` (coefficient maxNorm/(norm + 1e-6), only when below 1).
 * Returns the norm before clipping.
 */
export function clipGradNorm(grad: LlamaParams, maxNorm: number): number {
  if (!(maxNorm > 0)) throw new RangeError(`Clipping norm ${maxNorm} is not positive`);
  const norm = gradNorm(grad), coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    const d = grad.data, c = Math.fround(coef);
    for (let i = 0; i < d.length; i++) d[i] = d[i]! * c;
  }
  return norm;
}

/**
 * Throws a {@linkcode NumericalError} naming the step, the tensor and the element when the
 * gradient holds NaN or ±Inf (call before the update: a bad gradient never reaches the weights).
 */
export function checkFinite(grad: LlamaParams, step: number): void {
  const bad = grad.firstNonFinite();
  if (bad) {
    throw new NumericalError(
      `Step ${step}: the gradient of '${bad.name}' is ${bad.value} at element ${bad.index}; the update was not applied`,
    );
  }
}
