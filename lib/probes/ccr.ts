/**
 * CCR, contrast-consistent reflection: the authors' new unsupervised probe (`CCReflection` in
 * probe_train.py, `ccr` in evaluate.py). A unit normal z = w/‖w‖ defines the Householder
 * reflection H = I − 2zzᵀ, and the loss is mean over pairs of ‖h_pos − h_neg·H‖₂: the hyperplane
 * across which every negative state is mirrored onto its positive twin. torch's AdamW (lr 1e-3,
 * weight decay 0.01 on w), 1000 full-batch epochs, one seed (0). θ = w (the sign is arbitrary).
 * Init U(−1/√d, 1/√d) from lmkit's Rng (not torch's generator), all in f64.
 *
 * @module
 */
import { _checkCount, _checkOption, _checkPairs, _checkVector } from "./_check.ts";
import { _AdamW, _linearInit } from "./_adamw.ts";
import type { GdOptions, GdRun, LossAndGradient } from "./ccs.ts";
import type { ContrastPairs } from "./pairs.ts";

/**
 * mean_i ‖h_pos,i − H·h_neg,i‖₂ with H = I − 2zzᵀ, z = w / max(‖w‖, 1e-12), and its gradient
 * with respect to w (a zero residual contributes no gradient, as torch's norm).
 *
 * @example
 * ```ts
 * import { ccrLoss } from "./ccr.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertAlmostEquals } from "@std/assert";
 *
 * // h_pos is h_neg mirrored across the plane x₀ = 0: zero loss for w along e₀
 * const pairs = contrastPairs([[1, 2], [-3, 1]], [[-1, 2], [3, 1]]);
 * assertAlmostEquals(ccrLoss(pairs, new Float64Array([5, 0])).loss, 0, 1e-15);
 * ```
 */
export function ccrLoss(pairs: ContrastPairs, w: ArrayLike<number>): LossAndGradient {
  _checkPairs("ccrLoss", "pairs", pairs);
  _checkVector("ccrLoss", "w", w, pairs.d);
  return lossGrad(pairs, w, new Float64Array(pairs.d));
}

function lossGrad(pairs: ContrastPairs, w: ArrayLike<number>, r: Float64Array): LossAndGradient {
  const { n, d, neg, pos } = pairs;
  let wn = 0;
  for (let j = 0; j < d; j++) wn += (w[j] as number) ** 2;
  wn = Math.sqrt(wn);
  const scale = Math.max(wn, 1e-12);
  const z = Float64Array.from({ length: d }, (_, j) => (w[j] as number) / scale);
  const gz = new Float64Array(d);
  let loss = 0;
  for (let i = 0; i < n; i++) {
    const o = i * d;
    let a = 0;
    for (let j = 0; j < d; j++) a += neg[o + j]! * z[j]!;
    // r = h_pos − (h_neg − 2(h_neg·z)z)
    let rr = 0, rz = 0;
    for (let j = 0; j < d; j++) {
      const v = pos[o + j]! - (neg[o + j]! - 2 * a * z[j]!);
      r[j] = v, rr += v * v, rz += v * z[j]!;
    }
    const norm = Math.sqrt(rr);
    loss += norm;
    if (norm === 0) continue;
    // ∂‖r‖/∂z = (2/‖r‖)·[(r·z)·h_neg + (h_neg·z)·r]
    const c1 = (2 * rz) / (norm * n), c2 = (2 * a) / (norm * n);
    for (let j = 0; j < d; j++) gz[j]! += c1 * neg[o + j]! + c2 * r[j]!;
  }
  // through z = w/‖w‖: (I − zzᵀ)/‖w‖ (F.normalize clamps ‖w‖ at 1e-12, where it is the identity / eps)
  const grad = new Float64Array(d);
  if (wn > 1e-12) {
    let zg = 0;
    for (let j = 0; j < d; j++) zg += z[j]! * gz[j]!;
    for (let j = 0; j < d; j++) grad[j] = (gz[j]! - zg * z[j]!) / wn;
  } else {
    for (let j = 0; j < d; j++) grad[j] = gz[j]! / 1e-12;
  }
  return { loss: loss / n, grad };
}

/**
 * One CCR run from the initial weights `init` (copied): `epochs` full-batch AdamW steps on
 * {@linkcode ccrLoss}.
 *
 * @example
 * ```ts
 * import { ccrLoss, trainCcr } from "./ccr.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assert } from "@std/assert";
 *
 * const pairs = contrastPairs([[1, 2], [-3, 1], [2, -1]], [[-1, 2], [3, 1], [-2, -1]]);
 * const init = new Float64Array([0.3, 0.6]);
 * const run = trainCcr(pairs, init, { epochs: 300, lr: 0.01 });
 * assert(run.trainLoss < ccrLoss(pairs, init).loss);
 * assert(Math.abs(run.direction[0]!) > 5 * Math.abs(run.direction[1]!));
 * ```
 */
export function trainCcr(
  pairs: ContrastPairs,
  init: ArrayLike<number>,
  options: GdOptions = {},
): GdRun {
  const fn = "trainCcr";
  _checkPairs(fn, "pairs", pairs);
  _checkVector(fn, "init", init, pairs.d);
  return run(fn, pairs, Float64Array.from(init), options);
}

function run(fn: string, pairs: ContrastPairs, w: Float64Array, o: GdOptions): GdRun {
  const epochs = o.epochs ?? 1000, lr = o.lr ?? 1e-3, weightDecay = o.weightDecay ?? 0.01;
  _checkCount(fn, "option epochs", epochs);
  _checkOption(fn, "lr", lr);
  _checkOption(fn, "weightDecay", weightDecay, false);
  const opt = new _AdamW(pairs.d, lr, weightDecay), r = new Float64Array(pairs.d);
  let loss = NaN;
  for (let e = 0; e < epochs; e++) {
    const lg = lossGrad(pairs, w, r);
    loss = lg.loss;
    opt.step(w, lg.grad);
  }
  return { direction: w, trainLoss: loss };
}

/** Options of {@linkcode ccrProbe}. */
export interface CcrOptions extends GdOptions {
  /** Seed of the initial weights (default 0, the authors' seed). */
  seed?: number;
}

/**
 * The authors' CCR probe: {@linkcode trainCcr} from U(−1/√d, 1/√d) drawn with `new Rng(seed)`.
 *
 * @example
 * ```ts
 * import { ccrProbe } from "./ccr.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assert } from "@std/assert";
 *
 * const pairs = contrastPairs([[1, 2], [-3, 1], [2, -1]], [[-1, 2], [3, 1], [-2, -1]]);
 * const { direction } = ccrProbe(pairs, { epochs: 300, lr: 0.01 });
 * assert(Math.abs(direction[0]!) > 5 * Math.abs(direction[1]!));
 * ```
 */
export function ccrProbe(pairs: ContrastPairs, options: CcrOptions = {}): GdRun {
  const fn = "ccrProbe";
  _checkPairs(fn, "pairs", pairs);
  const seed = options.seed ?? 0;
  if (!Number.isInteger(seed)) {
    throw new RangeError(`${fn}: option seed is ${seed}, expected an integer`);
  }
  return run(fn, pairs, _linearInit(pairs.d, seed), options);
}
