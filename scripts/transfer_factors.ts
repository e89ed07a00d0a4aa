#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out
/**
 * Factors of cross-lingual transfer: regress transfer scores on factors (script match, tokenizer
 * statistics, model size, typological distance, …) with standardised coefficients, LMG relative
 * importance and bootstrap confidence intervals.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { barChart, ColorMap, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { availableLanguages, readSentences } from "../lib/crosslingual/corpus.ts";
import { fitFactorsWithCi } from "../lib/crosslingual/regression.ts";
import { scriptMix } from "../lib/crosslingual/script.ts";
import { readTransferData } from "../lib/crosslingual/transfer.ts";

const USAGE = `
transfer_factors.ts — which factors explain cross-lingual transfer scores: least squares with
standardised coefficients, LMG relative importance (R² shares) and bootstrap intervals.

Usage: scripts/transfer_factors.ts --results results.csv --factors A,B,C [options]
       deno task transfer-factors [-- options]

Options:
  --results FILE        CSV with a score column and key columns (model, source, target, task)
  --factor-tables F,G   CSVs of factors joined on the columns they share with the results; a
                        table keyed by 'language' joins on the results' 'target' (e.g. the
                        stats.csv of tokenizer_stats.ts, filtered to one tokenizer and form)
  --factors A,B         factor columns to use; 'script_match' (1 when source and target share
                        their main script, measured on --pud text) is computed when no table has it
  --score NAME          score column (default score)
  --bootstrap N         bootstrap resamples (default 1000)
  --level P             confidence level (default 0.95)
  --seed N              bootstrap seed (default 0)
  --pud DIR             text for the scripts of languages (default data/multilingual_text/ud_pud)
  --out DIR             output folder (default out/transfer_factors/<run-id>)
                        a chosen folder must be new or empty, unless --overwrite

A missing or non-numeric value in a used column, a results row without a matching factor row,
a constant or collinear factor: one sentence naming file, line and column. Outputs: fit.json,
factors.csv, report.md, report.html, chart-lmg.vl.json and chart-standardised.vl.json (the charts'
Vega-Lite specs and data).
`;

await runScript({ name: "transfer_factors.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      results: { type: "string" },
      "factor-tables": { type: "string", default: "" },
      factors: { type: "string" },
      score: { type: "string", default: "score" },
      bootstrap: { type: "string", default: "1000" },
      level: { type: "string", default: "0.95" },
      seed: { type: "string", default: "0" },
      pud: { type: "string", default: "data/multilingual_text/ud_pud" },
      ...RUN_FOLDER_FLAGS,
    },
  });
  if (!values.results || !values.factors) {
    throw new RangeError("Both --results and --factors are needed (see --help)");
  }
  const tables = values["factor-tables"].split(",").map((s) => s.trim()).filter((s) => s);
  const factors = values.factors.split(",").map((s) => s.trim()).filter((s) => s);
  requirePermissions("transfer_factors.ts", [
    { name: "read", path: values.results },
    ...tables.map((t) => ({ name: "read" as const, path: t })),
    { name: "write", path: values.out ?? "out/transfer_factors" },
    { name: "read", path: values.out ?? "out/transfer_factors" },
  ]);
  const replicates = intFlag("--bootstrap", values.bootstrap, 10);
  const level = numFlag("--level", values.level, 0.5, 0.999);
  const seed = intFlag("--seed", values.seed);
  // the main script of each language with text, for script_match
  const scripts = new Map<string, string>();
  if (factors.includes("script_match")) {
    requirePermissions("transfer_factors.ts", [{ name: "read", path: values.pud }]);
    for (const l of availableLanguages(values.pud)) {
      scripts.set(l, scriptMix((await readSentences(values.pud, l, 200)).map((s) => s.text)).main);
    }
  }
  const data = await readTransferData(values.results, tables, factors, {
    score: values.score,
    scriptOf: (l) => scripts.get(l),
  });
  const fit = fitFactorsWithCi(data.y, data.x, data.factors, { replicates, level, seed });
  const pct = `${Math.round(level * 100)}%`;
  const rows = fit.factors.map((f, j) => ({
    factor: f,
    coefficient: fit.coefficients[j]!,
    standardised: fit.standardized[j]!,
    [`std ${pct} CI`]: `[${fit.standardizedCi[j]![0].toFixed(3)}, ${
      fit.standardizedCi[j]![1].toFixed(3)
    }]`,
    LMG: fit.lmg[j]!,
    [`LMG ${pct} CI`]: `[${fit.lmgCi[j]![0].toFixed(3)}, ${fit.lmgCi[j]![1].toFixed(3)}]`,
    "share of R²": fit.lmg[j]! / fit.r2,
  }));
  const order = [...rows].sort((a, b) => b.LMG - a.LMG);
  const md = [
    "# Factors of transfer",
    "",
    `${fit.n} results from '${values.results}', score '${values.score}', R² = ${
      fit.r2.toFixed(3)
    }, intercept ${
      fit.intercept.toFixed(4)
    }; ${fit.replicates} bootstrap resamples (seed ${seed}), percentile intervals.`,
    ...(scripts.size > 0
      ? [
        "",
        `script_match: main script per language from '${values.pud}': ${
          [...scripts].map(([l, s]) => `${l} ${s}`).join(", ")
        }.`,
      ]
      : []),
    "",
    markdownTable(order, Object.keys(rows[0]!), 3),
    "",
    "Standardised coefficients are those of the z-scored factors on the z-scored score; LMG is the",
    "R² gained by adding the factor, averaged over all orders of entry (general dominance), and",
    "the LMG values sum to R².",
  ].join("\n");
  // the factors by LMG, each with its bootstrap interval; one colour per factor in both charts
  const colors = new ColorMap(order.map((r) => r.factor));
  const j = (factor: string) => fit.factors.indexOf(factor);
  const height = Math.max(120, 30 * order.length);
  // one horizontal bar per factor with its bootstrap interval, in the order of the table
  const ciBars = (
    name: string,
    title: string,
    y: "LMG" | "standardised",
    ci: readonly (readonly [number, number])[],
    extra: { yTitle?: string; rules?: { y: number }[] } = {},
  ) =>
    barChart({
      name,
      title,
      data: order.map((r) => ({
        factor: r.factor,
        [y]: r[y],
        low: ci[j(r.factor)]![0],
        high: ci[j(r.factor)]![1],
      })),
      x: "factor",
      y,
      error: { lo: "low", hi: "high" },
      horizontal: true,
      colorByCategory: true,
      colors,
      xTitle: null,
      ...extra,
      height,
    });
  const charts = [
    ciBars(
      "lmg",
      `LMG (R² = ${fit.r2.toFixed(3)} split among the factors), ${pct} bootstrap intervals`,
      "LMG",
      fit.lmgCi,
    ),
    ciBars(
      "standardised",
      `Standardised coefficients, ${pct} bootstrap intervals`,
      "standardised",
      fit.standardizedCi,
      { yTitle: "standardised coefficient", rules: [{ y: 0 }] },
    ),
  ];

  const files = await writeOutputs(await runFolder("transfer_factors", values), {
    "fit.json": JSON.stringify(fit, null, 1) + "\n",
    "factors.csv": stringify([
      [
        "factor",
        "coefficient",
        "standardised",
        "std_ci_low",
        "std_ci_high",
        "lmg",
        "lmg_ci_low",
        "lmg_ci_high",
        "lmg_share",
      ],
      ...fit.factors.map((f, j) => [
        f,
        fit.coefficients[j]!,
        fit.standardized[j]!,
        ...fit.standardizedCi[j]!,
        fit.lmg[j]!,
        ...fit.lmgCi[j]!,
        fit.lmg[j]! / fit.r2,
      ]),
    ]),
    "report.md": md + "\n",
    ...(await reportFiles({ title: "Factors of transfer", markdown: md, charts })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
