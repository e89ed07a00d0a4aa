/**
 * The training loop's step: micro-batches from a seeded sampler, gradient accumulation, a finite
 * check, global-norm clipping, the warm-up + cosine learning rate and an AdamW update; held-out
 * evaluation; checkpoints that resume exactly; data-parallel training over the ranks of a
 * {@linkcode Communicator} (PyTorch DDP's scheme: see {@linkcode Trainer}).
 *
 * @module
 */
import { type Communicator, createCommunicator } from "../comm/communicator.ts";
import { NumericalError, quoteValue } from "../core/errors.ts";
import type { Backend } from "../kernels/mod.ts";
import { selectBackend } from "../kernels/mod.ts";
import { batchLoss, lossAndGrad } from "./backward.ts";
import { type Checkpoint, saveCheckpoint, type SaveTrainedModelOptions } from "./checkpoint.ts";
import { countTargets, type SamplerState, type TokenBatch, WindowSampler } from "./data.ts";
import { broadcastFromRoot, BucketReducer, checkReplicas, type ReduceTiming } from "./ddp.ts";
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
  /** Data-parallel ranks (each trains on microBatch sequences per micro-batch). */
  ranks: number;
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
  /** Target tokens in the step (over every rank). */
  tokens: number;
  /**
   * Seconds the step waited for the gradient's all-reduce after its backward (0 on one rank):
   * with {@linkcode Trainer.trainStepAsync} the part of the exchange the backward did not hide.
   */
  waitSeconds: number;
  /**
   * Bytes of gradient this rank handed to the communicator (an all-reduce's buffer counts once;
   * a compressed exchange counts its messages): 0 on one rank.
   */
  sentBytes: number;
}

/**
 * A replacement for the bucketed all-reduce of the gradient: sums this rank's gradient (already
 * scaled) over the ranks in place, after the backward, e.g. compressed (lib/train/compressed.ts).
 * Every rank calls it once per step, with the same step.
 */
export interface GradientExchange {
  /** Sums `grad` over the ranks in place; resolves to the bytes this rank sent. */
  reduce(grad: LlamaParams, step: number): Promise<number>;
}

/** How a {@linkcode Trainer} runs. */
export interface TrainerRun {
  /** The backend every kernel runs on (default: the best available). */
  backend?: Backend;
  /** A checkpoint to continue from. */
  resume?: Checkpoint;
  /**
   * The ranks of a data-parallel run (default: a world of one). Every rank builds its trainer
   * with the same windows and options; rank 0's weights (and moments) are sent to the others.
   */
  comm?: Communicator;
  /** Gradient bucket size in bytes for the all-reduce (default 25 MiB, as PyTorch DDP). */
  bucketBytes?: number;
  /**
   * Exchange the gradient this way instead of the bucketed all-reduce (after the backward, no
   * overlap; {@linkcode Trainer.trainStepAsync} only).
   */
  exchange?: GradientExchange;
}

/** A fingerprint of the training windows, so that a resumed run refuses other data. */
export function windowsFingerprint(windows: readonly (readonly number[])[]): string {
  let h = 0x811c9dc5;
  for (const w of windows) {
    for (const t of w) h = Math.imul(h ^ t, 0x01000193);
    h = Math.imul(h ^ 0xffff, 0x01000193);
  }
  return `${windows.length}:${(h >>> 0).toString(16)}`;
}

/**
 * A run's hyperparameters: `options` with the defaults filled in (see {@linkcode Trainer}), or
 * those of the checkpoint `resume` (its steps extended to `options.steps`), checked; `ranks` is
 * the number of data-parallel ranks, which a checkpoint must have been trained on.
 */
export function resolveTrainerOptions(
  options: Partial<Omit<TrainerOptions, "ranks">> & { steps: number },
  ranks: number,
  resume?: Checkpoint,
): TrainerOptions {
  const saved = resume?.state.options as TrainerOptions | undefined;
  if (saved && (saved.ranks ?? 1) !== ranks) {
    throw new RangeError(
      `The checkpoint in '${
        resume!.dir
      }' was trained on ${(saved.ranks ?? 1)} rank(s); resume it on as many (mpirun -np ${
        saved.ranks ?? 1
      }), not ${ranks}, so that it sees the same batches`,
    );
  }
  const o: TrainerOptions = saved ? { ...saved } : {
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
    ranks,
  };
  if (saved) o.steps = Math.max(saved.steps, options.steps);
  o.ranks = ranks; // checkpoints from before data parallelism have no ranks: 1
  for (const k of ["microBatch", "accumulate", "steps"] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) {
      throw new RangeError(`${k} ${quoteValue(o[k])} is not an integer ≥ 1`);
    }
  }
  if (!Number.isInteger(o.warmup) || o.warmup < 0) {
    throw new RangeError(`warmup ${quoteValue(o.warmup)} is not an integer ≥ 0`);
  }
  if (!(o.clip >= 0)) throw new RangeError(`clip ${quoteValue(o.clip)} is not ≥ 0`);
  for (const k of ["beta1", "beta2", "eps", "weightDecay"] as const) {
    const x = o[k];
    if (!Number.isFinite(x) || x < 0 || (k.startsWith("beta") && x >= 1)) {
      throw new RangeError(`AdamW ${k} ${quoteValue(x)} is out of range`);
    }
  }
  return o;
}

/**
 * Trains `params` in place on `windows` (token sequences, each predicting its tokens 1..n).
 *
 * Data-parallel (with a communicator of N ranks): every rank draws the same windows in the same
 * order and trains on its own share of each micro-batch (microBatch of the microBatch × N
 * drawn); the gradient, scaled by 1/(the targets of every rank), is summed over the ranks in
 * buckets of whole tensors, each started when the backward has finished its tensors, so that
 * communication overlaps the rest of the backward ({@linkcode Trainer.trainStepAsync}); every
 * rank then applies the same update. N ranks × microBatch B train as one process with
 * microBatch N·B, to rounding. Rank 0 writes the checkpoints; {@linkcode Trainer.checkReplicas}
 * proves the ranks' weights equal.
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
  /** The ranks (a world of one unless given). */
  readonly comm: Communicator;
  readonly #reducer: BucketReducer | undefined;
  readonly #exchange: GradientExchange | undefined;
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
   * @param run Backend, a checkpoint to continue from, the ranks of a data-parallel run.
   */
  constructor(
    params: LlamaParams,
    windows: readonly (readonly number[])[],
    options: Partial<Omit<TrainerOptions, "ranks">> & { steps: number },
    run: TrainerRun = {},
  ) {
    const comm = run.comm ?? createCommunicator("single");
    const o = resolveTrainerOptions(options, comm.size, run.resume);
    this.options = o;
    this.backend = selectBackend(run.backend);
    this.params = params;
    this.optimizer = new AdamW(params, { ...o, backend: this.backend });
    this.#grad = params.zerosLike();
    this.#data = windowsFingerprint(windows);
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
    this.comm = comm;
    this.#exchange = run.exchange;
    if (comm.size > 1) {
      const m = this.optimizer.m.data, v = this.optimizer.v.data;
      broadcastFromRoot(comm, r ? [params.data, m, v] : [params.data]);
      this.#reducer = new BucketReducer(comm, this.#grad, run.bucketBytes);
      this.checkReplicas("at the start");
    }
  }

  /**
   * Throws unless every rank's weights and moments are bit for bit the same (a hash of each,
   * gathered; blocking); returns the hash. `what` says when, for the message.
   */
  checkReplicas(what = `after step ${this.step}`): string {
    return checkReplicas(
      this.comm,
      [this.params.data, this.optimizer.m.data, this.optimizer.v.data],
      what,
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
    return this.trainStepOn(this.#draw());
  }

  /**
   * {@linkcode Trainer.trainStep} with the gradient's all-reduce overlapped with the backward:
   * each bucket is summed over the ranks off the JavaScript thread as soon as the backward of
   * the last micro-batch has finished its tensors (on one rank, the same as trainStep). Same
   * result as trainStep, bit for bit.
   */
  async trainStepAsync(): Promise<StepResult> {
    return await this.trainStepOnAsync(this.#draw());
  }

  /**
   * One optimiser step on given micro-batches (the sampler is not advanced); data-parallel, this
   * rank's share. With several ranks the buckets are summed after the backward (blocking).
   */
  trainStepOn(batches: readonly TokenBatch[]): StepResult {
    if (this.#exchange) {
      throw new RangeError("A trainer with a gradient exchange steps with trainStepOnAsync");
    }
    const step = this.step + 1, tokens = this.#tokens(step, batches);
    const r = this.#backward(step, batches, tokens, false);
    return this.#finish(step, r, tokens, this.#reducer?.reduceSync() ?? { waitSeconds: 0 });
  }

  /** {@linkcode Trainer.trainStepOn} with the all-reduce overlapped (see trainStepAsync). */
  async trainStepOnAsync(batches: readonly TokenBatch[]): Promise<StepResult> {
    const step = this.step + 1, tokens = this.#tokens(step, batches);
    const exchange = this.#exchange;
    const r = this.#backward(step, batches, tokens, !exchange);
    if (!exchange) {
      return this.#finish(step, r, tokens, await this.#reducer?.wait() ?? { waitSeconds: 0 });
    }
    // a rank whose loss was NaN still takes part, with a zero gradient (the step fails on all)
    if (r.failure !== undefined) this.#grad.data.fill(0);
    const t = performance.now(), sent = await exchange.reduce(this.#grad, step);
    return this.#finish(step, r, tokens, { waitSeconds: (performance.now() - t) / 1000 }, sent);
  }

  /** This rank's micro-batches of the next step. */
  #draw(): TokenBatch[] {
    return this.#sampler.nextStep(this.options, this.comm.rank, this.comm.size);
  }

  /** The step's targets over every rank. */
  #tokens(step: number, batches: readonly TokenBatch[]): number {
    const n = new Float64Array([batches.reduce((a, b) => a + countTargets(b), 0)]);
    if (this.#reducer) this.comm.allReduceSync(n);
    if (n[0] === 0) throw new RangeError(`Step ${step}: the batch has no target tokens`);
    return n[0]!;
  }

  /**
   * The gradient of the step's micro-batches into #grad, scaled by 1/tokens; with several ranks
   * a NaN loss is carried (not thrown) so that this rank still joins the all-reduces.
   */
  #backward(
    step: number,
    batches: readonly TokenBatch[],
    tokens: number,
    overlap: boolean,
  ): { sum: number; failure?: string } {
    const reducer = this.#reducer;
    this.#grad.data.fill(0);
    reducer?.begin();
    let sum = 0;
    for (let i = 0; i < batches.length; i++) {
      const b = batches[i]!;
      if (countTargets(b) === 0) continue; // a rank's share may have none
      try {
        sum += lossAndGrad(this.params, b, {
          backend: this.backend,
          grad: this.#grad,
          scale: 1 / tokens,
          ...(overlap && reducer && i === batches.length - 1
            ? { onGradsReady: (names: readonly string[]) => reducer.ready(names) }
            : {}),
        }).sumLoss;
      } catch (e) {
        if (!(e instanceof NumericalError)) throw e;
        if (!reducer) {
          throw new NumericalError(
            `Step ${step}: the loss is NaN or infinite (${e.message}); the update was not applied`,
          );
        }
        return { sum: NaN, failure: e.message };
      }
    }
    return { sum };
  }

  #finish(
    step: number,
    r: { sum: number; failure?: string },
    tokens: number,
    timing: ReduceTiming,
    sent = this.#reducer ? this.#grad.data.byteLength : 0,
  ): StepResult {
    let sum = r.sum;
    if (this.#reducer) {
      const s = new Float64Array([sum]);
      this.comm.allReduceSync(s);
      sum = s[0]!;
    }
    const loss = sum / tokens;
    if (!Number.isFinite(loss)) {
      const where = r.failure === undefined
        ? this.#reducer && Number.isFinite(r.sum) ? " on another rank" : ""
        : ` on rank ${this.comm.rank} (${r.failure})`;
      throw new NumericalError(
        `Step ${step}: the loss is ${loss}${where}; the update was not applied`,
      );
    }
    checkFinite(this.#grad, step);
    const norm = this.options.clip > 0
      ? clipGradNorm(this.#grad, this.options.clip)
      : gradNorm(this.#grad);
    const lr = this.learningRate(step);
    this.optimizer.update(this.params, this.#grad, lr);
    this.step = step;
    return {
      step,
      loss,
      lr,
      gradNorm: norm,
      tokens,
      waitSeconds: timing.waitSeconds,
      sentBytes: sent,
    };
  }

  /**
   * Mean loss (nats per target) and bits per byte (byte targets) over held-out batches;
   * data-parallel, every rank passes the same batches and evaluates every N-th (blocking).
   */
  evaluate(batches: readonly TokenBatch[]): { loss: number; bitsPerByte: number; tokens: number } {
    const sums = new Float64Array(3), { rank, size } = this.comm;
    batches.forEach((b, i) => {
      if (i % size !== rank) return;
      const r = batchLoss(this.params, b, { backend: this.backend });
      sums[0]! += r.sumLoss;
      sums[1]! += r.tokens;
      sums[2]! += r.byteTargets;
    });
    if (this.#reducer) this.comm.allReduceSync(sums);
    const [nats, tokens, bytes] = sums as unknown as [number, number, number];
    return { loss: nats / tokens, bitsPerByte: bytes ? nats / Math.LN2 / bytes : NaN, tokens };
  }

  /**
   * Saves a checkpoint under `root` (see {@linkcode saveCheckpoint}), with `extra` fields (e.g. a
   * script's loss history) in its trainer_state.json; returns its folder. Data-parallel: on rank
   * 0 only (the ranks' states are equal: {@linkcode Trainer.checkReplicas}).
   */
  save(
    root: string,
    options: SaveTrainedModelOptions & { keep?: number } = {},
    extra: Record<string, unknown> = {},
  ): Promise<string> {
    if (this.comm.rank !== 0) {
      throw new RangeError(`Rank ${this.comm.rank} asked to save a checkpoint: only rank 0 writes`);
    }
    return saveCheckpoint(root, this.params, this.optimizer, {
      ...extra,
      step: this.step,
      sampler: this.#sampler.state(),
      options: this.options,
      data: this.#data,
    }, options);
  }
}
