/**
 * Span detectors and their grid search on a development split, as in the cross-domain
 * toxic-spans study: a detector proposes character offsets, gap filling (k characters) joins
 * nearby predictions, and an optional binary gate (a post-level classifier) empties the
 * prediction of posts it judges non-toxic.
 *
 * @module
 */
import type { BowLogReg } from "./classifier.ts";
import { constructLexicon, countTokens, scoreTokens } from "./construct.ts";
import { LexiconMatcher, type MatchMode } from "./matcher.ts";
import { evaluateSpans, fillGaps, lexiconSpans, type SpanPost, type SpanReport } from "./spans.ts";

/** Proposes toxic code-point offsets for a text. */
export type SpanDetector = (text: string) => number[];

/** Post-processing of a detector. */
export interface PostProcessing {
  /** Gap filling: join predictions at most this many characters apart (0, 1 or Infinity). */
  fill: number;
  /** Empty the prediction of posts the gate classifies non-toxic. */
  gate: boolean;
}

/** Predictions of `detect` on `posts` after post-processing. */
export function predictSpans(
  detect: SpanDetector,
  posts: readonly SpanPost[],
  post: PostProcessing,
  gate?: BowLogReg,
): number[][] {
  if (post.gate && !gate) throw new RangeError("The binary gate needs a trained classifier");
  return posts.map((
    p,
  ) => (post.gate && gate!.probability(p.text) < 0.5 ? [] : fillGaps(detect(p.text), post.fill)));
}

/** A detector made from a lexicon. */
export function lexiconDetector(
  terms: readonly string[],
  mode: MatchMode = "substring",
  language?: string,
): SpanDetector {
  const m = new LexiconMatcher(terms, language ? { language } : {});
  return (text) => lexiconSpans(m, text, mode);
}

/** One evaluated configuration. */
export interface Trial {
  /** Configuration values, e.g. { theta: 0.5, minOccurrences: 3, fill: 1, gate: false }. */
  config: Record<string, number | boolean>;
  /** The report on the evaluation split. */
  report: SpanReport;
  /** Lexicon size, for lexicon detectors. */
  size?: number;
}

/** The axes of a constructed-lexicon grid search. */
export interface LexiconGrid {
  /** Score thresholds θ. */
  thetas: number[];
  /** Minimum corpus counts. */
  minOccurrences: number[];
  /** Gap-filling widths k. */
  fills: number[];
}

/** The grid of the study: θ ∈ linspace(0, 0.95, 20), min occurrences {1, 3, 5, 7, 11}, k ∈ {0, 1, ∞}. */
export const DEFAULT_GRID: LexiconGrid = {
  thetas: Array.from({ length: 20 }, (_, i) => (0.95 * i) / 19),
  minOccurrences: [1, 3, 5, 7, 11],
  fills: [0, 1, Infinity],
};

/** The trial with the best F1 over all posts (ties: the first). */
export function bestTrial(trials: readonly Trial[]): Trial {
  if (trials.length === 0) throw new RangeError("No trials to choose from");
  return trials.reduce((a, b) => (b.report.all.f1 > a.report.all.f1 ? b : a));
}

/** Per post, whether the gate empties its prediction (null without a gate). */
function gateVerdicts(gate: BowLogReg | undefined, posts: readonly SpanPost[]): boolean[] | null {
  return gate ? posts.map((p) => gate.probability(p.text) < 0.5) : null;
}

/** Trials over gap filling × gate for raw predictions on `dev` (config: fill, gate). */
function postProcessingTrials(
  raw: readonly number[][],
  dev: readonly SpanPost[],
  fills: readonly number[],
  gatedOut: boolean[] | null,
): Trial[] {
  const trials: Trial[] = [];
  for (const fill of fills) {
    for (const gate of gatedOut ? [false, true] : [false]) {
      const preds = raw.map((r, i) => (gate && gatedOut![i] ? [] : fillGaps(r, fill)));
      trials.push({ config: { fill, gate }, report: evaluateSpans(dev, preds) });
    }
  }
  return trials;
}

/**
 * Grid search of lexicons constructed from `train`, evaluated on `dev`; `gate` adds the gated
 * variants. Returns every trial; {@linkcode bestTrial} picks one.
 */
export function searchConstructedLexicon(
  train: readonly SpanPost[],
  dev: readonly SpanPost[],
  options: { grid?: LexiconGrid; gate?: BowLogReg; mode?: MatchMode } = {},
): Trial[] {
  const grid = options.grid ?? DEFAULT_GRID;
  const scores = scoreTokens(countTokens(train));
  const gatedOut = gateVerdicts(options.gate, dev);
  const trials: Trial[] = [];
  for (const minOccurrences of grid.minOccurrences) {
    for (const theta of grid.thetas) {
      const lex = constructLexicon(scores, theta, minOccurrences);
      const detect = lexiconDetector(lex, options.mode ?? "substring");
      const raw = dev.map((p) => detect(p.text));
      for (const t of postProcessingTrials(raw, dev, grid.fills, gatedOut)) {
        trials.push({ ...t, config: { theta, minOccurrences, ...t.config }, size: lex.length });
      }
    }
  }
  return trials;
}

/** Grid search of post-processing for a fixed detector. */
export function searchPostProcessing(
  detect: SpanDetector,
  dev: readonly SpanPost[],
  options: { fills?: number[]; gate?: BowLogReg } = {},
): Trial[] {
  const raw = dev.map((p) => detect(p.text));
  return postProcessingTrials(
    raw,
    dev,
    options.fills ?? DEFAULT_GRID.fills,
    gateVerdicts(options.gate, dev),
  );
}
