/**
 * Probe training groups. The authors train every probe on one data variant and evaluate it on all
 * of them, and report the metrics per training group: `no-prem` (trained on the statements without
 * premise), `pos-prem` (on the original asserted premise), `same` (unsupervised probes trained on
 * the variant they are evaluated on) and `combined` (a mix of variants, built by their
 * `CombineTrainData` step from each variant's train split, config/common.libsonnet):
 *
 * | variant | pairs | labels kept |
 * |---|---|---|
 * | original_pos_prem | 250 | yes |
 * | original_neg_prem | 250 | no |
 * | shuffle_pos_prem, shuffle_neg_prem, random_pos_prem, random_neg_prem | 75 each | yes |
 * | no_prem | 200 | yes |
 *
 * Each part takes the first `count` pairs of a random permutation of its train split. Unlabelled
 * pairs get the label NaN here. (The authors write `torch.full(…, nan, dtype=torch.bool)`, which
 * is all True; their code then uses those labels only in the calibration's sign and length.)
 *
 * @module
 */
import { Rng } from "../core/rng.ts";
import { _checkLabels, _checkPairs } from "./_check.ts";
import type { ContrastPairs } from "./pairs.ts";
import { ShapeError } from "../core/errors.ts";

/** The training groups of the authors' analysis. */
export type TrainingGroup = "no-prem" | "pos-prem" | "same" | "combined";

/** One ingredient of the combined training set. */
export interface CombinedPart {
  /** Variant name (informative). */
  variant: string;
  /** Pairs drawn from the variant's train split. */
  count: number;
  /** Whether its labels are kept (else NaN). */
  supervised: boolean;
}

/** The authors' recipe of the `combined` training group (1,000 pairs). */
export const COMBINED_RECIPE: readonly CombinedPart[] = Object.freeze([
  { variant: "original_pos_prem", count: 250, supervised: true },
  { variant: "original_neg_prem", count: 250, supervised: false },
  { variant: "shuffle_pos_prem", count: 75, supervised: true },
  { variant: "shuffle_neg_prem", count: 75, supervised: true },
  { variant: "random_pos_prem", count: 75, supervised: true },
  { variant: "random_neg_prem", count: 75, supervised: true },
  { variant: "no_prem", count: 200, supervised: true },
]);

/** A variant's train split with what to draw from it. */
export interface TrainSplit extends CombinedPart {
  /** The split's hidden states. */
  pairs: ContrastPairs;
  /** Its 0/1 labels. */
  labels: ArrayLike<number>;
}

/**
 * Concatenates `count` randomly chosen pairs of each split (in the order given; a seeded lmkit Rng
 * permutes each split, not torch's `randperm`), labels NaN for the unsupervised parts.
 *
 * @example
 * ```ts
 * import { combineTrainSets } from "./groups.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const a = contrastPairs([[1], [2], [3]], [[-1], [-2], [-3]]);
 * const { pairs, labels } = combineTrainSets([
 *   { variant: "a", pairs: a, labels: [1, 0, 1], count: 2, supervised: true },
 *   { variant: "b", pairs: a, labels: [1, 0, 1], count: 1, supervised: false },
 * ], 0);
 * assertEquals([pairs.n, Number.isNaN(labels[2])], [3, true]);
 * ```
 */
export function combineTrainSets(
  splits: readonly TrainSplit[],
  seed: number,
): { pairs: ContrastPairs; labels: Float64Array } {
  const fn = "combineTrainSets";
  if (!Number.isInteger(seed)) throw new RangeError(`${fn}: seed is ${seed}, expected an integer`);
  const rng = new Rng(seed);
  if (splits.length === 0) throw new ShapeError(`${fn}: no splits given, expected at least 1`);
  const d = splits[0]!.pairs.d;
  let total = 0;
  splits.forEach((s, k) => {
    const where = `splits[${k}] (${s.variant})`;
    _checkPairs(fn, `${where}.pairs`, s.pairs);
    _checkLabels(fn, `${where}.labels`, s.labels, s.pairs.n, true);
    if (s.pairs.d !== d) {
      throw new ShapeError(`${fn}: ${where} has hidden size ${s.pairs.d}, expected ${d}`);
    }
    if (!Number.isInteger(s.count) || s.count < 0 || s.count > s.pairs.n) {
      throw new RangeError(
        `${fn}: ${where} asks for ${s.count} pairs, expected an integer in [0, ${s.pairs.n}]`,
      );
    }
    total += s.count;
  });
  const neg = new Float64Array(total * d), pos = new Float64Array(total * d);
  const labels = new Float64Array(total);
  let at = 0;
  for (const s of splits) {
    const idx = rng.shuffle(Array.from({ length: s.pairs.n }, (_, i) => i)).slice(0, s.count);
    for (const i of idx) {
      neg.set(s.pairs.neg.subarray(i * d, (i + 1) * d), at * d);
      pos.set(s.pairs.pos.subarray(i * d, (i + 1) * d), at * d);
      labels[at++] = s.supervised ? (s.labels[i] as number) : NaN;
    }
  }
  return { pairs: { n: total, d, neg, pos }, labels };
}
