/**
 * Context-sensitivity metrics of a truth probe, per item and aggregated, exactly as the authors'
 * `CalculateErrorScores` (exp1_analysis.py) computes them from the (calibrated) probabilities of
 * one probe on every premise variant of the same eval items. Notation, per item i:
 * p_h = no premise, p₊ = original premise asserted, p₋ = original premise negated, p_r / p_s =
 * random / shuffled premise (asserted and negated variants scored separately), y = gold label,
 * PE = p₊ − p_h (the premise effect).
 *
 * | metric | per item | aggregated |
 * |---|---|---|
 * | E1 (random premise) | \|p_r − p_h\| / \|PE\| | each aggregate, averaged over the asserted and negated variant |
 * | E2 (shuffled premise) | \|p_s − p_h\| / \|PE\| | likewise |
 * | E3 | max(0, (p₋ − p_h) / PE) | mean, median, 20 % trimmed mean, 20th / 80th percentile |
 * | E4 | \|p₋ − p₊\| / \|PE\| | likewise |
 * | E3+4 | E3 + E4 | likewise |
 * | error_sv | y·max(0, −PE) + (1 − y)·max(0, PE) | mean |
 * | premise_sensitivity | | mean \|PE\| |
 * | mean_premise_effect | | mean PE |
 * | error_sv_1, error_sv_0 | the y and the 1 − y term | mean |
 * | rel_error_sv | | mean(error_sv) / premise_sensitivity |
 * | accuracy@pos_prem, accuracy@no_prem | | mean((p > 0.5) == y) on p₊, on p_h |
 * | p(h\|p;e), p(h\|p;c) | | mean p₊ over y = 1, over y = 0 |
 * | p(h\|-p;e), p(h\|-p;c) | | mean p₋ over y = 1, over y = 0 |
 * | p(h) | | mean p_h |
 *
 * Division by PE = 0 gives ±∞ or NaN per item as in numpy; the aggregates then follow numpy (see
 * `aggregate.ts`), and the two-variant average of E1/E2 skips a NaN aggregate as pandas' `mean`.
 * The authors compute these per training group (probe trained on no-prem, on pos-prem, on the
 * same variant it is evaluated on, or on the combined set); call this once per group.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { _checkLabels, _checkProbabilities } from "./_check.ts";
import { aggregate, type Aggregates } from "./aggregate.ts";

/** A probe's probabilities for the same n eval items under each premise condition. */
export interface ConditionPredictions {
  /** p_h: the statement with no premise. */
  noPrem: ArrayLike<number>;
  /** p₊: the original (supporting) premise asserted. */
  originalPos: ArrayLike<number>;
  /** p₋: the original premise negated. */
  originalNeg: ArrayLike<number>;
  /** Random premise (letters replaced), asserted. */
  randomPos?: ArrayLike<number>;
  /** Random premise, negated. */
  randomNeg?: ArrayLike<number>;
  /** Shuffled premise (another item's), asserted. */
  shufflePos?: ArrayLike<number>;
  /** Shuffled premise, negated. */
  shuffleNeg?: ArrayLike<number>;
}

/** Per-item errors (length n each; null where the variant was not given). */
export interface ItemErrors {
  /** PE = p₊ − p_h. */
  premiseEffect: Float64Array;
  /** E1 for the asserted random premise. */
  e1Pos: Float64Array | null;
  /** E1 for the negated random premise. */
  e1Neg: Float64Array | null;
  /** E2 for the asserted shuffled premise. */
  e2Pos: Float64Array | null;
  /** E2 for the negated shuffled premise. */
  e2Neg: Float64Array | null;
  /** E3 = max(0, (p₋ − p_h) / PE). */
  e3: Float64Array;
  /** E4 = |p₋ − p₊| / |PE|. */
  e4: Float64Array;
  /** E3 + E4. */
  e34: Float64Array;
  /** error_sv = y·max(0, −PE) + (1 − y)·max(0, PE). */
  errorSv: Float64Array;
  /** Its y·max(0, −PE) part. */
  errorSv1: Float64Array;
  /** Its (1 − y)·max(0, PE) part. */
  errorSv0: Float64Array;
}

/** Mean probabilities per condition (the authors' names in the doc of each field). */
export interface MeanProbabilities {
  /** p(h|p;e): mean p₊ over true items. */
  posPremTrue: number;
  /** p(h|p;c): mean p₊ over false items. */
  posPremFalse: number;
  /** p(h|-p;e): mean p₋ over true items. */
  negPremTrue: number;
  /** p(h|-p;c): mean p₋ over false items. */
  negPremFalse: number;
  /** p(h): mean p_h. */
  noPrem: number;
}

/** All context-sensitivity metrics of one probe on one training group. */
export interface ContextMetrics {
  /** E1 aggregates (null without random variants). */
  e1: Aggregates | null;
  /** E2 aggregates (null without shuffled variants). */
  e2: Aggregates | null;
  /** E3 aggregates. */
  e3: Aggregates;
  /** E4 aggregates. */
  e4: Aggregates;
  /** E3+4 aggregates. */
  e34: Aggregates;
  /** mean error_sv. */
  errorSv: number;
  /** mean of error_sv's y-term (`error_sv_1`). */
  errorSv1: number;
  /** mean of error_sv's (1 − y)-term (`error_sv_0`). */
  errorSv0: number;
  /** mean |PE|. */
  premiseSensitivity: number;
  /** mean PE. */
  meanPremiseEffect: number;
  /** mean(error_sv) / premise_sensitivity. */
  relErrorSv: number;
  /** accuracy@pos_prem. */
  accuracyPosPrem: number;
  /** accuracy@no_prem. */
  accuracyNoPrem: number;
  /** Mean probabilities per condition. */
  meanP: MeanProbabilities;
  /** The per-item errors behind the aggregates. */
  items: ItemErrors;
}

function check(p: ConditionPredictions, labels: ArrayLike<number>, where: string): number {
  if (typeof p !== "object" || p === null) {
    throw new TypeError(
      `${where}: predictions is ${String(p)}, expected an object of probability arrays`,
    );
  }
  for (const k of ["noPrem", "originalPos", "originalNeg"] as const) {
    if (p[k] === undefined) throw new TypeError(`${where}: predictions.${k} is missing`);
  }
  const n = p.originalPos.length;
  if (n === 0) {
    throw new ShapeError(`${where}: predictions.originalPos is empty, expected at least 1 item`);
  }
  const keys = [
    "noPrem",
    "originalPos",
    "originalNeg",
    "randomPos",
    "randomNeg",
    "shufflePos",
    "shuffleNeg",
  ] as const;
  for (const k of keys) {
    const v = p[k];
    if (v !== undefined) _checkProbabilities(where, `predictions.${k}`, v, n);
  }
  _checkLabels(where, "labels", labels, n);
  return n;
}

function ratioAbs(a: ArrayLike<number>, b: ArrayLike<number>, pe: Float64Array): Float64Array {
  return pe.map((e, i) => Math.abs((a[i] as number) - (b[i] as number)) / Math.abs(e));
}

/**
 * The per-item errors E1–E4, E3+4 and error_sv (see the module doc).
 *
 * @example
 * ```ts
 * import { contextErrors } from "./metrics.ts";
 * import { assertEquals } from "@std/assert";
 *
 * // PE = 0.8 − 0.5 = 0.3; negation leaves p at the no-premise value: E3 = 0, E4 = 1
 * const e = contextErrors({ noPrem: [0.5], originalPos: [0.8], originalNeg: [0.5], randomPos: [0.56] }, [1]);
 * assertEquals([e.e3[0], e.e4[0], e.errorSv[0]], [0, 1, 0]);
 * assertEquals(Math.round(e.e1Pos![0]! * 1e12) / 1e12, 0.2);
 * ```
 */
export function contextErrors(p: ConditionPredictions, labels: ArrayLike<number>): ItemErrors {
  return errors(p, labels, "contextErrors");
}

function errors(p: ConditionPredictions, labels: ArrayLike<number>, where: string): ItemErrors {
  const n = check(p, labels, where);
  const { noPrem: h, originalPos: pp, originalNeg: pn } = p;
  const pe = new Float64Array(n).map((_, i) => (pp[i] as number) - (h[i] as number));
  const opt = (v: ArrayLike<number> | undefined) => (v === undefined ? null : ratioAbs(v, h, pe));
  const e3 = pe.map((e, i) => Math.max(0, ((pn[i] as number) - (h[i] as number)) / e));
  const e4 = ratioAbs(pn, pp, pe);
  const errorSv1 = pe.map((e, i) => (labels[i] as number) * Math.max(0, -e));
  const errorSv0 = pe.map((e, i) => (1 - (labels[i] as number)) * Math.max(0, e));
  return {
    premiseEffect: pe,
    e1Pos: opt(p.randomPos),
    e1Neg: opt(p.randomNeg),
    e2Pos: opt(p.shufflePos),
    e2Neg: opt(p.shuffleNeg),
    e3,
    e4,
    e34: e3.map((v, i) => v + e4[i]!),
    errorSv: errorSv1.map((v, i) => v + errorSv0[i]!),
    errorSv1,
    errorSv0,
  };
}

/** Per-field mean of the given aggregates, skipping NaN (pandas' `DataFrame.mean`). */
function averageAggregates(parts: (Float64Array | null)[]): Aggregates | null {
  const aggs = parts.filter((x): x is Float64Array => x !== null).map((x) => aggregate(x));
  if (aggs.length === 0) return null;
  const field = (k: keyof Aggregates): number => {
    const v = aggs.map((a) => a[k]).filter((x) => !Number.isNaN(x));
    return v.length === 0 ? NaN : v.reduce((s, x) => s + x, 0) / v.length;
  };
  return {
    mean: field("mean"),
    median: field("median"),
    trimMean: field("trimMean"),
    p20: field("p20"),
    p80: field("p80"),
  };
}

function meanOf(v: ArrayLike<number>, keep?: (i: number) => boolean): number {
  let s = 0, c = 0;
  for (let i = 0; i < v.length; i++) if (!keep || keep(i)) s += v[i] as number, c++;
  return s / c;
}

/**
 * Every context-sensitivity metric of one probe on one training group (see the module doc).
 *
 * @example
 * ```ts
 * import { contextMetrics } from "./metrics.ts";
 * import { assertAlmostEquals, assertEquals } from "@std/assert";
 *
 * const m = contextMetrics({
 *   noPrem: [0.5, 0.5],
 *   originalPos: [0.9, 0.3], // PE = +0.4 (true item), −0.2 (false item): both in the right direction
 *   originalNeg: [0.5, 0.6],
 * }, [1, 0]);
 * assertEquals([m.accuracyPosPrem, m.accuracyNoPrem, m.errorSv], [1, 0.5, 0]);
 * assertAlmostEquals(m.premiseSensitivity, 0.3, 1e-15);
 * assertEquals(m.e3.mean, 0); // E3 = [max(0, 0/0.4), max(0, 0.1/−0.2)]
 * assertAlmostEquals(m.e4.mean, 1.25, 1e-12); // E4 = [0.4/0.4, 0.3/0.2]
 * ```
 */
export function contextMetrics(p: ConditionPredictions, labels: ArrayLike<number>): ContextMetrics {
  const items = errors(p, labels, "contextMetrics");
  const y = labels, pe = items.premiseEffect;
  const accuracyOf = (v: ArrayLike<number>) =>
    meanOf(
      new Float64Array(v.length).map((_, i) => ((v[i] as number) > 0.5 ? 1 : 0) === y[i] ? 1 : 0),
    );
  const premiseSensitivity = meanOf(pe.map(Math.abs));
  const errorSv = meanOf(items.errorSv);
  return {
    e1: averageAggregates([items.e1Pos, items.e1Neg]),
    e2: averageAggregates([items.e2Pos, items.e2Neg]),
    e3: aggregate(items.e3),
    e4: aggregate(items.e4),
    e34: aggregate(items.e34),
    errorSv,
    errorSv1: meanOf(items.errorSv1),
    errorSv0: meanOf(items.errorSv0),
    premiseSensitivity,
    meanPremiseEffect: meanOf(pe),
    relErrorSv: errorSv / premiseSensitivity,
    accuracyPosPrem: accuracyOf(p.originalPos),
    accuracyNoPrem: accuracyOf(p.noPrem),
    meanP: {
      posPremTrue: meanOf(p.originalPos, (i) => y[i] === 1),
      posPremFalse: meanOf(p.originalPos, (i) => y[i] === 0),
      negPremTrue: meanOf(p.originalNeg, (i) => y[i] === 1),
      negPremFalse: meanOf(p.originalNeg, (i) => y[i] === 0),
      noPrem: meanOf(p.noPrem),
    },
    items,
  };
}

/**
 * The metrics under the authors' column names (`mean_error_1`, `trim_mean_error_3+4`,
 * `20pth_error_4`, `mean_error_sv`, `accuracy@pos_prem`, `p(h|-p;e)`, …), for tables that should
 * read like theirs. E1/E2 columns are omitted when those variants were not given.
 *
 * @example
 * ```ts
 * import { authorsColumns, contextMetrics } from "./metrics.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const m = contextMetrics({ noPrem: [0.5], originalPos: [1], originalNeg: [0.75] }, [1]);
 * const c = authorsColumns(m);
 * assertEquals([c["accuracy@pos_prem"], c["p(h)"], c["20pth_error_4"]], [1, 0.5, 0.5]);
 * ```
 */
export function authorsColumns(m: ContextMetrics): Record<string, number> {
  const out: Record<string, number> = {};
  const names: [string, Aggregates | null][] = [
    ["error_1", m.e1],
    ["error_2", m.e2],
    ["error_3", m.e3],
    ["error_4", m.e4],
    ["error_3+4", m.e34],
  ];
  for (const [name, a] of names) {
    if (a === null) continue;
    out[`mean_${name}`] = a.mean;
    out[`median_${name}`] = a.median;
    out[`trim_mean_${name}`] = a.trimMean;
    out[`20pth_${name}`] = a.p20;
    out[`80pth_${name}`] = a.p80;
  }
  out["mean_error_sv"] = m.errorSv;
  out["p(h|p;e)"] = m.meanP.posPremTrue;
  out["p(h|p;c)"] = m.meanP.posPremFalse;
  out["p(h|-p;e)"] = m.meanP.negPremTrue;
  out["p(h|-p;c)"] = m.meanP.negPremFalse;
  out["p(h)"] = m.meanP.noPrem;
  out["accuracy@pos_prem"] = m.accuracyPosPrem;
  out["accuracy@no_prem"] = m.accuracyNoPrem;
  out["premise_sensitivity"] = m.premiseSensitivity;
  out["mean_premise_effect"] = m.meanPremiseEffect;
  out["error_sv_0"] = m.errorSv0;
  out["error_sv_1"] = m.errorSv1;
  out["rel_error_sv"] = m.relErrorSv;
  return out;
}
