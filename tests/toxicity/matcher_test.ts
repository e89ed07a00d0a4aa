// The lexicon matcher against an independent regular-expression implementation on fresh random
// texts, and hand cases: word boundaries in several scripts, Turkish casing, code-point offsets.
import { assert, assertEquals } from "@std/assert";
import { countWords, type Hit, LexiconMatcher } from "../../lib/toxicity/matcher.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

/** finditer of "t1|t2|…" (longest first, case-insensitive), offsets converted to code points. */
function regexMatches(terms: string[], text: string, word: boolean): [number, number][] {
  const alts = [...terms].sort((a, b) => b.length - a.length).map((t) =>
    t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  );
  const body = `(?:${alts.join("|")})`;
  const re = new RegExp(
    word ? `(?<![\\p{L}\\p{N}\\p{M}_])${body}(?![\\p{L}\\p{N}\\p{M}_])` : body,
    "giu",
  );
  const cp = (i: number) => [...text.slice(0, i)].length;
  return [...text.matchAll(re)].map((m) => [cp(m.index), cp(m.index + m[0].length)]);
}

const pairs = (hits: Hit[]) => hits.map((h) => [h.start, h.end] as [number, number]);

Deno.test("leftmost-longest matches equal a regex alternation on fresh random texts", () => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const alphabet = ["a", "b", "A", "B", " ", "c", "-", "é", "😀"];
  for (let trial = 0; trial < 200; trial++) {
    const word = () => Array.from({ length: 1 + rng.int(4) }, () => "abc"[rng.int(3)]).join("");
    const terms = Array.from({ length: 1 + rng.int(6) }, word);
    const text = Array.from({ length: rng.int(60) }, () => alphabet[rng.int(alphabet.length)]).join(
      "",
    );
    const m = new LexiconMatcher(terms);
    for (const mode of ["substring", "word"] as const) {
      assertEquals(
        pairs(m.matches(text, mode)),
        regexMatches(terms, text, mode === "word"),
        `seed ${seed} ${mode} ${JSON.stringify({ terms, text })}`,
      );
      assertEquals(m.test(text, mode), regexMatches(terms, text, mode === "word").length > 0);
    }
    m.hits(text, "word");
    assertEquals(m.lastWords, countWords(text), `seed ${seed}`);
    assertEquals(countWords(text), (text.match(/[\p{L}\p{N}\p{M}_]+/gu) ?? []).length);
    // every hit: each occurrence of each term, overlapping
    let all = 0;
    for (const t of new Set(terms.map((x) => x.toLowerCase()))) {
      const low = text.toLowerCase();
      for (let i = low.indexOf(t); i >= 0; i = low.indexOf(t, i + 1)) all++;
    }
    assertEquals(m.count(text, "substring"), all, `seed ${seed}`);
  }
});

Deno.test("word boundaries in Latin, Arabic, Cyrillic and Devanagari; offsets in code points", () => {
  const m = new LexiconMatcher(["ass", "idiot", "كلب", "дурак", "कुत्ता"]);
  const text = "😀 class IDIOT, الكلب كلب! дураки дурак कुत्ता";
  const word = m.hits(text, "word").map((h) => [...text].slice(h.start, h.end).join(""));
  assertEquals(word, ["IDIOT", "كلب", "дурак", "कुत्ता"]);
  const sub = m.hits(text, "substring").map((h) => [...text].slice(h.start, h.end).join(""));
  assertEquals(sub, ["ass", "IDIOT", "كلب", "كلب", "дурак", "дурак", "कुत्ता"]);
  assertEquals(m.hits(text, "word")[0]!.start, 8); // after one astral emoji, a space and "class "
});

Deno.test("Turkish casing: I ↔ ı and İ ↔ i in Turkish, İ → i elsewhere", () => {
  const tr = new LexiconMatcher(["ırak", "istanbul"], { language: "tr" });
  assertEquals(tr.test("IRAK", "word"), true);
  assertEquals(tr.test("İSTANBUL", "word"), true);
  assertEquals(tr.test("ISTANBUL", "word"), false); // I is ı in Turkish
  const en = new LexiconMatcher(["istanbul"]);
  assertEquals(en.test("İstanbul", "word"), true);
  assertEquals(en.test("ISTANBUL", "word"), true);
  assertEquals(en.hits("İstanbul")[0], { start: 0, end: 8, term: 0 });
});

Deno.test("terms are trimmed, folded and de-duplicated; overlapping terms are all reported", () => {
  const m = new LexiconMatcher([" Ass ", "ass", "", "asshole", "hole"]);
  assertEquals(m.terms, ["ass", "asshole", "hole"]);
  assertEquals(pairs(m.hits("asshole", "substring")), [[0, 7], [0, 3], [3, 7]]);
  assertEquals(pairs(m.matches("asshole", "substring")), [[0, 7]]);
  assert(!new LexiconMatcher([]).test("anything"));
});
