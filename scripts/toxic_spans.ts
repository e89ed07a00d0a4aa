#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out
/**
 * Toxic spans across domains (Schouten et al.): lexicon detectors (off the shelf and constructed
 * from training spans), a bag-of-words rationale extractor, gap filling and a binary gate, grid
 * searched on development splits; in-domain SemEval-2021 results, the cross-domain matrix over
 * SemEval-2021 and the ACL-2022 (typed) spans, post-level results on GermEval-2018 and
 * OffensEval-2020, and the error analysis by lexicon membership.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { granted, requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { heatmapChart, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { BowLogReg, wordTokens } from "../lib/toxicity/classifier.ts";
import { constructLexicon, countTokens, scoreTokens } from "../lib/toxicity/construct.ts";
import {
  ACL_TYPES,
  type LabelledPost,
  readAclToxicSpans,
  readGermEval,
  readOffensEval,
  readSemEval,
  splitOfId,
} from "../lib/toxicity/datasets.ts";
import { ldnoobw, type Lexicon, readHurtLex } from "../lib/toxicity/lexicon.ts";
import { LexiconMatcher, type MatchMode } from "../lib/toxicity/matcher.ts";
import {
  bestTrial,
  DEFAULT_GRID,
  lexiconDetector,
  type PostProcessing,
  predictSpans,
  searchConstructedLexicon,
  searchPostProcessing,
  type SpanDetector,
  type Trial,
} from "../lib/toxicity/search.ts";
import { evaluateSpans, type SpanPost, type SpanReport } from "../lib/toxicity/spans.ts";

const USAGE = `
toxic_spans.ts — toxic-span detection in and across domains with lexicons and a transparent
classifier (cross-domain toxic spans, Schouten et al.), scored with the SemEval-2021 span F1.

Usage: scripts/toxic_spans.ts [options]
       deno task toxic-spans [-- options]

Options:
  --data DIR           lmkit's data folder: toxic_spans/semeval2021, toxic_spans/acl2022_raw,
                       toxicity_labelled/germeval2018 (default data)
  --shared DIR         where HurtLex (toxicity/hurtlex, NonCommercial) and OffensEval-2020
                       (toxicity_labelled/offenseval2020) are read from when present
                       (default ../shared/data)
  --mode M             lexicon span matching: substring (the authors' regex) | word (default substring)
  --min-type-posts N   ACL-2022 span types with fewer test posts are left out (default 20)
  --quick              a small grid (θ 5 values, min occurrences 1 and 5, k 0 and 1)
  --out DIR            output folder (default out/toxic_spans/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite

Per-post F1 is SemEval-2021's (both empty → 1, one empty → 0); aggregates are per-post means
over all posts, toxic and non-toxic posts (precision/recall skip undefined posts). Every
configuration (θ ∈ linspace(0, 0.95, 20), min occurrences {1,3,5,7,11}, gap filling k ∈ {0,1,∞},
gate on/off; rationale threshold) is chosen on the development split and reported on test.
ACL-2022 gold: characters marked by more than half of a comment's annotators; comments also in
SemEval-2021 keep SemEval's split, the others are split 80/10/10 by a hash of their id.
Outputs: results.json, in_domain.csv, cross_domain.csv, post_level.csv, errors.csv, report.md,
report.html, chart-cross-domain-f1.vl.json (the chart's Vega-Lite spec and data).
`;

interface Domain {
  name: string;
  train: SpanPost[];
  dev: SpanPost[];
  test: SpanPost[];
}

function f(v: number): number {
  return Number.isFinite(v) ? Number(v.toFixed(4)) : NaN;
}

function summary(r: SpanReport) {
  return {
    "F1 (all)": f(r.all.f1),
    "F1 (toxic)": f(r.toxic.f1),
    "F1 (non-toxic)": f(r.nonToxic.f1),
    "P (all)": f(r.all.precision),
    "R (all)": f(r.all.recall),
    "non-toxic acc.": f(r.nonToxicAccuracy),
    posts: r.all.n,
  };
}

function cfg(t: Trial): string {
  return Object.entries(t.config).map(([k, v]) =>
    `${k}=${typeof v === "number" ? (Number.isFinite(v) ? Number(v.toFixed(3)) : "∞") : v}`
  ).join(" ");
}

async function exists(p: string): Promise<boolean> {
  return await Deno.stat(p).then(() => true, () => false);
}

await runScript({ name: "toxic_spans.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      data: { type: "string", default: "data" },
      shared: { type: "string", default: "../shared/data" },
      mode: { type: "string", default: "substring" },
      "min-type-posts": { type: "string", default: "20" },
      quick: { type: "boolean", default: false },
      ...RUN_FOLDER_FLAGS,
    },
  });
  const mode = values.mode as MatchMode;
  if (mode !== "substring" && mode !== "word") {
    throw new RangeError(`--mode '${values.mode}' is not substring or word`);
  }
  requirePermissions("toxic_spans.ts", [
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/toxic_spans" },
    { name: "read", path: values.out ?? "out/toxic_spans" },
  ]);
  const minTypePosts = intFlag("--min-type-posts", values["min-type-posts"], 1);
  const grid = values.quick
    ? { thetas: [0, 0.2, 0.4, 0.6, 0.8], minOccurrences: [1, 5], fills: [0, 1] }
    : DEFAULT_GRID;
  const notes: string[] = [];
  const readable = granted({ name: "read", path: values.shared });
  const shared = readable && await exists(values.shared) ? values.shared : undefined;
  if (!shared) {
    const why = readable ? "does not exist" : "is not readable here (no read permission for it)";
    notes.push(`'${values.shared}' ${why}: HurtLex and OffensEval are left out.`);
  }

  // ---- data
  const sem = `${values.data}/toxic_spans/semeval2021`;
  const semeval: Domain = {
    name: "semeval",
    train: await readSemEval(`${sem}/tsd_train.csv`),
    dev: await readSemEval(`${sem}/tsd_trial.csv`),
    test: await readSemEval(`${sem}/tsd_test.csv`),
  };
  const semSplit = new Map<string, "train" | "dev" | "test">();
  for (const s of ["train", "dev", "test"] as const) {
    for (const p of semeval[s]) semSplit.set(p.text, s);
  }
  const acl = await readAclToxicSpans(`${values.data}/toxic_spans/acl2022_raw`, {
    skipBadSpans: true,
  });
  notes.push(
    `ACL-2022: ${acl.comments.length} comments, ${acl.skippedSpans} spans lying outside their comment skipped; ${
      acl.comments.filter((c) => semSplit.has(c.text)).length
    } comments are also in SemEval-2021 and keep its split.`,
  );
  const aclDomain = (
    name: string,
    pick: (c: typeof acl.comments[number]) => number[] | null,
  ): Domain => {
    const d: Domain = { name, train: [], dev: [], test: [] };
    for (const c of acl.comments) {
      const gold = pick(c);
      if (gold === null) continue;
      d[semSplit.get(c.text) ?? splitOfId(c.id)].push({
        id: `acl:${c.id}`,
        text: c.text,
        gold,
        toxic: gold.length > 0,
      });
    }
    return d;
  };
  const domains: Domain[] = [semeval, aclDomain("acl", (c) => c.gold)];
  for (const t of ACL_TYPES) {
    const d = aclDomain(`acl-${t}`, (c) => (c.byType[t]!.length > 0 ? c.byType[t]! : null));
    if (d.test.length >= minTypePosts && d.dev.length > 0) domains.push(d);
    else {notes.push(
        `ACL-2022 type '${t}': ${d.test.length} test posts (< ${minTypePosts}), left out of the matrix.`,
      );}
  }

  // ---- gates and constructed lexicons per domain
  const gates = new Map<string, BowLogReg>();
  const chosen = new Map<string, { trial: Trial; lexicon: string[] }>();
  const bar = progress("lexicon grid search per domain", domains.length);
  for (const d of domains) {
    const gate = BowLogReg.train(d.train.map((p) => p.text), d.train.map((p) => p.toxic));
    gates.set(d.name, gate);
    const trials = searchConstructedLexicon(d.train, d.dev, { grid, gate, mode });
    const b = bestTrial(trials);
    const lexicon = constructLexicon(
      scoreTokens(countTokens(d.train)),
      b.config.theta as number,
      b.config.minOccurrences as number,
    );
    chosen.set(d.name, { trial: b, lexicon });
    console.error(
      `${d.name}: ${d.train.length}/${d.dev.length}/${d.test.length} posts; lexicon ${
        cfg(b)
      } (${lexicon.length} words), dev F1 ${b.report.all.f1.toFixed(4)}`,
    );
    bar.tick();
  }
  bar.stop();

  // ---- off-the-shelf lexicons
  const offShelf: Lexicon[] = [ldnoobw("en")];
  const hurtlexPath = (lang: string) =>
    `${shared}/toxicity/hurtlex/hurtlex_${lang.toUpperCase()}.tsv`;
  if (shared && await exists(hurtlexPath("en"))) {
    offShelf.push(await readHurtLex(hurtlexPath("en"), { level: "conservative", language: "en" }));
    offShelf.push(await readHurtLex(hurtlexPath("en"), { level: "inclusive", language: "en" }));
  }

  // ---- in-domain SemEval-2021
  const semGate = gates.get("semeval")!;
  const inDomain: Record<string, unknown>[] = [];
  const runDetector = (
    name: string,
    detect: SpanDetector,
    trials: Trial[],
    extra: Record<string, unknown> = {},
  ) => {
    const b = bestTrial(trials);
    const report = evaluateSpans(
      semeval.test,
      predictSpans(detect, semeval.test, b.config as unknown as PostProcessing, semGate),
    );
    inDomain.push({
      detector: name,
      "chosen on dev": cfg(b),
      "dev F1": f(b.report.all.f1),
      ...summary(report),
      ...extra,
    });
    return report;
  };
  for (const lex of offShelf) {
    const detect = lexiconDetector(lex.entries.map((e) => e.term), mode);
    runDetector(
      `${lex.name} (${mode})`,
      detect,
      searchPostProcessing(detect, semeval.dev, { fills: grid.fills, gate: semGate }),
      { "lexicon size": lex.entries.length },
    );
  }
  const semLex = chosen.get("semeval")!;
  runDetector("constructed from SemEval train", lexiconDetector(semLex.lexicon, mode), [
    semLex.trial,
  ], { "lexicon size": semLex.lexicon.length });
  // rationale: words of the gate classifier above a weight threshold
  const positive = [...semGate.weights.values()].filter((w) => w > 0).sort((a, b) => a - b);
  const q99 = positive[Math.floor(positive.length * 0.99)] ?? 1;
  const rationaleTrials: Trial[] = [];
  for (let i = 0; i <= (values.quick ? 5 : 20); i++) {
    const t = (q99 * i) / (values.quick ? 5 : 20);
    for (
      const tr of searchPostProcessing((text) => semGate.rationale(text, t), semeval.dev, {
        fills: grid.fills,
        gate: semGate,
      })
    ) {
      rationaleTrials.push({ ...tr, config: { threshold: t, ...tr.config } });
    }
  }
  const rb = bestTrial(rationaleTrials);
  const rationaleReport = evaluateSpans(
    semeval.test,
    predictSpans(
      (text) => semGate.rationale(text, rb.config.threshold as number),
      semeval.test,
      rb.config as unknown as PostProcessing,
      semGate,
    ),
  );
  inDomain.push({
    detector: "BoW logistic-regression rationale",
    "chosen on dev": cfg(rb),
    "dev F1": f(rb.report.all.f1),
    ...summary(rationaleReport),
  });

  // ---- cross-domain matrix (F1 over all test posts of the evaluation domain)
  const rowsX: { name: string; detect: SpanDetector; post: PostProcessing; gate?: BowLogReg }[] =
    [];
  for (const d of domains) {
    const c = chosen.get(d.name)!;
    rowsX.push({
      name: `constructed: ${d.name}`,
      detect: lexiconDetector(c.lexicon, mode),
      post: c.trial.config as unknown as PostProcessing,
      gate: gates.get(d.name)!,
    });
  }
  for (const lex of offShelf) {
    rowsX.push({
      name: lex.name,
      detect: lexiconDetector(lex.entries.map((e) => e.term), mode),
      post: { fill: 0, gate: false },
    });
  }
  const matrix = rowsX.map((r) =>
    domains.map((d) => evaluateSpans(d.test, predictSpans(r.detect, d.test, r.post, r.gate)).all.f1)
  );

  // ---- post-level: toxic iff at least one word-boundary lexicon hit
  const postSets: { name: string; lang: string; posts: LabelledPost[]; train?: LabelledPost[] }[] =
    [];
  const ge = `${values.data}/toxicity_labelled/germeval2018`;
  postSets.push({
    name: "germeval2018-de (test)",
    lang: "de",
    posts: await readGermEval(`${ge}/germeval2018.test.txt`),
    train: await readGermEval(`${ge}/germeval2018.training.txt`),
  });
  for (const lang of ["tr", "ar"]) {
    const p = `${shared}/toxicity_labelled/offenseval2020/${lang}_dev.tsv`;
    if (shared && await exists(p)) {
      postSets.push({ name: `offenseval2020-${lang} (dev)`, lang, posts: await readOffensEval(p) });
    }
  }
  const postLevel: Record<string, unknown>[] = [];
  const binary = (
    name: string,
    set: typeof postSets[number],
    pred: (t: string) => boolean,
    size?: number,
  ) => {
    let tp = 0, fp = 0, fn = 0, tn = 0;
    for (const p of set.posts) {
      const y = pred(p.text);
      if (y && p.toxic) tp++;
      else if (y) fp++;
      else if (p.toxic) fn++;
      else tn++;
    }
    const P = tp / (tp + fp || 1), R = tp / (tp + fn || 1);
    postLevel.push({
      data: set.name,
      detector: name,
      ...(size ? { "lexicon size": size } : {}),
      precision: f(P),
      recall: f(R),
      F1: f(P + R ? (2 * P * R) / (P + R) : 0),
      accuracy: f((tp + tn) / set.posts.length),
      posts: set.posts.length,
    });
  };
  for (const set of postSets) {
    const lexes: Lexicon[] = [ldnoobw(set.lang)];
    if (shared && await exists(hurtlexPath(set.lang))) {
      lexes.push(
        await readHurtLex(hurtlexPath(set.lang), { level: "conservative", language: set.lang }),
      );
      lexes.push(
        await readHurtLex(hurtlexPath(set.lang), { level: "inclusive", language: set.lang }),
      );
    }
    for (const lex of lexes) {
      const m = new LexiconMatcher(lex.entries.map((e) => e.term), { language: set.lang });
      binary(`${lex.name} (word)`, set, (t) => m.test(t, "word"), lex.entries.length);
    }
    if (set.train) {
      const clf = BowLogReg.train(set.train.map((p) => p.text), set.train.map((p) => p.toxic));
      binary(
        "BoW logistic regression (trained on GermEval training)",
        set,
        (t) => clf.probability(t) >= 0.5,
      );
    }
  }

  // ---- error analysis on SemEval test: words missed / wrongly flagged, by lexicon membership
  const errors: (string | number)[][] = [];
  const errorSummary: Record<string, unknown>[] = [];
  const analyse = (
    name: string,
    lexicon: Set<string>,
    detect: SpanDetector,
    post: PostProcessing,
    gate?: BowLogReg,
  ) => {
    const preds = predictSpans(detect, semeval.test, post, gate);
    const counts = {
      fnIn: new Map<string, number>(),
      fnOut: new Map<string, number>(),
      fpIn: new Map<string, number>(),
      fpOut: new Map<string, number>(),
    };
    semeval.test.forEach((p, i) => {
      const g = new Set(p.gold), pr = new Set(preds[i]);
      for (const t of wordTokens(p.text)) {
        let inGold = false, inPred = false;
        for (let x = t.start; x < t.end; x++) {
          inGold ||= g.has(x);
          inPred ||= pr.has(x);
        }
        const key = inGold && !inPred ? "fn" : !inGold && inPred ? "fp" : null;
        if (!key) continue;
        const m = counts[`${key}${lexicon.has(t.word) ? "In" : "Out"}` as keyof typeof counts];
        m.set(t.word, (m.get(t.word) ?? 0) + 1);
      }
    });
    const total = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0);
    const top = (m: Map<string, number>) =>
      [...m].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([w, c]) => `${w} (${c})`).join(", ");
    errorSummary.push({
      detector: name,
      "FN in lexicon": total(counts.fnIn),
      "FN not in lexicon": total(counts.fnOut),
      "FP in lexicon": total(counts.fpIn),
      "FP not in lexicon": total(counts.fpOut),
      "top FN not in lexicon": top(counts.fnOut),
      "top FP in lexicon": top(counts.fpIn),
    });
    for (const [kind, m] of Object.entries(counts)) {
      for (const [w, c] of m) errors.push([name, kind, w, c]);
    }
  };
  analyse(
    "constructed from SemEval train",
    new Set(semLex.lexicon),
    lexiconDetector(semLex.lexicon, mode),
    semLex.trial.config as unknown as PostProcessing,
    semGate,
  );
  const ld = ldnoobw("en");
  analyse(
    "ldnoobw-en",
    new Set(ld.entries.map((e) => e.term.toLowerCase())),
    lexiconDetector(ld.entries.map((e) => e.term), mode),
    { fill: 0, gate: false },
  );

  // ---- outputs
  const colNames = domains.map((d) => d.name);
  const crossRows = rowsX.map((r, i) => ({
    "lexicon ↓ / test →": r.name,
    ...Object.fromEntries(colNames.map((c, j) => [c, f(matrix[i]![j]!)])),
  }));
  const md = [
    "# Toxic spans in and across domains",
    "",
    ...notes.map((n) => `- ${n}`),
    `- Lexicon spans: ${mode} matching; gate: bag-of-words logistic regression trained on the domain's training split (p ≥ 0.5 = toxic).`,
    "",
    "## In-domain: SemEval-2021 test (configuration chosen on trial)",
    "",
    markdownTable(inDomain, [
      "detector",
      "chosen on dev",
      "dev F1",
      "F1 (all)",
      "F1 (toxic)",
      "F1 (non-toxic)",
      "P (all)",
      "R (all)",
      "non-toxic acc.",
      "lexicon size",
      "posts",
    ], 4),
    "",
    "## Cross-domain span F1 (all test posts of the column's domain)",
    "",
    `Domains (train/dev/test posts): ${
      domains.map((d) => `${d.name} ${d.train.length}/${d.dev.length}/${d.test.length}`).join("; ")
    }. acl-<type>: comments with a majority span of that type, gold = that type's characters.`,
    "",
    markdownTable(crossRows, ["lexicon ↓ / test →", ...colNames], 4),
    "",
    "## Post level: toxic iff the text has a lexicon hit (word boundaries)",
    "",
    markdownTable(postLevel, [
      "data",
      "detector",
      "lexicon size",
      "precision",
      "recall",
      "F1",
      "accuracy",
      "posts",
    ], 4),
    "",
    "## Error analysis on SemEval-2021 test (word tokens)",
    "",
    markdownTable(errorSummary, [
      "detector",
      "FN in lexicon",
      "FN not in lexicon",
      "FP in lexicon",
      "FP not in lexicon",
      "top FN not in lexicon",
      "top FP in lexicon",
    ]),
  ].join("\n");
  const files = await writeOutputs(await runFolder("toxic_spans", values), {
    "results.json": JSON.stringify(
      {
        notes,
        inDomain,
        cross: { rows: rowsX.map((r) => r.name), cols: colNames, f1: matrix },
        postLevel,
        errorSummary,
      },
      null,
      1,
    ) + "\n",
    "in_domain.csv": stringify([
      Object.keys(inDomain[0]!),
      ...inDomain.map((r) => Object.values(r) as string[]),
    ]),
    "cross_domain.csv": stringify([
      ["lexicon", ...colNames],
      ...rowsX.map((r, i) => [r.name, ...matrix[i]!]),
    ]),
    "post_level.csv": stringify([
      ["data", "detector", "precision", "recall", "F1", "accuracy", "posts"],
      ...postLevel.map((r) =>
        [r.data, r.detector, r.precision, r.recall, r.F1, r.accuracy, r.posts] as unknown[]
      ),
    ]),
    "errors.csv": stringify([["detector", "kind", "word", "count"], ...errors]),
    "report.md": md + "\n",
    ...(await reportFiles({
      title: "Toxic spans in and across domains",
      markdown: md,
      charts: [heatmapChart({
        name: "cross-domain-f1",
        title: "Cross-domain span F1 (rows: lexicon, columns: test domain)",
        section: "Cross-domain span F1",
        data: rowsX.flatMap((r, i) =>
          colNames.map((c, j) => ({ lexicon: r.name, "test domain": c, F1: matrix[i]![j]! }))
        ),
        x: "test domain",
        y: "lexicon",
        value: "F1",
        domain: [0, 1],
        digits: 2,
      })],
    })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
