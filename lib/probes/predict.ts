/**
 * From a probe direction to probabilities and accuracy, as the authors' `BeliefProbe.eval`
 * (evaluate.py) defines them: θ̂ = θ / max(‖θ‖, 1e-12) (`F.normalize`),
 * p = (σ(h_pos·θ̂) + 1 − σ(h_neg·θ̂)) / 2, accuracy = mean((p > 0.5) == y).
 *
 * @module
 */
import { _checkLabels, _checkPairs, _checkProbabilities, _checkVector } from "./_check.ts";
import { _dot, _norm, _sigmoid } from "./_math.ts";
import type { ContrastPairs } from "./pairs.ts";

/**
 * p_i = (σ(h_pos,i·θ̂) + 1 − σ(h_neg,i·θ̂)) / 2 with θ̂ = θ / max(‖θ‖, 1e-12): the probability that
 * statement i is true according to the direction θ (no bias term; 0.5 for θ = 0).
 *
 * @example
 * ```ts
 * import { probeProbabilities } from "./predict.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertAlmostEquals } from "@std/assert";
 *
 * const pairs = contrastPairs([[-1, 0]], [[1, 0]]);
 * const [p] = probeProbabilities(new Float64Array([2, 0]), pairs);
 * const s = 1 / (1 + Math.exp(-1));
 * assertAlmostEquals(p!, (s + 1 - (1 - s)) / 2, 1e-15);
 * ```
 */
export function probeProbabilities(
  direction: ArrayLike<number>,
  pairs: ContrastPairs,
): Float64Array {
  const fn = "probeProbabilities";
  _checkPairs(fn, "pairs", pairs);
  _checkVector(fn, "direction", direction, pairs.d);
  const { n, d, neg, pos } = pairs;
  const norm = Math.max(_norm(direction), 1e-12);
  const theta = Float64Array.from(direction, (v) => v / norm);
  const p = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const sPos = _sigmoid(_dot(theta, pos.subarray(i * d, (i + 1) * d)));
    const sNeg = _sigmoid(_dot(theta, neg.subarray(i * d, (i + 1) * d)));
    p[i] = (sPos + (1 - sNeg)) / 2;
  }
  return p;
}

/**
 * mean((p_i > 0.5) == y_i) over all pairs (labels 0/1).
 *
 * @example
 * ```ts
 * import { accuracy } from "./predict.ts";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(accuracy([0.9, 0.5, 0.2, 0.7], [1, 1, 0, 0]), 0.5);
 * ```
 */
export function accuracy(p: ArrayLike<number>, labels: ArrayLike<number>): number {
  const fn = "accuracy";
  _checkProbabilities(fn, "p", p);
  _checkLabels(fn, "labels", labels, p.length);
  let hit = 0;
  for (let i = 0; i < p.length; i++) if (((p[i] as number) > 0.5 ? 1 : 0) === labels[i]) hit++;
  return hit / p.length;
}
