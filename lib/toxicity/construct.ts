/**
 * Lexicons constructed from training spans (after Zhu et al. 2021, as the cross-domain
 * toxic-spans code does it): count every lower-cased alphabetic word of the training posts (n)
 * and, in toxic posts, the words of the highlighted phrases that also occur in the post (a);
 * score = a/n − z·√(pq/n) with p = Σa/Σn, q = 1 − p; keep words with n ≥ min occurrences and
 * score > θ.
 *
 * Words are maximal runs of letters (`\p{L}+`) of the lower-cased text; the authors use NLTK's
 * `word_tokenize` and keep `isalpha` tokens, which differs on contractions ("don't" gives "don"
 * and "t" here, "do" and "n't" there).
 *
 * @module
 */
import type { SpanPost } from "./spans.ts";
import { offsetRuns } from "./spans.ts";

const WORDS = /\p{L}+/gu;
const ALPHA = /^\p{L}+$/u;

/** The lower-cased letter runs of `text`. */
export function letterWords(text: string): string[] {
  return text.toLowerCase().match(WORDS) ?? [];
}

/** Word counts over training posts. */
export interface TokenCounts {
  /** Count in highlighted phrases of toxic posts. */
  inToxic: Map<string, number>;
  /** Count in all posts. */
  all: Map<string, number>;
}

function cpSlice(cps: string[], start: number, end: number): string {
  return cps.slice(start, end).join("");
}

/** Counts words over `posts` (each gold run is one highlighted phrase). */
export function countTokens(posts: readonly SpanPost[]): TokenCounts {
  const inToxic = new Map<string, number>(), all = new Map<string, number>();
  for (const p of posts) {
    const textWords = letterWords(p.text);
    for (const w of textWords) all.set(w, (all.get(w) ?? 0) + 1);
    if (!p.toxic || p.gold.length === 0) continue;
    const inText = new Set(textWords);
    const cps = [...p.text];
    for (const [s, e] of offsetRuns(p.gold)) {
      for (const t of cpSlice(cps, s, e).toLowerCase().split(" ")) {
        if (ALPHA.test(t) && inText.has(t)) inToxic.set(t, (inToxic.get(t) ?? 0) + 1);
      }
    }
  }
  return { inToxic, all };
}

/**
 * Scores a/n − z·√(pq/n) of the words seen in highlights, with their corpus counts.
 *
 * @example
 * ```ts
 * import { scoreTokens } from "./construct.ts";
 * const s = scoreTokens({ inToxic: new Map([["idiot", 3]]), all: new Map([["idiot", 4], ["the", 6]]) });
 * if (s.get("idiot")!.score !== 0.75) throw new Error("a/n with z = 0");
 * ```
 */
export function scoreTokens(counts: TokenCounts, z = 0): Map<string, { score: number; n: number }> {
  let sa = 0, sn = 0;
  for (const v of counts.inToxic.values()) sa += v;
  for (const v of counts.all.values()) sn += v;
  const p = sn === 0 ? 0 : sa / sn, q = 1 - p;
  const out = new Map<string, { score: number; n: number }>();
  for (const [t, a] of counts.inToxic) {
    const n = counts.all.get(t);
    if (!n) continue;
    out.set(t, { score: a / n - z * Math.sqrt((p * q) / n), n });
  }
  return out;
}

/** The words with n ≥ `minOccurrences` and score > `theta`, highest score first. */
export function constructLexicon(
  scores: ReadonlyMap<string, { score: number; n: number }>,
  theta: number,
  minOccurrences: number,
): string[] {
  return [...scores].filter(([, v]) => v.n >= minOccurrences && v.score > theta)
    .sort((a, b) => b[1].score - a[1].score || (a[0] < b[0] ? -1 : 1)).map(([t]) => t);
}
