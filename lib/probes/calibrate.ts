/**
 * Probe calibration, the authors' `calc_calibration_params` and `calibrate_logits` (evaluate.py):
 *
 * - scale = s·logit(0.75) / std(logit(p_cal)), with p_cal the probe's probabilities on the
 *   calibration split (the no-premise train split), logit with eps 1e-6 (`torch.logit`), std with
 *   n − 1, s = 1 by default: a calibrated logit of ±1 std maps to 0.25 / 0.75;
 * - sign = −1 if the accuracy on the probe's own train split is below 0.5, else +1; when the probe
 *   has a direction θ, sign = sign(⟨μ_true − μ_false, θ⟩) instead, μ over the labelled train pairs
 *   (true member: h_pos if y = 1, h_neg if y = 0);
 * - length = ‖μ_true − μ_false‖ on the train pairs (the step size of the causal intervention);
 * - calibrated p′ = σ(sign·scale·logit(p)), with the scale left out where it is not finite.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import { _checkLabels, _checkPairs, _checkProbabilities, _checkVector } from "./_check.ts";
import { _logit, _sigmoid } from "./_math.ts";
import type { ContrastPairs } from "./pairs.ts";

/** Calibration parameters of one trained probe. */
export interface Calibration {
  /** Multiplier of the logits (NaN or ∞ means: not applied). */
  scale: number;
  /** +1 or −1: flips the probe so that it agrees with the labels. */
  sign: 1 | -1;
  /** ‖μ_true − μ_false‖ on the train pairs (NaN when no train pairs were given). */
  length: number;
}

/** Inputs of {@linkcode fitCalibration}. */
export interface CalibrationInput {
  /** The probe's probabilities on the calibration split (the no-premise train split). */
  calibrationP: ArrayLike<number>;
  /** The probe's probabilities on its own train split. */
  trainP: ArrayLike<number>;
  /** Labels of the train split (0/1; NaN = unlabelled, skipped). */
  trainLabels: ArrayLike<number>;
  /** The train split's hidden states, for the length and (with `direction`) the sign. */
  trainPairs?: ContrastPairs;
  /** The probe direction θ, if the probe has one (not the LM-head baseline). */
  direction?: ArrayLike<number> | null;
  /** Extra factor s of the scale (default 1). */
  scale?: number;
}

/**
 * Fits {@linkcode Calibration} as the authors do (see the module doc).
 *
 * @example
 * ```ts
 * import { applyCalibration, fitCalibration } from "./calibrate.ts";
 * import { assertAlmostEquals, assertEquals } from "@std/assert";
 *
 * const sig = (x: number) => 1 / (1 + Math.exp(-x));
 * // calibration logits [−2, 2]: std (n − 1) = 2√2, so scale = ln 3 / (2√2)
 * const cal = fitCalibration({ calibrationP: [sig(-2), sig(2)], trainP: [0.2, 0.9], trainLabels: [0, 1] });
 * assertEquals(cal.sign, 1);
 * assertAlmostEquals(cal.scale, Math.log(3) / (2 * Math.SQRT2), 1e-9);
 * assertAlmostEquals(applyCalibration([sig(2 * Math.SQRT2)], cal)[0]!, 0.75, 1e-9);
 * ```
 */
export function fitCalibration(input: CalibrationInput): Calibration {
  const fn = "fitCalibration";
  const { calibrationP, trainP, trainLabels, trainPairs } = input;
  _checkProbabilities(fn, "calibrationP", calibrationP);
  _checkProbabilities(fn, "trainP", trainP);
  _checkLabels(fn, "trainLabels", trainLabels, trainP.length, true);
  const s = input.scale ?? 1;
  if (!Number.isFinite(s)) {
    throw new RangeError(`${fn}: option scale is ${s}, expected a finite number`);
  }
  // scale from the spread of the calibration logits
  const n = calibrationP.length, lg = Float64Array.from(calibrationP, (p) => _logit(p));
  let m = 0, ss = 0;
  for (let i = 0; i < n; i++) m += lg[i]!;
  m /= n;
  for (let i = 0; i < n; i++) ss += (lg[i]! - m) ** 2;
  const scale = (s * _logit(0.75)) / Math.sqrt(ss / (n - 1));
  // sign from the train accuracy (labelled pairs only)
  let hit = 0, labelled = 0;
  for (let i = 0; i < trainP.length; i++) {
    const y = trainLabels[i] as number;
    if (Number.isNaN(y)) continue;
    labelled++;
    if (((trainP[i] as number) > 0.5 ? 1 : 0) === y) hit++;
  }
  let sign: 1 | -1 = hit / labelled < 0.5 ? -1 : 1, length = NaN;
  if (trainPairs !== undefined) {
    _checkPairs(fn, "trainPairs", trainPairs);
    _checkLabels(fn, "trainLabels", trainLabels, trainPairs.n, true);
    const { n: tn, d, neg, pos } = trainPairs;
    const mm = new Float64Array(d);
    let count = 0;
    for (let i = 0; i < tn; i++) {
      const y = trainLabels[i] as number;
      if (Number.isNaN(y)) continue;
      count++;
      const t = y === 1 ? pos : neg, f = y === 1 ? neg : pos;
      for (let j = 0; j < d; j++) mm[j]! += t[i * d + j]! - f[i * d + j]!;
    }
    if (count === 0) {
      throw new RangeError(`${fn}: trainLabels has no labelled pair, expected at least one 0 or 1`);
    }
    let l2 = 0;
    for (let j = 0; j < d; j++) mm[j]! /= count, l2 += mm[j]! ** 2;
    length = Math.sqrt(l2);
    const dir = input.direction;
    if (dir !== undefined && dir !== null) {
      _checkVector(fn, "direction", dir, d);
      let dot = 0;
      for (let j = 0; j < d; j++) dot += mm[j]! * (dir[j] as number);
      if (dot === 0) {
        throw new NumericalError(
          `${fn}: direction is orthogonal to the train mass-mean difference, so its sign is undefined`,
        );
      }
      sign = dot > 0 ? 1 : -1;
    }
  } else if (input.direction !== undefined && input.direction !== null) {
    throw new TypeError(`${fn}: a direction was given without trainPairs to take its sign from`);
  }
  return { scale, sign, length };
}

/**
 * p′ = σ(sign·scale·logit(p)) (logit eps 1e-6; the scale is left out where not finite).
 *
 * @example
 * ```ts
 * import { applyCalibration } from "./calibrate.ts";
 * import { assertAlmostEquals } from "@std/assert";
 *
 * const [q] = applyCalibration([0.75], { scale: 2, sign: -1, length: 1 });
 * assertAlmostEquals(q!, 1 / (1 + 9), 1e-12); // σ(−2·ln 3) = 1/10
 * ```
 */
export function applyCalibration(p: ArrayLike<number>, calibration: Calibration): Float64Array {
  const fn = "applyCalibration";
  _checkProbabilities(fn, "p", p);
  const { scale, sign } = calibration;
  if (sign !== 1 && sign !== -1) {
    throw new RangeError(`${fn}: calibration.sign is ${sign}, expected 1 or −1`);
  }
  const k = Number.isFinite(scale) ? sign * scale : sign;
  return Float64Array.from(p, (v) => _sigmoid(k * _logit(v)));
}
