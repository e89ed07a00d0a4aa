/**
 * Lexicon matching in time linear in the text (Aho–Corasick over case-folded code points), with
 * every hit's code-point offsets. Two modes:
 *
 * - `word`: a hit must start and end at word boundaries (the neighbouring characters are not
 *   letters, digits, combining marks or "_"; Unicode-aware, so Arabic, Devanagari or Cyrillic
 *   words are bounded like Latin ones);
 * - `substring`: any occurrence ("ass" inside "class"), the behaviour of the toxic-spans authors'
 *   `re.finditer("|".join(terms), text, re.I)`.
 *
 * Case folding maps each code point to one code point, so offsets in the folded text are offsets in
 * the original: the lower case of the character, except that for Turkish and Azerbaijani "I"
 * folds to "ı" and "İ" to "i", and in every other language "İ" folds to "i".
 *
 * Offsets count code points, as Python and the SemEval-2021 span files do (not UTF-16 units).
 *
 * @module
 */

/** A lexicon hit: code-point offsets [start, end) and the index of the term. */
export interface Hit {
  /** First code point of the hit. */
  start: number;
  /** One past the last code point. */
  end: number;
  /** Index into `terms`. */
  term: number;
}

/** How hits are bounded. */
export type MatchMode = "word" | "substring";

const WORD = /[\p{L}\p{N}\p{M}_]/u;
const wordBmp = new Uint8Array(65536);
for (let c = 0; c < 65536; c++) {
  if (c < 0xd800 || c > 0xdfff) wordBmp[c] = WORD.test(String.fromCharCode(c)) ? 1 : 0;
}
const isWordCp = (
  cp: number,
) => (cp < 65536 ? wordBmp[cp] === 1 : WORD.test(String.fromCodePoint(cp)));

const foldTables = new Map<boolean, Uint32Array>();
function foldTable(turkic: boolean): Uint32Array {
  let t = foldTables.get(turkic);
  if (t) return t;
  t = new Uint32Array(65536);
  for (let c = 0; c < 65536; c++) {
    if (c >= 0xd800 && c <= 0xdfff) {
      t[c] = c;
      continue;
    }
    const low = String.fromCharCode(c).toLowerCase();
    t[c] = low.length === 1 ? low.charCodeAt(0) : low.codePointAt(0)!;
  }
  t[0x130] = 0x69; // İ → i
  if (turkic) t[0x49] = 0x131; // I → ı
  foldTables.set(turkic, t);
  return t;
}

function foldAstral(cp: number): number {
  return String.fromCodePoint(cp).toLowerCase().codePointAt(0)!;
}

/** Code points of `text`, case-folded, into `buf` (grown as needed); returns [buffer, length]. */
function foldInto(text: string, table: Uint32Array, buf: Uint32Array): [Uint32Array, number] {
  if (buf.length < text.length) buf = new Uint32Array(Math.max(text.length, buf.length * 2));
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        c = ((c - 0xd800) << 10) + (d - 0xdc00) + 0x10000;
        i++;
        buf[n++] = foldAstral(c);
        continue;
      }
    }
    buf[n++] = table[c]!;
  }
  return [buf, n];
}

/**
 * An Aho–Corasick automaton over a lexicon's terms.
 *
 * @example
 * ```ts
 * import { LexiconMatcher } from "./matcher.ts";
 * const m = new LexiconMatcher(["ass", "idiot"]);
 * const text = "What a Class act, you IDIOT";
 * if (m.hits(text, "word").length !== 1) throw new Error("only 'IDIOT' is a word hit");
 * if (m.hits(text, "substring").length !== 2) throw new Error("'ass' inside 'Class' too");
 * ```
 */
export class LexiconMatcher {
  /** The distinct, folded, non-empty terms, in first-seen order. */
  readonly terms: string[];
  readonly #fold: Uint32Array;
  readonly #next: Map<number, number>[] = [new Map()];
  readonly #fail: number[] = [0];
  // length of the longest term ending at each state (0: none) and its term index
  readonly #outLen: number[] = [0];
  readonly #outTerm: number[] = [-1];
  // the next state along the failure chain that ends a term
  readonly #dict: number[] = [-1];
  #buf: Uint32Array = new Uint32Array(256);
  // fully resolved transitions over the terms' alphabet: #delta[state * #k + classOf(c)]; class 0
  // is every character that occurs in no term (it always leads back to the root)
  #delta: Int32Array = new Int32Array(0);
  #k = 1;
  #classBmp: Int32Array = new Int32Array(0);
  readonly #classAstral = new Map<number, number>();
  #out: Int32Array = new Int32Array(0);
  #dictA: Int32Array = new Int32Array(0);

  /** Builds the automaton; `language` selects Turkic casing for "tr" and "az". */
  constructor(terms: Iterable<string>, options: { language?: string } = {}) {
    this.#fold = foldTable(options.language === "tr" || options.language === "az");
    const seen = new Map<string, number>();
    this.terms = [];
    for (const raw of terms) {
      const t = raw.trim();
      if (t === "") continue;
      const [buf, n] = foldInto(t, this.#fold, new Uint32Array(t.length));
      const key = String.fromCodePoint(...buf.subarray(0, n));
      if (seen.has(key)) continue;
      seen.set(key, this.terms.length);
      this.#insert(buf.subarray(0, n), this.terms.length);
      this.terms.push(key);
    }
    this.#link();
    this.#dense();
  }

  #insert(cps: Uint32Array, term: number): void {
    let s = 0;
    for (const c of cps) {
      let t = this.#next[s]!.get(c);
      if (t === undefined) {
        t = this.#next.length;
        this.#next.push(new Map());
        this.#fail.push(0);
        this.#outLen.push(0);
        this.#outTerm.push(-1);
        this.#dict.push(-1);
        this.#next[s]!.set(c, t);
      }
      s = t;
    }
    this.#outLen[s] = cps.length;
    this.#outTerm[s] = term;
  }

  #link(): void {
    const queue: number[] = [];
    for (const t of this.#next[0]!.values()) queue.push(t);
    for (let qi = 0; qi < queue.length; qi++) {
      const s = queue[qi]!;
      for (const [c, t] of this.#next[s]!) {
        let f = this.#fail[s]!;
        while (f !== 0 && !this.#next[f]!.has(c)) f = this.#fail[f]!;
        const g = this.#next[f]!.get(c);
        this.#fail[t] = g !== undefined && g !== t ? g : 0;
        const ft = this.#fail[t]!;
        this.#dict[t] = this.#outLen[ft]! > 0 ? ft : this.#dict[ft]!;
        queue.push(t);
      }
    }
  }

  #dense(): void {
    const n = this.#next.length;
    const bmp = new Int32Array(65536);
    const symbols: number[] = [];
    for (const m of this.#next) {
      for (const c of m.keys()) {
        if (c < 65536 ? bmp[c] === 0 : !this.#classAstral.has(c)) {
          symbols.push(c);
          if (c < 65536) bmp[c] = symbols.length;
          else this.#classAstral.set(c, symbols.length);
        }
      }
    }
    const k = symbols.length + 1;
    const a = new Int32Array(n * k);
    // breadth-first order, so that a state's failure state is resolved before it
    const order = [0];
    for (let qi = 0; qi < order.length; qi++) {
      for (const t of this.#next[order[qi]!]!.values()) order.push(t);
    }
    for (const s of order) {
      const f = this.#fail[s]!;
      for (let x = 1; x < k; x++) {
        const t = this.#next[s]!.get(symbols[x - 1]!);
        a[s * k + x] = t !== undefined ? t : s === 0 ? 0 : a[f * k + x]!;
      }
    }
    this.#delta = a;
    this.#k = k;
    this.#classBmp = bmp;
    this.#out = Int32Array.from(this.#outLen);
    this.#dictA = Int32Array.from(this.#dict);
  }

  #scan(
    text: string,
    visit: (start: number, end: number, term: number, cps: Uint32Array, n: number) => boolean,
  ): void {
    const [cps, n] = foldInto(text, this.#fold, this.#buf);
    this.#buf = cps;
    const delta = this.#delta,
      k = this.#k,
      cls = this.#classBmp,
      out = this.#out,
      dict = this.#dictA,
      astral = this.#classAstral;
    let s = 0, words = 0, inWord = 0;
    this.lastWords = -1;
    for (let i = 0; i < n; i++) {
      const c = cps[i]!;
      const w = c < 65536 ? wordBmp[c]! : isWordCp(c) ? 1 : 0;
      if (w > inWord) words++;
      inWord = w;
      s = delta[s * k + (c < 65536 ? cls[c]! : astral.get(c) ?? 0)]!;
      if (out[s] === 0 && dict[s] === -1) continue;
      for (let o = out[s]! > 0 ? s : dict[s]!; o !== -1; o = dict[o]!) {
        const len = out[o]!;
        if (visit(i + 1 - len, i + 1, this.#outTerm[o]!, cps, n)) return;
      }
    }
    this.lastWords = words;
  }

  /** Words in the text of the last completed scan (`hits`, `matches`, `count`); -1 after an early stop. */
  lastWords: number = -1;

  /** A term as the automaton stores it (trimmed and case-folded), to look it up in `terms`. */
  key(term: string): string {
    const t = term.trim();
    const [buf, n] = foldInto(t, this.#fold, new Uint32Array(t.length));
    return String.fromCodePoint(...buf.subarray(0, n));
  }

  /** Every occurrence of every term (overlapping), sorted by start, longest first. */
  hits(text: string, mode: MatchMode = "word"): Hit[] {
    const out: Hit[] = [];
    this.#scan(text, (start, end, term, cps, n) => {
      if (mode === "word" && !bounded(cps, n, start, end)) return false;
      out.push({ start, end, term });
      return false;
    });
    return out.sort((a, b) => a.start - b.start || b.end - a.end);
  }

  /**
   * The hits a regular expression `term1|term2|…` with terms longest first would find with
   * `finditer`: leftmost, then longest, never overlapping.
   */
  matches(text: string, mode: MatchMode = "word"): Hit[] {
    const out: Hit[] = [];
    let cursor = 0;
    for (const h of this.hits(text, mode)) {
      if (h.start < cursor) continue;
      out.push(h);
      cursor = h.end;
    }
    return out;
  }

  /** Whether the text has at least one hit (stops at the first). */
  test(text: string, mode: MatchMode = "word"): boolean {
    let found = false;
    this.#scan(text, (start, end, _t, cps, n) => {
      if (mode === "word" && !bounded(cps, n, start, end)) return false;
      found = true;
      return true;
    });
    return found;
  }

  /** Number of hits (overlapping hits counted each). */
  count(text: string, mode: MatchMode = "word"): number {
    let k = 0;
    this.#scan(text, (start, end, _t, cps, n) => {
      if (mode !== "word" || bounded(cps, n, start, end)) k++;
      return false;
    });
    return k;
  }
}

function bounded(cps: Uint32Array, n: number, start: number, end: number): boolean {
  return (start === 0 || !isWordCp(cps[start - 1]!)) && (end === n || !isWordCp(cps[end]!));
}

/** The code points of a string (offsets into it are code-point offsets). */
export function codePointCount(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

/** Number of words (maximal runs of letters, digits, marks and "_") in `text`. */
export function countWords(text: string): number {
  let n = 0, inWord = false;
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      c = ((c - 0xd800) << 10) + (text.charCodeAt(i + 1) - 0xdc00) + 0x10000;
      i++;
    }
    const w = isWordCp(c);
    if (w && !inWord) n++;
    inWord = w;
  }
  return n;
}
