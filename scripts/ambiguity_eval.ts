#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out
/**
 * The ambiguous-definite-descriptions benchmark: re-score released answers, or ask any
 * OpenAI-compatible chat endpoint live (resumable), and report accuracy per fragment and prompt
 * style with the de dicto / de re confusion.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { granted, requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { barChart, ColorMap, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { type AmbiguityItem, loadAnswerSets } from "../lib/ambiguity/benchmark.ts";
import { ChatClient } from "../lib/ambiguity/client.ts";
import { readAnswers, runLive } from "../lib/ambiguity/live.ts";
import { LABELS, reportByStyle, scoreItems, type StyleReports } from "../lib/ambiguity/metrics.ts";
import { PROMPT_STYLES } from "../lib/ambiguity/parse.ts";

const RELEASED = "../shared/data/ambiguity/exploiting_ambiguity/benchmark";

const USAGE = `
ambiguity_eval.ts — accuracy of LLMs at choosing the de dicto or de re reading of ambiguous
definite descriptions (Schouten et al. 2023), by re-scoring released answers or asking a live
OpenAI-compatible chat endpoint.

Usage: scripts/ambiguity_eval.ts rescore [options]
       scripts/ambiguity_eval.ts live --base-url URL --model NAME [options]
       deno task ambiguity [-- options]

Both modes:
  --benchmark PATH     a benchmark JSONL file, a folder of them, or a folder of model folders
                       (default: rescore ${RELEASED},
                        live ${RELEASED}/chatgpt, whose prompts are used, not its answers)
  --fragments A,B      only these fragments (e.g. P6_P19,P286_P17)
  --styles S,T         only these prompt styles (${Object.keys(PROMPT_STYLES).join(", ")})
  --out DIR            report folder (default out/ambiguity/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite

live:
  --base-url URL       endpoint base, e.g. http://127.0.0.1:8000/v1 (POSTs to URL/chat/completions)
  --model NAME         model name sent to the endpoint
  --answers FILE       answers JSONL, appended as answers arrive and read back to resume
                       (default out/ambiguity/answers-<model>.jsonl, beside the run
                       folders, or in the --out folder: resume there with --overwrite)
  --api-key-env NAME   environment variable holding the API key (default OPENAI_API_KEY; read
                       only when --allow-env grants it, otherwise no key is sent)
  --system TEXT        system message (default "You are a helpful assistant."; "" for none)
  --temperature T      (default 0.7)      --max-tokens N   (default 512)
  --concurrency N      requests in flight (default 4)
  --retries N          retries on 429, 5xx, timeouts and malformed replies (default 5)
  --backoff-ms N       first backoff, doubling with jitter (default 1000)
  --timeout S          seconds per request (default 60)
  --limit N            only the first N items of each fragment and style

A live run needs --allow-net for the endpoint's host (and --allow-write for an answers file
outside out/), e.g.
  deno run --no-prompt --allow-read --allow-write=out \\
    --allow-net=127.0.0.1:8000 scripts/ambiguity_eval.ts live --base-url http://127.0.0.1:8000/v1 --model m

Scoring is the authors' calc_metrics.py: an unparseable answer is "neither", an option number
other than the label's counts as the other reading, and precision/recall/F1 follow
scikit-learn's classification_report over [de_dicto, de_re, neither] (zero_division = 0).
Outputs: report.md, report.html (tables and the accuracy per fragment chart), chart-accuracy.vl.json
(the chart's Vega-Lite spec and data), metrics.json, metrics.csv.
`;

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

function select(items: AmbiguityItem[], fragments?: string[], styles?: string[], limit?: number) {
  for (const s of styles ?? []) {
    if (!Object.hasOwn(PROMPT_STYLES, s)) {
      throw new RangeError(
        `--styles: unknown prompt style '${s}' (expected ${Object.keys(PROMPT_STYLES).join(", ")})`,
      );
    }
  }
  const have = new Set(items.map((i) => i.fragment));
  for (const f of fragments ?? []) {
    if (!have.has(f)) {
      throw new RangeError(`--fragments: no fragment '${f}' (have ${[...have].sort().join(", ")})`);
    }
  }
  const seen = new Map<string, number>();
  return items.filter((it) => {
    if (fragments && !fragments.includes(it.fragment)) return false;
    if (styles && !styles.includes(it.style)) return false;
    const k = `${it.fragment}/${it.style}`;
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    return limit === undefined || n <= limit;
  });
}

interface SetReport {
  name: string;
  styles: StyleReports[];
}

async function writeReport(out: string, sets: SetReport[], notes: string[]): Promise<string[]> {
  const overall = sets.flatMap((s) =>
    s.styles.map((st) => ({
      model: s.name,
      style: st.style,
      n: st.overall.n,
      accuracy: st.overall.accuracy,
      "parse rate": st.overall.parseRate,
      "macro F1": st.overall.macro.f1,
      "de dicto recall": st.overall.classes.de_dicto.recall,
      "de re recall": st.overall.classes.de_re.recall,
      "≠ stored choice": st.overall.disagreements,
    }))
  );
  const fragments = [
    ...new Set(sets.flatMap((s) => s.styles.flatMap((st) => Object.keys(st.fragments)))),
  ].sort();
  const columns = sets.flatMap((s) => s.styles.map((st) => ({ key: `${s.name} ${st.style}`, st })));
  const perFragment = fragments.map((f) => ({
    fragment: f,
    ...Object.fromEntries(columns.map((c) => [c.key, c.st.fragments[f]?.accuracy ?? ""])),
  }));
  const confusions = columns.map((c) =>
    `**${c.key}** (rows: truth, columns: answer)\n\n` + markdownTable(
      LABELS.slice(0, 2).map((t) => ({
        truth: t,
        ...Object.fromEntries(LABELS.map((p) => [p, c.st.overall.confusion[t][p]])),
      })),
      ["truth", ...LABELS],
    )
  );
  const md = [
    "# Ambiguous definite descriptions: accuracy",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
    "## Overall",
    "",
    markdownTable(overall, Object.keys(overall[0] ?? {}), 3),
    "",
    "## Accuracy per fragment",
    "",
    markdownTable(perFragment, ["fragment", ...columns.map((c) => c.key)], 3),
    "",
    "## De dicto / de re confusion",
    "",
    confusions.join("\n\n"),
  ].join("\n");
  const colors = new ColorMap(columns.map((c) => c.key));
  const chart = barChart({
    name: "accuracy",
    title: "Accuracy per fragment and prompt style (dashed: chance, 0.5)",
    section: "Accuracy per fragment",
    data: [...fragments, "overall"].flatMap((f) =>
      columns.map((c) => ({
        fragment: f,
        "model and style": c.key,
        accuracy: f === "overall" ? c.st.overall.accuracy : c.st.fragments[f]?.accuracy ?? null,
      }))
    ),
    x: "fragment",
    y: "accuracy",
    series: "model and style",
    colors,
    yDomain: [0, 1],
    rules: [{ y: 0.5, label: "chance" }],
    width: Math.min(900, Math.max(480, (fragments.length + 1) * (columns.length * 14 + 24))),
    height: 320,
  });
  const csvRows = sets.flatMap((s) =>
    s.styles.flatMap((st) =>
      [...Object.entries(st.fragments), ["overall", st.overall] as const].map(([f, g]) => [
        s.name,
        st.style,
        f,
        g.n,
        g.accuracy,
        g.parseRate,
        ...LABELS.flatMap((c) => [g.classes[c].precision, g.classes[c].recall, g.classes[c].f1]),
        g.macro.f1,
        g.weighted.f1,
        ...LABELS.slice(0, 2).flatMap((t) => LABELS.map((p) => g.confusion[t][p])),
        g.disagreements,
      ])
    )
  );
  const header = [
    "model",
    "style",
    "fragment",
    "n",
    "accuracy",
    "parse_rate",
    ...LABELS.flatMap((c) => [`precision_${c}`, `recall_${c}`, `f1_${c}`]),
    "macro_f1",
    "weighted_f1",
    ...LABELS.slice(0, 2).flatMap((t) => LABELS.map((p) => `${t}_as_${p}`)),
    "disagreements_with_stored",
  ];
  const files = await writeOutputs(out, {
    "report.md": md + "\n",
    ...(await reportFiles({
      title: "Ambiguous definite descriptions",
      markdown: md,
      charts: [chart],
    })),
    "metrics.json": JSON.stringify(sets, null, 1) + "\n",
    "metrics.csv": stringify([header, ...csvRows]),
  });
  console.log(md);
  return files;
}

await runScript({ name: "ambiguity_eval.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      benchmark: { type: "string" },
      fragments: { type: "string" },
      styles: { type: "string" },
      ...RUN_FOLDER_FLAGS,
      "base-url": { type: "string" },
      model: { type: "string" },
      answers: { type: "string" },
      "api-key-env": { type: "string" },
      system: { type: "string" },
      temperature: { type: "string", default: "0.7" },
      "max-tokens": { type: "string", default: "512" },
      concurrency: { type: "string", default: "4" },
      retries: { type: "string", default: "5" },
      "backoff-ms": { type: "string", default: "1000" },
      timeout: { type: "string", default: "60" },
      limit: { type: "string" },
    },
  });
  const mode = positionals[0];
  if (positionals.length !== 1 || (mode !== "rescore" && mode !== "live")) {
    throw new RangeError(
      `Expected one mode, 'rescore' or 'live', got '${positionals.join(" ")}' (see --help)`,
    );
  }
  const fragments = list(values.fragments), styles = list(values.styles);
  const limit = values.limit === undefined ? undefined : intFlag("--limit", values.limit, 1);

  if (mode === "rescore") {
    const benchmark = values.benchmark ?? RELEASED;
    requirePermissions("ambiguity_eval.ts", [
      { name: "read", path: benchmark },
      { name: "write", path: values.out ?? "out/ambiguity" },
      { name: "read", path: values.out ?? "out/ambiguity" },
    ]);
    const sets: SetReport[] = [];
    for (const s of await loadAnswerSets(benchmark)) {
      const items = select(s.items, fragments, styles, limit);
      if (items.length === 0) throw new RangeError(`No items of '${s.name}' are selected`);
      sets.push({ name: s.name, styles: reportByStyle(scoreItems(items)) });
    }
    const disagree = sets.reduce(
      (n, s) => n + s.styles.reduce((m, st) => m + st.overall.disagreements, 0),
      0,
    );
    const files = await writeReport(await runFolder("ambiguity", values), sets, [
      `Re-scored from the \`responses\` in ${benchmark}, not from the stored \`results\`.`,
      `Parses that differ from the stored \`results.choice\`: ${disagree}.`,
    ]);
    console.error(`wrote ${files.join(", ")}`);
    return;
  }

  // live
  if (!values["base-url"] || !values.model) {
    throw new RangeError("live needs --base-url and --model (see --help)");
  }
  const benchmark = values.benchmark ?? `${RELEASED}/chatgpt`;
  const answers = values.answers ??
    `${values.out ?? "out/ambiguity"}/answers-${
      values.model.replace(/[^A-Za-z0-9._-]+/g, "_")
    }.jsonl`;
  const keyVar = values["api-key-env"] ?? "OPENAI_API_KEY";
  const clientOptions = {
    baseUrl: values["base-url"],
    model: values.model,
    temperature: numFlag("--temperature", values.temperature, 0, 2),
    maxTokens: intFlag("--max-tokens", values["max-tokens"], 1),
    retries: intFlag("--retries", values.retries, 0),
    backoffMs: intFlag("--backoff-ms", values["backoff-ms"], 0),
    timeoutMs: numFlag("--timeout", values.timeout, 0.001) * 1000,
  };
  const concurrency = intFlag("--concurrency", values.concurrency, 1);
  const host = new ChatClient(clientOptions).host;
  const answersDir = answers.includes("/") ? answers.slice(0, answers.lastIndexOf("/")) : ".";
  requirePermissions("ambiguity_eval.ts", [
    { name: "read", path: benchmark },
    { name: "net", host },
    { name: "read", path: answers },
    { name: "write", path: answers },
    { name: "write", path: values.out ?? "out/ambiguity" },
    { name: "read", path: values.out ?? "out/ambiguity" },
    ...(values["api-key-env"] ? [{ name: "env" as const, variable: keyVar }] : []),
  ]);
  const apiKey = granted({ name: "env", variable: keyVar }) ? Deno.env.get(keyVar) : undefined;
  const keyed = new ChatClient(apiKey ? { ...clientOptions, apiKey } : clientOptions);
  const sets = await loadAnswerSets(benchmark);
  if (sets.length !== 1) {
    throw new RangeError(
      `--benchmark '${benchmark}' holds ${sets.length} answer sets (${
        sets.map((s) => s.name).join(", ")
      }); for a live run give one folder or file (the prompts are the same in each)`,
    );
  }
  const items = select(sets[0]!.items, fragments, styles, limit);
  if (items.length === 0) throw new RangeError("No items are selected");
  await Deno.mkdir(answersDir, { recursive: true });
  const { done, droppedBytes } = await readAnswers(answers);
  if (droppedBytes > 0) {
    console.error(
      `dropped an incomplete last line (${droppedBytes} bytes) of ${answers}, left by an interrupted write`,
    );
  }
  const todo = items.filter((it) => !done.has(it.id)).length;
  console.error(
    `${items.length} items, ${
      items.length - todo
    } already in ${answers}, asking ${keyed.url} for ${todo}`,
  );
  const bar = progress("answers", todo);
  let lastLog = Date.now();
  const summary = await runLive(items, keyed, {
    out: answers,
    concurrency,
    ...(values.system === undefined
      ? {}
      : { systemPrompt: values.system === "" ? null : values.system }),
    onItem: (n, total) => {
      bar.tick();
      if (!Deno.stderr.isTerminal() && (Date.now() - lastLog > 10_000 || n === total)) {
        console.error(`answered ${n}/${total}`);
        lastLog = Date.now();
      }
    },
  }).finally(() => bar.stop());
  const { done: all } = await readAnswers(answers);
  const answered = items.map((it) => ({ ...it, ...pick(all.get(it.id)!) }));
  // the answers of this run may be in the --out folder, which was new or empty when it started
  // (runScript checked) or given with --overwrite: the report goes beside them
  const inOut = values.answers === undefined && values.out !== undefined;
  const out = await runFolder("ambiguity", { ...values, overwrite: values.overwrite || inOut });
  const files = await writeReport(out, [{
    name: values.model,
    styles: reportByStyle(scoreItems(answered)),
  }], [
    `Live answers of '${values.model}' from ${keyed.url}, stored in ${answers} (${summary.resumed} resumed, ${summary.answered} asked in this run).`,
    `Settings: temperature ${values.temperature}, max tokens ${
      values["max-tokens"]
    }, system message ${
      JSON.stringify(values.system ?? "You are a helpful assistant.")
    } (our defaults: the authors' code used temperature 0.7 and max_tokens 256 or 512 in different versions).`,
  ]);
  console.error(`wrote ${files.join(", ")}`);
});

function pick(a: AmbiguityItem): Pick<AmbiguityItem, "responses" | "results"> {
  const r: Pick<AmbiguityItem, "responses" | "results"> = {};
  if (a.responses) r.responses = a.responses;
  if (a.results) r.results = a.results;
  return r;
}
