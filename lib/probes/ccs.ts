/**
 * CCS, contrast-consistent search (Burns et al.), as the authors' `CCS` trainer (probe_train.py)
 * and `ccs_gd` probe (evaluate.py) define it: a linear probe without bias, p₀ = σ(h_neg·w),
 * p₁ = σ(h_pos·w), loss = mean(min(p₀, p₁)²) + mean((p₀ − (1 − p₁))²) (the "min_sq" informative
 * term plus the consistency term), torch's AdamW (lr 1e-3, weight decay 0.01, betas 0.9/0.999,
 * eps 1e-8), 1000 full-batch epochs; trained from 10 seeds and the run with the lowest final train
 * loss is kept (their `select_best`). θ = w. Unlabelled: the sign is arbitrary.
 *
 * The initial weights are `torch.nn.Linear`'s U(−1/√d, 1/√d), drawn from lmkit's seeded Rng (not
 * torch's generator, so the runs are not the authors' bit for bit); everything runs in f64.
 *
 * @module
 */
import { _checkCount, _checkOption, _checkPairs, _checkVector } from "./_check.ts";
import { _AdamW, _linearInit } from "./_adamw.ts";
import { _addMatTvec, _matvec, _sigmoid } from "./_math.ts";
import type { ContrastPairs } from "./pairs.ts";

/** Loss and gradient of a probe objective at one weight vector. */
export interface LossAndGradient {
  /** The loss. */
  loss: number;
  /** Its gradient with respect to the weights (length d). */
  grad: Float64Array;
}

/** Options of the gradient-trained probes ({@linkcode trainCcs}, {@linkcode ccsProbe}, CCR). */
export interface GdOptions {
  /** Full-batch epochs (default 1000). */
  epochs?: number;
  /** AdamW learning rate (default 1e-3). */
  lr?: number;
  /** AdamW decoupled weight decay (default 0.01). */
  weightDecay?: number;
}

/** Result of one gradient-trained probe run. */
export interface GdRun {
  /** The trained weights, the probe direction θ. */
  direction: Float64Array;
  /** The loss of the last epoch, computed before its update (what the authors' trainer returns). */
  trainLoss: number;
}

/**
 * The CCS loss mean(min(p₀, p₁)²) + mean((p₀ − (1 − p₁))²) and its gradient at w, with
 * p₀ = σ(h_neg·w), p₁ = σ(h_pos·w); at ties p₀ = p₁ the min's gradient is split in half, as torch's.
 *
 * @example
 * ```ts
 * import { ccsLoss } from "./ccs.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertAlmostEquals } from "@std/assert";
 *
 * // w = 0: p₀ = p₁ = 0.5, loss = 0.25 + 0
 * const { loss } = ccsLoss(contrastPairs([[1, 2]], [[3, 4]]), new Float64Array(2));
 * assertAlmostEquals(loss, 0.25, 1e-15);
 * ```
 */
export function ccsLoss(pairs: ContrastPairs, w: ArrayLike<number>): LossAndGradient {
  _checkPairs("ccsLoss", "pairs", pairs);
  _checkVector("ccsLoss", "w", w, pairs.d);
  return lossGrad(pairs, w, new Float64Array(pairs.n), new Float64Array(pairs.n));
}

function lossGrad(
  pairs: ContrastPairs,
  w: ArrayLike<number>,
  a: Float64Array,
  b: Float64Array,
): LossAndGradient {
  const { n, d, neg, pos } = pairs;
  _matvec(neg, n, d, w, a);
  _matvec(pos, n, d, w, b);
  let informative = 0, consistent = 0;
  for (let i = 0; i < n; i++) {
    const p0 = _sigmoid(a[i]!), p1 = _sigmoid(b[i]!);
    const mn = Math.min(p0, p1), c = p0 - (1 - p1);
    informative += mn * mn;
    consistent += c * c;
    // d/dp of the two terms, then through σ' = p(1 − p)
    const g0 = (p0 < p1 ? 2 * mn : p0 === p1 ? mn : 0) + 2 * c;
    const g1 = (p1 < p0 ? 2 * mn : p0 === p1 ? mn : 0) + 2 * c;
    a[i] = (g0 * p0 * (1 - p0)) / n;
    b[i] = (g1 * p1 * (1 - p1)) / n;
  }
  const grad = new Float64Array(d);
  _addMatTvec(neg, n, d, a, grad);
  _addMatTvec(pos, n, d, b, grad);
  return { loss: informative / n + consistent / n, grad };
}

function gdOptions(fn: string, o: GdOptions): Required<GdOptions> {
  const epochs = o.epochs ?? 1000, lr = o.lr ?? 1e-3, weightDecay = o.weightDecay ?? 0.01;
  _checkCount(fn, "option epochs", epochs);
  _checkOption(fn, "lr", lr);
  _checkOption(fn, "weightDecay", weightDecay, false);
  return { epochs, lr, weightDecay };
}

/**
 * One CCS run from the initial weights `init` (copied): `epochs` full-batch AdamW steps on
 * {@linkcode ccsLoss}.
 *
 * @example
 * ```ts
 * import { ccsLoss, trainCcs } from "./ccs.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assert } from "@std/assert";
 *
 * const pairs = contrastPairs([[-2, 0.1], [2, 0], [-1, -0.2]], [[2, 0], [-2, 0.1], [1, 0.1]]);
 * const init = new Float64Array([0.1, 0.1]);
 * const run = trainCcs(pairs, init, { epochs: 200, lr: 0.01 });
 * assert(run.trainLoss < ccsLoss(pairs, init).loss);
 * ```
 */
export function trainCcs(
  pairs: ContrastPairs,
  init: ArrayLike<number>,
  options: GdOptions = {},
): GdRun {
  const fn = "trainCcs";
  _checkPairs(fn, "pairs", pairs);
  _checkVector(fn, "init", init, pairs.d);
  return run(pairs, Float64Array.from(init), gdOptions(fn, options));
}

function run(pairs: ContrastPairs, w: Float64Array, o: Required<GdOptions>): GdRun {
  const opt = new _AdamW(pairs.d, o.lr, o.weightDecay);
  const a = new Float64Array(pairs.n), b = new Float64Array(pairs.n);
  let loss = NaN;
  for (let e = 0; e < o.epochs; e++) {
    const lg = lossGrad(pairs, w, a, b);
    loss = lg.loss;
    opt.step(w, lg.grad);
  }
  return { direction: w, trainLoss: loss };
}

/** Options of {@linkcode ccsProbe}. */
export interface CcsOptions extends GdOptions {
  /** Seeds of the runs (default 0 … 9, the authors' CCS_SEEDS). */
  seeds?: readonly number[];
}

/** The best of several CCS runs. */
export interface CcsResult extends GdRun {
  /** Seed of the kept run. */
  seed: number;
  /** Final train loss of every run, in `seeds` order. */
  losses: number[];
}

/**
 * CCS trained from every seed (init U(−1/√d, 1/√d) from `new Rng(seed)`); keeps the run with the
 * lowest final train loss (the first such on ties).
 *
 * @example
 * ```ts
 * import { ccsProbe } from "./ccs.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const pairs = contrastPairs([[-2, 0.1], [2, 0], [-1, -0.2]], [[2, 0], [-2, 0.1], [1, 0.1]]);
 * const best = ccsProbe(pairs, { seeds: [0, 1, 2], epochs: 50 });
 * assertEquals(best.trainLoss, Math.min(...best.losses));
 * ```
 */
export function ccsProbe(pairs: ContrastPairs, options: CcsOptions = {}): CcsResult {
  const fn = "ccsProbe";
  _checkPairs(fn, "pairs", pairs);
  const o = gdOptions(fn, options);
  const seeds = options.seeds ?? [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  if (seeds.length === 0) {
    throw new RangeError(`${fn}: option seeds is empty, expected at least one seed`);
  }
  let best: CcsResult | undefined;
  const losses: number[] = [];
  for (const seed of seeds) {
    if (!Number.isInteger(seed)) throw new RangeError(`${fn}: seed ${seed} is not an integer`);
    const r = run(pairs, _linearInit(pairs.d, seed), o);
    losses.push(r.trainLoss);
    if (best === undefined || r.trainLoss < best.trainLoss) best = { ...r, seed, losses };
  }
  return best!;
}
