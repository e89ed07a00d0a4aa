/**
 * Toxic-span evaluation at the character level, as SemEval-2021 Task 5 and the cross-domain
 * toxic-spans code define it, plus the shared post-processing (gap filling, lexicon spans).
 *
 * Offsets are code-point offsets (Python string indices).
 *
 * @module
 */
import type { LexiconMatcher, MatchMode } from "./matcher.ts";

/**
 * The official SemEval-2021 per-post F1: 1 when both sets are empty, 0 when only one is,
 * otherwise 2|P∩G| / (|P| + |G|).
 *
 * @example
 * ```ts
 * import { spanF1 } from "./spans.ts";
 * if (spanF1([0, 1, 4, 5], [0, 1, 6]) !== 4 / 7) throw new Error("the task's own test vector");
 * ```
 */
export function spanF1(predicted: Iterable<number>, gold: Iterable<number>): number {
  const p = new Set(predicted), g = new Set(gold);
  if (g.size === 0) return p.size === 0 ? 1 : 0;
  if (p.size === 0) return 0;
  let inter = 0;
  for (const x of p) if (g.has(x)) inter++;
  return (2 * inter) / (p.size + g.size);
}

/** Per-post F1, precision and recall; NaN where undefined (skipped when averaging). */
export interface PostScores {
  /** F1 (0, 1, or 2PR/(P+R)). */
  f1: number;
  /** Precision, NaN when undefined. */
  precision: number;
  /** Recall, NaN when undefined. */
  recall: number;
}

/**
 * Per-post scores of the cross-domain toxic-spans code: prediction empty and gold not → F1 0,
 * P NaN, R 0; gold empty and prediction not → F1 0, P 0, R NaN; both empty → F1 1, P and R NaN;
 * no overlap → all 0; else P = |P∩G|/|P|, R = |P∩G|/|G|, F1 their harmonic mean.
 */
export function postScores(predicted: Iterable<number>, gold: Iterable<number>): PostScores {
  const p = new Set(predicted), g = new Set(gold);
  if (p.size === 0 && g.size > 0) return { f1: 0, precision: NaN, recall: 0 };
  if (g.size === 0 && p.size > 0) return { f1: 0, precision: 0, recall: NaN };
  if (g.size === 0) return { f1: 1, precision: NaN, recall: NaN };
  let inter = 0;
  for (const x of p) if (g.has(x)) inter++;
  if (inter === 0) return { f1: 0, precision: 0, recall: 0 };
  const precision = inter / p.size, recall = inter / g.size;
  return { f1: (2 * precision * recall) / (precision + recall), precision, recall };
}

/** A post with its gold toxic character offsets. */
export interface SpanPost {
  /** Identifier (file and line, or the source's id). */
  id: string;
  /** The text. */
  text: string;
  /** Sorted, distinct code-point offsets of the toxic characters. */
  gold: number[];
  /** Post-level label (for the span data sets: gold is not empty). */
  toxic: boolean;
}

/** Mean scores of a group of posts (NaN entries skipped, as numpy's nanmean). */
export interface GroupScores extends PostScores {
  /** Posts in the group. */
  n: number;
}

/** The aggregate report of the cross-domain toxic-spans code. */
export interface SpanReport {
  /** All posts (the authors' "micro", a per-post average). */
  all: GroupScores;
  /** Posts labelled toxic. */
  toxic: GroupScores;
  /** Toxic posts without gold spans. */
  toxicNoSpan: GroupScores;
  /** Posts labelled non-toxic. */
  nonToxic: GroupScores;
  /** Posts with empty prediction and non-empty gold. */
  emptyPrediction: number;
  /** Posts with empty gold and non-empty prediction. */
  emptyGold: number;
  /** Posts where both are empty. */
  emptyBoth: number;
  /** emptyBoth / (emptyGold + emptyBoth): how often an empty gold is predicted empty. */
  nonToxicAccuracy: number;
}

function nanMean(v: number[]): number {
  let s = 0, n = 0;
  for (const x of v) {
    if (!Number.isNaN(x)) {
      s += x;
      n++;
    }
  }
  return n === 0 ? NaN : s / n;
}

function group(scores: PostScores[]): GroupScores {
  return {
    f1: nanMean(scores.map((s) => s.f1)),
    precision: nanMean(scores.map((s) => s.precision)),
    recall: nanMean(scores.map((s) => s.recall)),
    n: scores.length,
  };
}

/** Scores `predictions[i]` against `posts[i].gold` and aggregates by post group. */
export function evaluateSpans(
  posts: readonly SpanPost[],
  predictions: readonly (readonly number[])[],
): SpanReport {
  if (posts.length !== predictions.length) {
    throw new RangeError(`${posts.length} posts but ${predictions.length} predictions`);
  }
  const s = posts.map((p, i) => postScores(predictions[i]!, p.gold));
  let emptyPrediction = 0, emptyGold = 0, emptyBoth = 0;
  posts.forEach((p, i) => {
    const np = predictions[i]!.length, ng = p.gold.length;
    if (np === 0 && ng > 0) emptyPrediction++;
    else if (ng === 0 && np > 0) emptyGold++;
    else if (ng === 0 && np === 0) emptyBoth++;
  });
  const pick = (f: (p: SpanPost) => boolean) => group(s.filter((_, i) => f(posts[i]!)));
  return {
    all: group(s),
    toxic: pick((p) => p.toxic),
    toxicNoSpan: pick((p) => p.toxic && p.gold.length === 0),
    nonToxic: pick((p) => !p.toxic),
    emptyPrediction,
    emptyGold,
    emptyBoth,
    nonToxicAccuracy: emptyGold + emptyBoth === 0 ? NaN : emptyBoth / (emptyGold + emptyBoth),
  };
}

/**
 * Adds every offset strictly between two predicted offsets whose gap is at most `k` characters
 * (k = 0: nothing; Infinity: everything from the first to the last predicted character).
 *
 * @example
 * ```ts
 * import { fillGaps } from "./spans.ts";
 * if (fillGaps([0, 1, 3, 7], 1).join() !== "0,1,2,3,7") throw new Error("one-character gap only");
 * ```
 */
export function fillGaps(offsets: readonly number[], k: number): number[] {
  const sorted = [...new Set(offsets)].sort((a, b) => a - b);
  if (k <= 0 || sorted.length < 2) return sorted;
  const out: number[] = [sorted[0]!];
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1]!, b = sorted[i]!;
    if (b - a - 1 <= k) { for (let x = a + 1; x < b; x++) out.push(x); }
    out.push(b);
  }
  return out;
}

/** The offsets covered by the lexicon's matches in `text` (leftmost-longest, as a regex). */
export function lexiconSpans(matcher: LexiconMatcher, text: string, mode: MatchMode): number[] {
  const out: number[] = [];
  for (const h of matcher.matches(text, mode)) for (let x = h.start; x < h.end; x++) out.push(x);
  return out;
}

/** Contiguous runs of sorted offsets as [start, end) pairs. */
export function offsetRuns(offsets: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (const x of offsets) {
    const last = out[out.length - 1];
    if (last && last[1] === x) last[1] = x + 1;
    else out.push([x, x + 1]);
  }
  return out;
}
