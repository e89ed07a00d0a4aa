/**
 * Scoring as the authors' `calc_metrics.py` does it: each answer becomes a reading (the chosen
 * option's reading, "neither" when unparseable) and scikit-learn's `classification_report` over
 * [de_dicto, de_re, neither] gives precision, recall, F1 and support per class, accuracy, and
 * macro and weighted averages, with the confusion matrix.
 *
 * @module
 */
import { type AmbiguityItem, itemReplies, type Reading } from "./benchmark.ts";
import { digitValue, parseAnswer } from "./parse.ts";

/** The classes scored, in the authors' order. */
export const LABELS = ["de_dicto", "de_re", "neither"] as const;
/** A scored class. */
export type Label = typeof LABELS[number];

/** Precision, recall, F1 and support of one class or average. */
export interface ClassScores {
  /** tp / (tp + fp), 0 when nothing was predicted. */
  precision: number;
  /** tp / (tp + fn), 0 without support. */
  recall: number;
  /** Harmonic mean of precision and recall, 0 when both are 0. */
  f1: number;
  /** Items whose truth is this class (all items for averages). */
  support: number;
}

/** scikit-learn's classification report (zero_division = 0) plus the confusion matrix. */
export interface ClassificationReport {
  /** Per class. */
  classes: Record<Label, ClassScores>;
  /** Fraction of items whose prediction equals the label. */
  accuracy: number;
  /** Unweighted mean over the three classes (neither included, as sklearn does). */
  macro: ClassScores;
  /** Mean weighted by support. */
  weighted: ClassScores;
  /** confusion[true][predicted] counts. */
  confusion: Record<Label, Record<Label, number>>;
}

const div = (a: number, b: number) => (b === 0 ? 0 : a / b);

/**
 * The classification report of `predicted` against `truth`.
 *
 * @example
 * ```ts
 * import { classificationReport } from "./metrics.ts";
 * const r = classificationReport(["de_dicto", "de_re"], ["de_dicto", "neither"]);
 * if (r.accuracy !== 0.5 || r.classes.de_re.recall !== 0) throw new Error("wrong report");
 * ```
 */
export function classificationReport(
  truth: readonly Label[],
  predicted: readonly Label[],
): ClassificationReport {
  if (truth.length !== predicted.length) {
    throw new RangeError(`${truth.length} labels but ${predicted.length} predictions`);
  }
  const confusion = Object.fromEntries(
    LABELS.map((t) => [t, Object.fromEntries(LABELS.map((p) => [p, 0]))]),
  ) as Record<Label, Record<Label, number>>;
  truth.forEach((t, i) => {
    const p = predicted[i]!;
    if (!LABELS.includes(t) || !LABELS.includes(p)) {
      throw new RangeError(`Unknown label '${LABELS.includes(t) ? p : t}' at ${i}`);
    }
    confusion[t][p]++;
  });
  const classes = {} as Record<Label, ClassScores>;
  let correct = 0;
  for (const c of LABELS) {
    const tp = confusion[c][c];
    correct += tp;
    const support = LABELS.reduce((s, p) => s + confusion[c][p], 0);
    const predictedC = LABELS.reduce((s, t) => s + confusion[t][c], 0);
    const precision = div(tp, predictedC), recall = div(tp, support);
    classes[c] = {
      precision,
      recall,
      f1: div(2 * precision * recall, precision + recall),
      support,
    };
  }
  const n = truth.length;
  const avg = (w: (c: Label) => number): ClassScores => {
    const total = LABELS.reduce((s, c) => s + w(c), 0);
    const mean = (k: "precision" | "recall" | "f1") =>
      div(LABELS.reduce((s, c) => s + w(c) * classes[c][k], 0), total);
    return { precision: mean("precision"), recall: mean("recall"), f1: mean("f1"), support: n };
  };
  return {
    classes,
    accuracy: div(correct, n),
    macro: avg(() => 1),
    weighted: avg((c) => classes[c].support),
    confusion,
  };
}

/**
 * The reading an answer stands for: "neither" when nothing was parsed, the item's label when the
 * chosen option is the label's number, otherwise the other reading (an option "6" counts as the
 * wrong reading, as in the authors' code).
 */
export function predictedReading(item: AmbiguityItem, choice: string | null): Label {
  if (choice === null) return "neither";
  if (digitValue(choice) === item.labelNr) return item.labelName;
  return item.labelName === "de_dicto" ? "de_re" : "de_dicto";
}

/** One item's answer as the parser reads it, with the stored choice for comparison. */
export interface ScoredItem {
  /** The item. */
  item: AmbiguityItem;
  /** Parsed choice, or null. */
  choice: string | null;
  /** The reading that choice stands for. */
  predicted: Reading | "neither";
  /** Whether the parse agrees with `results.choice` (undefined when no results are stored). */
  agreesWithStored?: boolean;
}

/** Parses every item's replies (each item must have responses). */
export function scoreItems(items: readonly AmbiguityItem[]): ScoredItem[] {
  return items.map((item) => {
    const { choice } = parseAnswer(item.style, itemReplies(item));
    const s: ScoredItem = { item, choice, predicted: predictedReading(item, choice) };
    if (item.results) s.agreesWithStored = (item.results.choice ?? null) === choice;
    return s;
  });
}

/** The report of a group of scored items, with its parse rate. */
export interface GroupReport extends ClassificationReport {
  /** Items in the group. */
  n: number;
  /** Fraction with a parseable answer. */
  parseRate: number;
  /** Items whose parse disagrees with the stored choice. */
  disagreements: number;
}

/** The report of `scored` (all of them together). */
export function groupReport(scored: readonly ScoredItem[]): GroupReport {
  const r = classificationReport(
    scored.map((s) => s.item.labelName),
    scored.map((s) => s.predicted),
  );
  return {
    ...r,
    n: scored.length,
    parseRate: div(scored.filter((s) => s.choice !== null).length, scored.length),
    disagreements: scored.filter((s) => s.agreesWithStored === false).length,
  };
}

/** Reports per style: overall and per fragment. */
export interface StyleReports {
  /** Prompt style. */
  style: string;
  /** All items of the style. */
  overall: GroupReport;
  /** Per fragment. */
  fragments: Record<string, GroupReport>;
}

/** Groups scored items by style, then fragment, and reports each group (sorted by name). */
export function reportByStyle(scored: readonly ScoredItem[]): StyleReports[] {
  const styles = [...new Set(scored.map((s) => s.item.style))].sort();
  return styles.map((style) => {
    const inStyle = scored.filter((s) => s.item.style === style);
    const fragments = [...new Set(inStyle.map((s) => s.item.fragment))].sort();
    return {
      style,
      overall: groupReport(inStyle),
      fragments: Object.fromEntries(
        fragments.map((f) => [f, groupReport(inStyle.filter((s) => s.item.fragment === f))]),
      ),
    };
  });
}
