/**
 * The training loop's step: micro-batches from a seeded sampler, gradient accumulation, a finite
 * check, global-norm clipping, the warm-up + cosine learning rate and an AdamW update; held-out
 * evaluation; checkpoints that resume exactly.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import type { Backend } from "../kernels/mod.ts";
import { selectBackend } from "../kernels/mod.ts";
import { batchLoss, lossAndGrad } from "./backward.ts";
import { type Checkpoint, saveCheckpoint, type SaveTrainedModelOptions } from "./checkpoint.ts";
import { countTargets, type SamplerState, type TokenBatch, WindowSampler } from "./data.ts";
import { AdamW, checkFinite, clipGradNorm, gradNorm } from "./optimizer.ts";
import type { LlamaParams } from "./params.ts";
import { learningRate } from "./schedule.ts";

/** Hyperparameters of a run (all saved in its checkpoints). */
export interface TrainerOptions {
  /** Sequences per micro-batch. */
  microBatch: number;
  /** Micro-batches per optimiser step (gradient accumulation). */
  accumulate: number;
  /** Steps of the whole run (the end of the cosine schedule). */
  steps: number;
  /** Peak learning rate. */
  lr: number;
  /** Final learning rate. */
  minLr: number;
  /** Linear warm-up steps. */
  warmup: number;
  /** Global gradient-norm clipping (0: off). */
  clip: number;
  /** Seed of the data order. */
  seed: number;
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** AdamW ε. */
  eps: number;
  /** Decoupled weight decay of the projections. */
  weightDecay: number;
  /** Decay RMSNorm weights and embeddings too. */
  decayAll: boolean;
}

/** One step's figures. */
export interface StepResult {
  /** The step just completed (1-based). */
  step: number;
  /** Mean training loss (nats per token) of its batch, before the update. */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Gradient norm before clipping. */
  gradNorm: number;
  /** Target tokens in the step. */
  tokens: number;
}

/** A fingerprint of the training windows, so that a resumed run refuses other data. */
function fingerprint(windows: readonly (readonly number[])[]): string {
  let h = 0x811c9dc5;
  for (const w of windows) {
    for (const t of w) h = Math.imul(h ^ t, 0x01000193);
    h = Math.imul(h ^ 0xffff, 0x01000193);
  }
  return `${windows.length}:${(h >>> 0).toString(16)}`;
}

/**
 * Trains `params` in place on `windows` (token sequences, each predicting its tokens 1..n).
 *
 * @example
 * ```ts
 * import { Trainer } from "./trainer.ts";
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const params = LlamaParams.fromModel(await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" }));
 * const windows = [[256, 72, 101, 108, 108, 111, 32, 119], [256, 98, 111, 110, 106, 111, 117, 114]];
 * const t = new Trainer(params, windows, { steps: 2, microBatch: 2, warmup: 1 }, { backend: "ts" });
 * const first = t.trainStep(), second = t.trainStep();
 * if (!(second.loss < first.loss)) throw new Error("no progress on the same batch");
 * ```
 */
export class Trainer {
  /** The parameters, updated in place. */
  readonly params: LlamaParams;
  /** The optimiser and its moments. */
  readonly optimizer: AdamW;
  /** The hyperparameters. */
  readonly options: TrainerOptions;
  /** The backend every kernel runs on. */
  readonly backend: Backend;
  /** Completed steps. */
  step = 0;
  readonly #sampler: WindowSampler;
  readonly #grad: LlamaParams;
  readonly #data: string;

  /**
   * A trainer of `params` on `windows` (or one continuing a checkpoint).
   *
   * @param params Parameters to train (in place).
   * @param windows Training sequences.
   * @param options Hyperparameters (defaults: micro-batch 8, no accumulation, lr 3e-4 to 3e-5,
   *   10 % warm-up, clip 1, seed 0, AdamW (0.9, 0.95, 1e-8), weight decay 0.1 on projections).
   * @param run Backend, and a checkpoint to continue from.
   */
  constructor(
    params: LlamaParams,
    windows: readonly (readonly number[])[],
    options: Partial<TrainerOptions> & { steps: number },
    run: { backend?: Backend; resume?: Checkpoint } = {},
  ) {
    const saved = run.resume?.state.options as TrainerOptions | undefined;
    const o: TrainerOptions = saved ?? {
      microBatch: options.microBatch ?? 8,
      accumulate: options.accumulate ?? 1,
      steps: options.steps,
      lr: options.lr ?? 3e-4,
      minLr: options.minLr ?? (options.lr ?? 3e-4) / 10,
      warmup: options.warmup ?? Math.ceil(options.steps / 10),
      clip: options.clip ?? 1,
      seed: options.seed ?? 0,
      beta1: options.beta1 ?? 0.9,
      beta2: options.beta2 ?? 0.95,
      eps: options.eps ?? 1e-8,
      weightDecay: options.weightDecay ?? 0.1,
      decayAll: options.decayAll ?? false,
    };
    if (saved) o.steps = Math.max(saved.steps, options.steps);
    for (const k of ["microBatch", "accumulate", "steps"] as const) {
      if (!Number.isInteger(o[k]) || o[k] < 1) {
        throw new RangeError(`${k} ${o[k]} is not an integer ≥ 1`);
      }
    }
    if (!Number.isInteger(o.warmup) || o.warmup < 0) {
      throw new RangeError(`warmup ${o.warmup} is not an integer ≥ 0`);
    }
    if (!(o.clip >= 0)) throw new RangeError(`clip ${o.clip} is not ≥ 0`);
    this.options = o;
    this.backend = selectBackend(run.backend);
    this.params = params;
    this.optimizer = new AdamW(params, { ...o, backend: this.backend });
    this.#grad = params.zerosLike();
    this.#data = fingerprint(windows);
    const r = run.resume;
    if (r) {
      if (r.state.data !== this.#data) {
        throw new RangeError(
          `The checkpoint in '${r.dir}' was trained on other data (${r.state.data}), not these ${windows.length} windows (${this.#data})`,
        );
      }
      params.data.set(r.params.data);
      this.optimizer.m.data.set(r.m.data);
      this.optimizer.v.data.set(r.v.data);
      this.optimizer.step = r.state.step;
      this.step = r.state.step;
    }
    this.#sampler = new WindowSampler(
      windows,
      o.seed,
      r?.state.sampler as SamplerState | undefined,
    );
  }

  /** The learning rate of step `t`. */
  learningRate(t: number): number {
    const o = this.options;
    return learningRate(t, { lr: o.lr, warmup: o.warmup, total: o.steps, minLr: o.minLr });
  }

  /**
   * One optimiser step: `accumulate` micro-batches, their gradients summed with the weight of
   * their share of the step's targets, checked finite, clipped, and applied. A NaN or ±Inf loss
   * or gradient throws a {@linkcode NumericalError} naming the step (and the tensor) and leaves
   * the parameters and moments as they were.
   */
  trainStep(): StepResult {
    const step = this.step + 1, o = this.options;
    const batches: TokenBatch[] = [];
    for (let i = 0; i < o.accumulate; i++) batches.push(this.#sampler.next(o.microBatch));
    return this.#apply(step, batches);
  }

  /** One optimiser step on given micro-batches (the sampler is not advanced). */
  trainStepOn(batches: readonly TokenBatch[]): StepResult {
    return this.#apply(this.step + 1, batches);
  }

  #apply(step: number, batches: readonly TokenBatch[]): StepResult {
    const tokens = batches.reduce((a, b) => a + countTargets(b), 0);
    if (tokens === 0) throw new RangeError(`Step ${step}: the batch has no target tokens`);
    this.#grad.data.fill(0);
    let sum = 0;
    for (const b of batches) {
      try {
        sum += lossAndGrad(this.params, b, {
          backend: this.backend,
          grad: this.#grad,
          scale: 1 / tokens,
        }).sumLoss;
      } catch (e) {
        if (!(e instanceof NumericalError)) throw e;
        throw new NumericalError(
          `Step ${step}: the loss is NaN or infinite (${e.message}); the update was not applied`,
        );
      }
    }
    const loss = sum / tokens;
    if (!Number.isFinite(loss)) {
      throw new NumericalError(`Step ${step}: the loss is ${loss}; the update was not applied`);
    }
    checkFinite(this.#grad, step);
    const norm = this.options.clip > 0
      ? clipGradNorm(this.#grad, this.options.clip)
      : gradNorm(this.#grad);
    const lr = this.learningRate(step);
    this.optimizer.update(this.params, this.#grad, lr);
    this.step = step;
    return { step, loss, lr, gradNorm: norm, tokens };
  }

  /** Mean loss (nats per target) and bits per byte (byte targets) over held-out batches. */
  evaluate(batches: readonly TokenBatch[]): { loss: number; bitsPerByte: number; tokens: number } {
    let nats = 0, tokens = 0, bytes = 0;
    for (const b of batches) {
      const r = batchLoss(this.params, b, { backend: this.backend });
      nats += r.sumLoss;
      tokens += r.tokens;
      bytes += r.byteTargets;
    }
    return { loss: nats / tokens, bitsPerByte: bytes ? nats / Math.LN2 / bytes : NaN, tokens };
  }

  /**
   * Saves a checkpoint under `root` (see {@linkcode saveCheckpoint}), with `extra` fields (e.g. a
   * script's loss history) in its trainer_state.json; returns its folder.
   */
  save(
    root: string,
    options: SaveTrainedModelOptions & { keep?: number } = {},
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    return saveCheckpoint(root, this.params, this.optimizer, {
      ...extra,
      step: this.step,
      sampler: this.#sampler.state(),
      options: this.options,
      data: this.#data,
    }, options);
  }
}
