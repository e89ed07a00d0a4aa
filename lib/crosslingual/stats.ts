/**
 * Tokenizer statistics over word-segmented text (Rust et al. 2021 style):
 *
 * - fertility: tokens of the running text per gold word (the text as a model sees it);
 * - split share: the share of words that, tokenized on their own in word-initial form, give
 *   more than one token ("continued words");
 * - byte-piece and unknown rates: shares of the text's tokens that are byte pieces (partial
 *   characters: byte fallback, or byte-level tokens that split a character) or unknowns;
 * - characters per token: code points of the text per token;
 * - the vocabulary used: token ids and their counts, for overlap between languages.
 *
 * A word is word-initial after a space unless the language writes without spaces between words
 * (fewer than 0.3 whitespace runs per word in its text: Chinese, Thai, Japanese).
 *
 * @module
 */
import type { Sentence } from "./corpus.ts";
import type { SubwordTokenizer } from "./tokenizers.ts";

/** Statistics of one tokenizer on one language. */
export interface TokenizerStats {
  /** Sentences read. */
  sentences: number;
  /** Gold words. */
  words: number;
  /** Tokens of the running text. */
  tokens: number;
  /** Code points of the running text. */
  characters: number;
  /** Tokens per word. */
  fertility: number;
  /** Share of words tokenized into more than one piece. */
  splitShare: number;
  /** Share of tokens that are byte pieces. */
  bytePieceRate: number;
  /** Share of tokens that are unknowns. */
  unknownRate: number;
  /** Characters per token. */
  charsPerToken: number;
  /** Whether words were tokenized after a space (the language separates words by spaces). */
  spaced: boolean;
  /** Count of each token id in the running text. */
  vocabulary: Map<number, number>;
}

/** Whether a language writes spaces between words, judged from its text. */
export function usesSpaces(sentences: readonly Sentence[]): boolean {
  let runs = 0, words = 0;
  for (const s of sentences) {
    runs += (s.text.trim().match(/\s+/gu) ?? []).length;
    words += s.words.length;
  }
  return words > 0 && runs / words >= 0.3;
}

/**
 * The statistics of `tokenizer` on `sentences`.
 *
 * @example
 * ```ts
 * import { tokenizerStats } from "./stats.ts";
 * import { loadSubwordTokenizer } from "./tokenizers.ts";
 * const s = tokenizerStats(await loadSubwordTokenizer("chars"), [{ id: "1", text: "ab c", words: ["ab", "c"] }]);
 * if (s.fertility !== 2 || s.splitShare !== 0.5) throw new Error("4 chars / 2 words, 'ab' splits");
 * ```
 */
export function tokenizerStats(
  tokenizer: SubwordTokenizer,
  sentences: readonly Sentence[],
  options: { spaced?: boolean; transform?: (text: string) => string } = {},
): TokenizerStats {
  const spaced = options.spaced ?? usesSpaces(sentences);
  const tf = options.transform ?? ((t: string) => t);
  const vocabulary = new Map<number, number>();
  const wordCache = new Map<string, number>();
  let words = 0, tokens = 0, chars = 0, split = 0, bytePieces = 0, unknowns = 0;
  for (const s of sentences) {
    const text = tf(s.text);
    const ids = tokenizer.encode(text, false);
    tokens += ids.length;
    chars += [...text].length;
    for (const id of ids) {
      vocabulary.set(id, (vocabulary.get(id) ?? 0) + 1);
      const k = tokenizer.kind(id);
      if (k === "byte") bytePieces++;
      else if (k === "unknown") unknowns++;
    }
    for (const w0 of s.words) {
      const w = tf(w0);
      let n = wordCache.get(w);
      if (n === undefined) wordCache.set(w, n = tokenizer.encode(w, spaced).length);
      words++;
      if (n > 1) split++;
    }
  }
  const div = (a: number, b: number) => (b === 0 ? 0 : a / b);
  return {
    sentences: sentences.length,
    words,
    tokens,
    characters: chars,
    fertility: div(tokens, words),
    splitShare: div(split, words),
    bytePieceRate: div(bytePieces, tokens),
    unknownRate: div(unknowns, tokens),
    charsPerToken: div(chars, tokens),
    spaced,
    vocabulary,
  };
}

/**
 * Overlap of the vocabularies two languages use: Jaccard of the sets of token ids, and the
 * frequency-weighted Jaccard Σ min(p, q) / Σ max(p, q) of their relative token frequencies.
 *
 * @example
 * ```ts
 * import { vocabularyOverlap } from "./stats.ts";
 * const o = vocabularyOverlap(new Map([[1, 3], [2, 1]]), new Map([[1, 1], [3, 1]]));
 * if (o.jaccard !== 1 / 3 || Math.abs(o.weighted - 0.5 / 1.5) > 1e-12) throw new Error("wrong");
 * ```
 */
export function vocabularyOverlap(
  a: ReadonlyMap<number, number>,
  b: ReadonlyMap<number, number>,
): { jaccard: number; weighted: number } {
  let inter = 0, na = 0, nb = 0, min = 0, max = 0;
  for (const v of a.values()) na += v;
  for (const v of b.values()) nb += v;
  for (const [id, ca] of a) {
    const cb = b.get(id) ?? 0;
    if (cb > 0) inter++;
    const p = na === 0 ? 0 : ca / na, q = nb === 0 ? 0 : cb / nb;
    min += Math.min(p, q);
    max += Math.max(p, q);
  }
  for (const [id, cb] of b) if (!a.has(id)) max += nb === 0 ? 0 : cb / nb;
  const union = a.size + b.size - inter;
  return { jaccard: union === 0 ? 0 : inter / union, weighted: max === 0 ? 0 : min / max };
}
