// Tokenizer statistics on hand-computed cases, one sentence per script; scripts from the Unicode
// Script property; real tokenizers on pieces whose segmentation is known; bad input.
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { readSentences } from "../../lib/crosslingual/corpus.ts";
import { romanize } from "../../lib/crosslingual/romanize.ts";
import { scriptMix, scriptOf } from "../../lib/crosslingual/script.ts";
import { tokenizerStats, usesSpaces, vocabularyOverlap } from "../../lib/crosslingual/stats.ts";
import { loadSubwordTokenizer, TOKENIZERS } from "../../lib/crosslingual/tokenizers.ts";
import { FormatError } from "../../lib/core/errors.ts";

// text, words, code points, UTF-8 bytes, non-ASCII bytes, words longer than one code point, main script
const CASES: [string, string[], number, number, number, number, string][] = [
  ["Hello world", ["Hello", "world"], 11, 11, 0, 2, "Latin"],
  ["Straße zu", ["Straße", "zu"], 9, 10, 2, 2, "Latin"],
  ["Привет, мир!", ["Привет", ",", "мир", "!"], 12, 21, 18, 2, "Cyrillic"],
  ["مرحبا بك", ["مرحبا", "بك"], 8, 15, 14, 2, "Arabic"],
  ["北京大学，很好。", ["北京", "大学", "，", "很", "好", "。"], 8, 24, 24, 2, "Han"],
  ["नमस्ते दुनिया", ["नमस्ते", "दुनिया"], 13, 37, 36, 2, "Devanagari"],
  ["안녕 세상", ["안녕", "세상"], 5, 13, 12, 2, "Hangul"],
  ["สวัสดีครับ", ["สวัสดี", "ครับ"], 10, 30, 30, 2, "Thai"],
];

Deno.test("chars and bytes: fertility, split share, byte pieces by hand, one sentence per script", async () => {
  const chars = await loadSubwordTokenizer("chars"), bytes = await loadSubwordTokenizer("bytes");
  for (const [text, words, cps, nbytes, nonAscii, multi, main] of CASES) {
    const s = [{ id: "1", text, words }];
    const c = tokenizerStats(chars, s);
    assertEquals([c.tokens, c.words, c.characters], [cps, words.length, cps], text);
    assertAlmostEquals(c.fertility, cps / words.length, 1e-12, text);
    assertAlmostEquals(c.splitShare, multi / words.length, 1e-12, text);
    assertEquals([c.bytePieceRate, c.unknownRate, c.charsPerToken], [0, 0, 1], text);
    const b = tokenizerStats(bytes, s);
    assertEquals(b.tokens, nbytes, text);
    assertAlmostEquals(b.bytePieceRate, nonAscii / nbytes, 1e-12, text);
    assertAlmostEquals(b.charsPerToken, cps / nbytes, 1e-12, text);
    assertEquals(scriptMix([text]).main, main, text);
  }
});

Deno.test("Unicode scripts: Common, Inherited and the shares of a mixed text", () => {
  assertEquals(
    ["a", "ж", "北", "ก", "ह", "한", "ع", "ክ", "1", "，", "\u0301", "\u094d"].map(scriptOf),
    [
      "Latin",
      "Cyrillic",
      "Han",
      "Thai",
      "Devanagari",
      "Hangul",
      "Arabic",
      "Ethiopic",
      "Common",
      "Common",
      "Inherited",
      "Devanagari",
    ],
  );
  const m = scriptMix(["Ok 北京!", "e\u0301"]);
  assertEquals(m.main, "Latin");
  assertEquals(m.shares, [["Latin", 3 / 7], ["Han", 2 / 7], ["Common", 1 / 7], [
    "Inherited",
    1 / 7,
  ]]);
  assertEquals(scriptMix(["123 !"]).main, "Common");
});

Deno.test("word-initial form: a space-separated language is tokenized after a space, Chinese and Thai not", () => {
  assert(usesSpaces([{ id: "1", text: "a b c", words: ["a", "b", "c"] }]));
  assert(!usesSpaces([{ id: "1", text: "北京大学很好", words: ["北京", "大学", "很", "好"] }]));
  assert(!usesSpaces([{ id: "1", text: "สวัสดี ครับผม", words: ["สวัสดี", "ครับ", "ผม", "x"] }]));
});

Deno.test("real tokenizers: known pieces, byte pieces of a Ge'ez character, word-initial spaces", async () => {
  const cl = await loadSubwordTokenizer("cl100k");
  assertEquals(cl.encode("hello").length, 1); // " hello" is one cl100k token
  assertEquals(cl.encode("hello", false), [15339]); // "hello"
  const ge = cl.encode("ክ", false); // U+12AD, three UTF-8 bytes, no cl100k token holds it whole
  assertEquals(ge.map((id) => cl.kind(id)), ["byte", "byte", "byte"]);
  const llama = await loadSubwordTokenizer("llama");
  assertEquals(llama.encode("ክ").map((id) => llama.kind(id)), ["normal", "byte", "byte", "byte"]); // ▁ + <0xE1><0x8A><0xAD>
  assertEquals(llama.encode("北", false).map((id) => llama.kind(id)), ["normal"]);
  for (const name of TOKENIZERS) {
    const t = await loadSubwordTokenizer(name);
    assertEquals(t.encode(""), [], name);
    const s = tokenizerStats(t, [{
      id: "1",
      text: "The city is old.",
      words: ["The", "city", "is", "old", "."],
    }]);
    assert(s.fertility >= 1 && s.bytePieceRate === 0, `${name}: ${s.fertility} ${s.bytePieceRate}`);
  }
});

Deno.test("an HF tokenizer.json loads by path; unknown names and broken files fail clearly", async () => {
  const path = new URL("../model/fixtures/tiny_bpe_tokenizer.json", import.meta.url).pathname;
  const t = await loadSubwordTokenizer(`hf:${path}`);
  assert(t.encode("hello", false).length > 0);
  await assertRejects(
    () => loadSubwordTokenizer("gpt5"),
    RangeError,
    "Unknown tokenizer 'gpt5' (expected one of bytes, chars, r50k",
  );
  const bad = await Deno.makeTempFile({ suffix: ".json" });
  await Deno.writeTextFile(bad, '{"model": {"type": "Nonsense"}}');
  await assertRejects(
    () => loadSubwordTokenizer(`hf:${bad}`),
    FormatError,
    `Cannot load tokenizer '${bad}'`,
  );
  await Deno.writeTextFile(bad, "{");
  await assertRejects(
    () => loadSubwordTokenizer(`hf:${bad}`),
    FormatError,
    `Cannot read tokenizer '${bad}'`,
  );
  await Deno.remove(bad);
  await assertRejects(
    () => loadSubwordTokenizer(`hf:${bad}`),
    Deno.errors.NotFound,
    `'${bad}'`,
  );
});

Deno.test("vocabulary overlap: hand cases", () => {
  const a = new Map([[1, 2], [2, 2]]);
  assertEquals(vocabularyOverlap(a, a), { jaccard: 1, weighted: 1 });
  assertEquals(vocabularyOverlap(a, new Map([[3, 5]])), { jaccard: 0, weighted: 0 });
  // p = (.5, .5, 0), q = (.25, 0, .75): Σmin = .25, Σmax = .5 + .5 + .75
  const o = vocabularyOverlap(a, new Map([[1, 1], [3, 3]]));
  assertAlmostEquals(o.jaccard, 1 / 3, 1e-15);
  assertAlmostEquals(o.weighted, 0.25 / 1.75, 1e-15);
});

Deno.test("romanisation: what any-ascii does to each PUD script", () => {
  assertEquals(romanize("Straße İstanbul"), "Strasse Istanbul");
  assertEquals(romanize("Привет"), "Privet");
  assertEquals(romanize("北京"), "BeiJing");
  assertEquals(romanize("안녕"), "AnNyeong");
  assertEquals(romanize("مرحبا بالعالم"), "mrhb bl`lm");
  assertEquals(romanize("नमस्ते दुनिया"), "nmste duniya");
  assertEquals(romanize("สวัสดีครับ"), "swasdikhrab");
  assertEquals(romanize("ክፍል ሁለት"), "kfl hulet");
  assertEquals(romanize("Ελληνικά"), "Ellinika");
});

Deno.test("corpus: a language with no text, or a bad line, fails in one sentence", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/pud_xx.jsonl`, '{"text": "a b", "words": ["a", "b"]}\n');
  assertEquals((await readSentences(dir, "xx")).length, 1);
  await assertRejects(
    () => readSentences(dir, "am"),
    RangeError,
    `No text for language 'am': '${dir}/pud_am.jsonl' does not exist (have: xx)`,
  );
  await Deno.writeTextFile(`${dir}/pud_yy.jsonl`, "\n");
  await assertRejects(() => readSentences(dir, "yy"), FormatError, "has no sentences");
  await Deno.writeTextFile(`${dir}/pud_zz.jsonl`, '{"text": "a"}\n');
  await assertRejects(
    () => readSentences(dir, "zz"),
    FormatError,
    `'${dir}/pud_zz.jsonl' line 1: expected "text"`,
  );
  await Deno.remove(dir, { recursive: true });
});
