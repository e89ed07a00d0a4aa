/**
 * The LM-head baseline (the authors' `LMHeadBaseline`, evaluate.py): no hidden states, only the
 * model's own logits for the two answers. With s₊, s₋ the logits of the positive and the negative
 * answer (the authors take the logit at the answer token, averaged over its tokens):
 *
 * - `calibrate` (their setting): s₋ ← s₋ − median(s₋ − s₊), so that half of the items lean each way;
 * - Δ = s₊ − s₋, p = 0.5 + 0.5·Δ / max(−min Δ, max Δ);
 * - accuracy = mean((s₊ > s₋) == y).
 *
 * The shift and the scale come from the array given (the authors apply it to each split on its
 * own). The result then goes through {@linkcode fitCalibration} with no direction, as theirs.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import { _checkLabels, _checkVector } from "./_check.ts";

/** Options of {@linkcode lmHeadBaseline}. */
export interface LmHeadOptions {
  /** Subtract the median of s₋ − s₊ from s₋ first (default true, the authors' setting). */
  calibrate?: boolean;
}

/** Probabilities of the LM-head baseline (and accuracy where labels were given). */
export interface LmHeadResult {
  /** p = 0.5 + 0.5·Δ / max|Δ| per item. */
  p: Float64Array;
  /** mean((s₊ > s₋) == y), NaN without labels. */
  accuracy: number;
}

function median(v: Float64Array): number {
  const s = Float64Array.from(v).sort(), n = s.length, h = n >> 1;
  return n % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

/**
 * The LM-head baseline from the answer logits (see the module doc).
 *
 * @example
 * ```ts
 * import { lmHeadBaseline } from "./lm_head.ts";
 * import { assertEquals } from "@std/assert";
 *
 * // s₋ − s₊ = [−1, 1, −3]; median −1 → s₋ = [1, 3, 0]; Δ = s₊ − s₋ = [0, −2, 2]; max|Δ| = 2
 * const r = lmHeadBaseline([0, 2, -1], [1, 1, 2], [1, 0, 1]);
 * assertEquals(Array.from(r.p), [0.5, 0, 1]);
 * assertEquals(r.accuracy, 2 / 3); // s₊ > s₋ = [no, no, yes] against y = [1, 0, 1]
 * ```
 */
export function lmHeadBaseline(
  logitNeg: ArrayLike<number>,
  logitPos: ArrayLike<number>,
  labels?: ArrayLike<number>,
  options: LmHeadOptions = {},
): LmHeadResult {
  const fn = "lmHeadBaseline";
  _checkVector(fn, "logitNeg", logitNeg);
  _checkVector(fn, "logitPos", logitPos, logitNeg.length);
  const n = logitNeg.length;
  if (labels !== undefined) _checkLabels(fn, "labels", labels, n);
  const neg = Float64Array.from(logitNeg), pos = Float64Array.from(logitPos);
  if (options.calibrate ?? true) {
    const m = median(neg.map((v, i) => v - pos[i]!));
    for (let i = 0; i < n; i++) neg[i]! -= m;
  }
  let hit = 0, lo = Infinity, hi = -Infinity;
  const delta = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    delta[i] = pos[i]! - neg[i]!;
    lo = Math.min(lo, delta[i]!), hi = Math.max(hi, delta[i]!);
    if (labels !== undefined && (pos[i]! > neg[i]! ? 1 : 0) === labels[i]) hit++;
  }
  const f = Math.max(-lo, hi);
  if (!(f > 0)) {
    throw new NumericalError(
      `${fn}: every logit difference is 0${
        options.calibrate ?? true ? " after the median shift" : ""
      }, so p = 0.5 + 0.5·Δ/max|Δ| is undefined`,
    );
  }
  return {
    p: delta.map((v) => 0.5 + (0.5 * v) / f),
    accuracy: labels === undefined ? NaN : hit / n,
  };
}
