#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out
/**
 * Tokenizer statistics per tokenizer × language over word-segmented parallel text (UD PUD), in the
 * native script and romanised: fertility, continued-word share, byte-piece and unknown rates,
 * characters per token, vocabulary overlap between languages, and each language's script mix.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { barChart, ColorMap, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { availableLanguages, readSentences, type Sentence } from "../lib/crosslingual/corpus.ts";
import { romanize } from "../lib/crosslingual/romanize.ts";
import { scriptMix } from "../lib/crosslingual/script.ts";
import {
  type TokenizerStats,
  tokenizerStats,
  usesSpaces,
  vocabularyOverlap,
} from "../lib/crosslingual/stats.ts";
import {
  loadSubwordTokenizer,
  type SubwordTokenizer,
  TOKENIZERS,
} from "../lib/crosslingual/tokenizers.ts";

const USAGE = `
tokenizer_stats.ts — how real tokenizers cut the same sentences in 10 languages and 7 scripts,
natively and romanised (cross-lingual transfer and script, Tufa et al.; statistics after Rust et
al. 2021).

Usage: scripts/tokenizer_stats.ts [options]
       deno task tokenizer-stats [-- options]

Options:
  --data DIR          folder of pud_<lang>.jsonl files (default data/multilingual_text/ud_pud)
  --languages A,B     languages (default: every pud_*.jsonl in --data)
  --tokenizers A,B    ${TOKENIZERS.join(", ")}, or hf:<path to tokenizer.json>
                      (default: all of those names)
  --limit N           first N sentences per language (default: all)
  --no-romanised      skip the romanised statistics
  --out DIR           output folder (default out/tokenizer_stats/<run-id>)
                      a chosen folder must be new or empty, unless --overwrite

Fertility is tokens of the running text per gold UD word; the split share is the share of words
that, tokenized alone (after a space, except in languages written without spaces between words),
give more than one token; a byte piece is a token that is not whole characters (SentencePiece
byte fallback, or a byte-level BPE token that splits a character). Romanisation is npm any-ascii.
Outputs: stats.csv, overlap.csv, scripts.csv, report.md, report.html, chart-*.vl.json (each
chart's Vega-Lite spec and data).
`;

const FORMS = ["native", "romanised"] as const;

await runScript({ name: "tokenizer_stats.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string", default: "data/multilingual_text/ud_pud" },
      languages: { type: "string" },
      tokenizers: { type: "string", default: TOKENIZERS.join(",") },
      limit: { type: "string" },
      "no-romanised": { type: "boolean", default: false },
      ...RUN_FOLDER_FLAGS,
    },
  });
  const names = values.tokenizers.split(",").map((s) => s.trim()).filter((s) => s);
  requirePermissions("tokenizer_stats.ts", [
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/tokenizer_stats" },
    { name: "read", path: values.out ?? "out/tokenizer_stats" },
    ...names.filter((n) => n.startsWith("hf:")).map((n) => ({
      name: "read" as const,
      path: n.slice(3),
    })),
  ]);
  const limit = values.limit === undefined ? Infinity : intFlag("--limit", values.limit, 1);
  const langs = values.languages?.split(",").map((s) => s.trim()).filter((s) => s) ??
    availableLanguages(values.data);
  if (langs.length === 0) throw new RangeError(`No pud_<lang>.jsonl files in '${values.data}'`);
  const forms = values["no-romanised"] ? FORMS.slice(0, 1) : FORMS;
  const t0 = performance.now();
  const text = new Map<string, Sentence[]>();
  for (const l of langs) text.set(l, await readSentences(values.data, l, limit));
  // romanised once per language, not once per tokenizer
  const roman = new Map([...text].map(([l, ss]) => [
    l,
    ss.map((x) => ({ id: x.id, text: romanize(x.text), words: x.words.map(romanize) })),
  ]));
  const tokenizers: SubwordTokenizer[] = [];
  for (const n of names) tokenizers.push(await loadSubwordTokenizer(n));

  type Row = { tokenizer: string; language: string; form: string; stats: TokenizerStats };
  const rows: Row[] = [];
  const bar = progress("tokenizer × language", tokenizers.length * langs.length);
  for (const tok of tokenizers) {
    for (const l of langs) {
      const sentences = text.get(l)!;
      const spaced = usesSpaces(sentences);
      for (const form of forms) {
        const stats = tokenizerStats(tok, form === "native" ? sentences : roman.get(l)!, {
          spaced,
        });
        rows.push({ tokenizer: tok.name, language: l, form, stats });
      }
      bar.tick();
    }
  }
  bar.stop();
  const seconds = (performance.now() - t0) / 1000;

  const mixes = langs.map((l) => ({
    language: l,
    native: scriptMix(text.get(l)!.map((s) => s.text)),
    romanised: scriptMix(roman.get(l)!.map((s) => s.text)),
  }));
  const statsCsv = stringify([
    [
      "tokenizer",
      "language",
      "form",
      "main_script",
      "sentences",
      "words",
      "tokens",
      "fertility",
      "split_share",
      "byte_piece_rate",
      "unknown_rate",
      "chars_per_token",
      "vocab_used",
    ],
    ...rows.map((r) => [
      r.tokenizer,
      r.language,
      r.form,
      mixes.find((m) => m.language === r.language)![r.form as "native" | "romanised"].main,
      r.stats.sentences,
      r.stats.words,
      r.stats.tokens,
      r.stats.fertility,
      r.stats.splitShare,
      r.stats.bytePieceRate,
      r.stats.unknownRate,
      r.stats.charsPerToken,
      r.stats.vocabulary.size,
    ]),
  ]);
  const overlapRows: (string | number)[][] = [];
  for (const tok of tokenizers) {
    for (const form of forms) {
      const of = (l: string) =>
        rows.find((r) => r.tokenizer === tok.name && r.language === l && r.form === form)!.stats;
      for (let i = 0; i < langs.length; i++) {
        for (let j = i + 1; j < langs.length; j++) {
          const o = vocabularyOverlap(of(langs[i]!).vocabulary, of(langs[j]!).vocabulary);
          overlapRows.push([tok.name, form, langs[i]!, langs[j]!, o.jaccard, o.weighted]);
        }
      }
    }
  }
  const scriptsCsv = stringify([
    ["language", "form", "script", "share"],
    ...mixes.flatMap((m) => [
      ...m.native.shares.map(([s, v]) => [m.language, "native", s, v]),
      ...m.romanised.shares.map(([s, v]) => [m.language, "romanised", s, v]),
    ]),
  ]);

  const table = (form: string, pick: (s: TokenizerStats) => number) =>
    markdownTable(
      tokenizers.map((t) => ({
        tokenizer: t.name,
        ...Object.fromEntries(langs.map((l) => [
          l,
          pick(
            rows.find((r) => r.tokenizer === t.name && r.language === l && r.form === form)!.stats,
          ),
        ])),
      })),
      ["tokenizer", ...langs],
      2,
    );
  const meanOverlap = markdownTable(
    tokenizers.flatMap((t) =>
      forms.map((form) => {
        const mine = overlapRows.filter((o) => o[0] === t.name && o[1] === form);
        const avg = (k: number) =>
          mine.reduce((s, o) => s + (o[k] as number), 0) / (mine.length || 1);
        return { tokenizer: t.name, form, "mean Jaccard": avg(4), "mean weighted Jaccard": avg(5) };
      })
    ),
    ["tokenizer", "form", "mean Jaccard", "mean weighted Jaccard"],
    3,
  );
  const examples = langs.map((l) => {
    const s = text.get(l)![0]!.text;
    const clip = (t: string) => (t.length > 70 ? `${t.slice(0, 70)}…` : t);
    return {
      language: l,
      script: mixes.find((m) => m.language === l)!.native.main,
      native: clip(s),
      romanised: clip(romanize(s)),
    };
  });
  const totalSentences = langs.reduce((s, l) => s + text.get(l)!.length, 0);
  const md = [
    "# Tokenizer statistics",
    "",
    `${totalSentences} sentences in ${langs.length} languages from '${values.data}', ${tokenizers.length} tokenizers, ${
      forms.join(" and ")
    }; ${seconds.toFixed(1)} s.`,
    "",
    "Tokenizers: " + tokenizers.map((t) => `**${t.name}** ${t.description}`).join("; ") + ".",
    "",
    "## Fertility (tokens per word), native script",
    "",
    table("native", (s) => s.fertility),
    ...(forms.length > 1
      ? ["", "## Fertility, romanised (any-ascii)", "", table("romanised", (s) => s.fertility)]
      : []),
    "",
    "## Share of words split into several tokens, native",
    "",
    table("native", (s) => s.splitShare),
    "",
    "## Byte-piece rate (tokens that are not whole characters), native",
    "",
    table("native", (s) => s.bytePieceRate),
    "",
    "## Characters per token, native",
    "",
    table("native", (s) => s.charsPerToken),
    "",
    "## Vocabulary overlap between languages (mean over language pairs; per pair in overlap.csv)",
    "",
    meanOverlap,
    "",
    "## Scripts (Unicode Script property) and romanisation",
    "",
    markdownTable(
      mixes.map((m) => ({
        language: m.language,
        "main script": m.native.main,
        "script mix": m.native.shares.slice(0, 3).map(([s, v]) => `${s} ${(100 * v).toFixed(1)}%`)
          .join(", "),
        "romanised mix": m.romanised.shares.slice(0, 2).map(([s, v]) =>
          `${s} ${(100 * v).toFixed(1)}%`
        ).join(", "),
      })),
      ["language", "main script", "script mix", "romanised mix"],
    ),
    "",
    markdownTable(examples, ["language", "script", "native", "romanised"]),
  ].join("\n");
  // one colour per tokenizer in every chart
  const colors = new ColorMap(tokenizers.map((t) => t.name));
  const fertilityOf = (t: string, l: string, form: string) =>
    rows.find((r) => r.tokenizer === t && r.language === l && r.form === form)!.stats.fertility;
  const width = Math.min(960, Math.max(520, langs.length * (tokenizers.length * 9 + 14)));
  const fert = (form: string) =>
    barChart({
      name: `fertility-${form}`,
      title: `Fertility per language, ${form}`,
      section: form === "native" ? "Fertility (tokens per word)" : "Fertility, romanised",
      data: langs.flatMap((l) =>
        tokenizers.map((t) => ({
          language: l,
          tokenizer: t.name,
          "tokens per word": fertilityOf(t.name, l, form),
        }))
      ),
      x: "language",
      y: "tokens per word",
      series: "tokenizer",
      colors,
      width,
      height: 320,
    });
  const subword = tokenizers.filter((t) => t.name !== "bytes" && t.name !== "chars");
  const ratio = barChart({
    name: "romanised-over-native",
    title: "Romanised ÷ native fertility (below 1: romanising helps)",
    section: "Fertility, romanised",
    data: langs.flatMap((l) =>
      subword.map((t) => ({
        language: l,
        tokenizer: t.name,
        "romanised ÷ native": fertilityOf(t.name, l, "romanised") /
          fertilityOf(t.name, l, "native"),
      }))
    ),
    x: "language",
    y: "romanised ÷ native",
    series: "tokenizer",
    colors,
    barBase: 1,
    rules: [{ y: 1, label: "1 (no change)" }],
    width,
    height: 320,
  });
  const files = await writeOutputs(await runFolder("tokenizer_stats", values), {
    "stats.csv": statsCsv,
    "overlap.csv": stringify([[
      "tokenizer",
      "form",
      "language_a",
      "language_b",
      "jaccard",
      "weighted_jaccard",
    ], ...overlapRows]),
    "scripts.csv": scriptsCsv,
    "report.md": md + "\n",
    ...(await reportFiles({
      title: "Tokenizer statistics",
      markdown: md,
      charts: [fert("native"), ...(forms.length > 1 ? [fert("romanised"), ratio] : [])],
    })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
