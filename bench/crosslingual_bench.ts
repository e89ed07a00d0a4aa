// tokenizer_stats over every PUD sentence (10 languages × 1,000) with each tokenizer, native
// script (`deno task bench`): the chars tokenizer is the baseline, so each ratio reads as the cost
// of real subword tokenization on top of reading the statistics. Each case runs over all 10,000
// sentences; `n` is small because one pass takes seconds.
import { availableLanguages, readSentences, type Sentence } from "../lib/crosslingual/corpus.ts";
import { romanize } from "../lib/crosslingual/romanize.ts";
import { tokenizerStats } from "../lib/crosslingual/stats.ts";
import { loadSubwordTokenizer, TOKENIZERS } from "../lib/crosslingual/tokenizers.ts";

const text = new Map<string, Sentence[]>();
const PUD = "data/multilingual_text/ud_pud";
for (const l of availableLanguages(PUD)) text.set(l, await readSentences(PUD, l));
const words = [...text.values()].flat().reduce((s, x) => s + x.words.length, 0);

for (const name of TOKENIZERS) {
  const tok = await loadSubwordTokenizer(name);
  Deno.bench({
    name: `${name}: 10,000 sentences, ${words} words`,
    group: "tokenizer_stats native",
    baseline: name === "chars",
    n: 3,
    warmup: 1,
    fn: () => {
      for (const s of text.values()) tokenizerStats(tok, s);
    },
  });
}

const o200k = await loadSubwordTokenizer("o200k");
Deno.bench({
  name: "o200k romanised (any-ascii on every sentence and word)",
  group: "romanised",
  n: 3,
  warmup: 1,
  fn: () => {
    for (const s of text.values()) tokenizerStats(o200k, s, { transform: romanize });
  },
});
