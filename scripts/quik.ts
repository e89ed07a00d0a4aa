#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * QUIK (4-bit weights and activations with f32 outlier columns, int8 down_proj) on a Llama model:
 * held-out bits per byte for dense, GPTQ W4A16, QUIK-4B, QUIK-4B all 4-bit, QUIK-8B and a sweep
 * of outlier counts, beside the paper's Llama-2-7B figures; optionally saves QUIK-4B and checks
 * that it loads back to identical logits.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { openCheckpoint } from "../lib/io/safetensors.ts";
import { selectBackend } from "../ffi/mod.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { goldenValidationBatch, heldOutScorer } from "../lib/model/perplexity.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { barChart, type Chart, lineChart, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { quantizeModel } from "../lib/quant/quantize_model.ts";
import { QUIK_PAPER_LLAMA2_7B, quikModel, type QuikOptions } from "../lib/quant/quik.ts";
import { QuikLinear } from "../lib/quant/quik_linear.ts";
import { loadQuikModel, saveQuikModel } from "../lib/quant/quik_checkpoint.ts";

const USAGE = `
quik.ts — QUIK 4-bit weights and activations (f32 outlier columns, int8 down_proj) on a Llama model.

Usage: scripts/quik.ts [options]
       deno task quik [-- options]

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes)
  --data DIR           folder with the bundled corpora for calibration (default data)
  --outlier-sweep LIST outlier counts per layer for the QUIK-4B sweep (default 0,8,16,32,64;
                       "" for none)
  --outlier-fraction F outliers of the main settings as a fraction of each layer's inputs
                       (default 0.0625: 256 of 4096, 16 of the bundled model's 256)
  --no-clip            no weight clipping search (the paper's QUIK-4B uses it)
  --calib-windows N    calibration windows (default 32)
  --context N          tokens per window (default 256)
  --seed N             seed of the calibration windows (default 0)
  --save DIR           save QUIK-4B as a QUIK checkpoint, reload it and check identical logits
  --backend B          ts | cpu (cuda runs the cpu kernels for QUIK layers)
  --out DIR            (default out/quik/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  -h, --help           this text

Held-out: the model folder's golden.json validation batch. The paper's column: Llama-2-7B
WikiText-2 perplexity (Ashkboos et al., Tables 4 and 11) and its mean-NLL change, ln(ppl)/ln(ppl_fp16)
− 1, the figure that compares with a change of bits per byte. Time on a quiet 2-core machine with
the defaults: about 3 minutes.
`;

await runScript({ name: "quik.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      data: { type: "string", default: "data" },
      "outlier-sweep": { type: "string", default: "0,8,16,32,64" },
      "outlier-fraction": { type: "string", default: "0.0625" },
      "no-clip": { type: "boolean", default: false },
      "calib-windows": { type: "string", default: "32" },
      context: { type: "string", default: "256" },
      seed: { type: "string", default: "0" },
      save: { type: "string" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
    },
    strict: true,
  });
  const sweep = values["outlier-sweep"].split(",").map((x) => x.trim()).filter(Boolean)
    .map((x) => intFlag("--outlier-sweep", x, 0));
  const fraction = Number(values["outlier-fraction"]);
  if (!(fraction >= 0 && fraction <= 1)) {
    throw new RangeError(`--outlier-fraction '${values["outlier-fraction"]}': expected 0 to 1`);
  }
  const count = intFlag("--calib-windows", values["calib-windows"], 1);
  const seed = intFlag("--seed", values.seed, 0);
  requirePermissions("quik.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/quik" },
    { name: "read", path: values.out ?? "out/quik" },
    ...(values.save
      ? [{ name: "write" as const, path: values.save }, {
        name: "read" as const,
        path: values.save,
      }]
      : []),
  ]);
  const backend = selectBackend(values.backend);
  const base = await LlamaModel.load(values.model, { backend });
  const context = intFlag("--context", values.context, 2, base.config.maxPositionEmbeddings - 1);
  const tok = await loadTokenizer(values.model, base.config);
  const held = await goldenValidationBatch(values.model);
  const { metric, score: measure } = heldOutScorer(held, tok.byteLevel);
  const calib = calibrationWindows(await bundledDocuments(values.data), tok, {
    count,
    context,
    seed,
  });
  let srcBytes: number;
  {
    using ck = await openCheckpoint(values.model);
    srcBytes = (await ck.info("model.embed_tokens.weight")).dtype === "F32" ? 4 : 2;
  }
  const c = base.config;
  const otherBytes = srcBytes *
    (c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2) +
      c.hiddenSize * (2 * c.numLayers + 1));
  const linearBytes = (m: LlamaModel) =>
    m.blocks.reduce(
      (a, b) =>
        a + Object.values(b.linears).reduce(
          (s, l) =>
            s + (l instanceof QuikLinear ? l.bytes : l.inFeatures * l.outFeatures * srcBytes),
          0,
        ),
      0,
    );
  const paper = QUIK_PAPER_LLAMA2_7B;
  const nll = (ppl: number) => ((Math.log(ppl) / Math.log(paper.fp16) - 1) * 100).toFixed(1);
  const rows: Record<string, string | number>[] = [];
  const dense = measure(base);
  const add = (
    setting: string,
    w: string,
    a: string,
    outliers: string,
    score: number,
    bytes: number,
    seconds: number,
    paperPpl?: number,
  ) => {
    rows.push({
      setting,
      weights: w,
      activations: a,
      outliers,
      [metric]: Number(score.toFixed(5)),
      changePct: Number(((score / dense - 1) * 100).toFixed(2)),
      bytes: Math.round(bytes),
      seconds: Number(seconds.toFixed(1)),
      paperPpl: paperPpl ?? "",
      paperNllChangePct: paperPpl ? nll(paperPpl) : "",
    });
    console.error(`${setting} (${outliers} outliers): ${metric} ${score.toFixed(4)}`);
  };
  add("dense", "16", "16", "-", dense, otherBytes + linearBytes(base), 0, paper.fp16);
  {
    const m = await LlamaModel.load(values.model, { backend });
    const t0 = performance.now();
    await quantizeModel(m, calib, { bits: 4 });
    const s = (performance.now() - t0) / 1000;
    const shapes = Object.values(m.blocks[0]!.linears);
    const bytes = otherBytes + c.numLayers * shapes.reduce(
          (a, l) => a + (l.inFeatures * l.outFeatures) / 2 + l.outFeatures * 2.5 + 4 * l.inFeatures,
          0,
        );
    add("GPTQ W4A16 (per row, asym)", "4", "16", "-", measure(m), bytes, s, paper.gptqW4A16);
  }
  const fracLabel = (inF: number) => Math.round(fraction * inF);
  const mainOutliers = `${fracLabel(c.hiddenSize)} / ${fracLabel(c.intermediateSize)} down_proj`;
  const clip = !values["no-clip"];
  let q4: { model: LlamaModel; layers: Awaited<ReturnType<typeof quikModel>> } | undefined;
  const runQuik = async (opts: QuikOptions) => {
    const model = await LlamaModel.load(values.model, { backend });
    const t0 = performance.now();
    const layers = await quikModel(model, calib, { clip, ...opts });
    const s = (performance.now() - t0) / 1000;
    return { model, layers, s, score: measure(model), bytes: otherBytes + linearBytes(model) };
  };
  {
    const r = await runQuik({ outlierFraction: fraction });
    q4 = r;
    add(
      "QUIK-4B (int8 down_proj)",
      "4 (8)",
      "4 (8)",
      mainOutliers,
      r.score,
      r.bytes,
      r.s,
      paper.quik4b,
    );
  }
  {
    const r = await runQuik({ outlierFraction: fraction, int8DownProj: false });
    add(
      "QUIK-4B, down_proj 4-bit",
      "4",
      "4",
      mainOutliers,
      r.score,
      r.bytes,
      r.s,
      paper.quik4bAll4bit,
    );
  }
  {
    const r = await runQuik({ outlierFraction: fraction, bits: 8 });
    add("QUIK-8B", "8", "8", mainOutliers, r.score, r.bytes, r.s, paper.quik8b);
  }
  const sweepRows: [number, number][] = [];
  for (const k of sweep) {
    const r = await runQuik({ outliers: k });
    sweepRows.push([k, r.score]);
    add("QUIK-4B", "4 (8)", "4 (8)", `${k} every layer`, r.score, r.bytes, r.s);
  }
  let saved: Record<string, unknown> | undefined;
  if (values.save && q4) {
    await saveQuikModel(values.model, values.save, q4.layers);
    const again = await loadQuikModel(values.save, { backend });
    const ids = held[0]!;
    const a = q4.model.forward(ids).data, b = again.forward(ids).data;
    const identical = a.length === b.length && a.every((v, i) => v === b[i]);
    if (!identical) {
      throw new Error(`The reloaded ${values.save} gives other logits than the saved model`);
    }
    saved = { dir: values.save, identicalLogits: identical, [metric]: measure(again) };
    console.error(`saved ${values.save}; reloaded: identical logits`);
  }
  const cols = [
    "setting",
    "weights",
    "activations",
    "outliers",
    metric,
    "changePct",
    "bytes",
    "seconds",
    "paperPpl",
    "paperNllChangePct",
  ];
  const charts: Chart[] = [];
  const main = rows.filter((r) => r.setting !== "dense" && r.paperNllChangePct !== "");
  if (main.length) {
    charts.push(barChart({
      name: "change-vs-paper",
      title: `Change against dense, this model's ${metric} beside the paper's Llama-2-7B mean NLL`,
      data: main.flatMap((r) => [
        { setting: r.setting, source: `this model (${metric})`, "change %": r.changePct },
        { setting: r.setting, source: "paper (Llama-2-7B NLL)", "change %": r.paperNllChangePct },
      ]),
      x: "setting",
      y: "change %",
      series: "source",
      valueFormat: ".1f",
      horizontal: true,
      xTitle: null,
      width: 520,
      height: 56 * main.length,
    }));
  }
  if (sweepRows.length) {
    charts.push(lineChart({
      name: "outlier-sweep",
      title: `Held-out ${metric} of QUIK-4B (int8 down_proj) against outlier columns per layer`,
      data: sweepRows.map(([k, v]) => ({ "outlier columns per layer": k, [metric]: v })),
      x: "outlier columns per layer",
      y: metric,
      xInteger: true,
      rules: [{ y: dense, label: `dense ${dense.toFixed(3)}` }],
      width: 600,
      height: 320,
    }));
  }
  const md = [
    `# QUIK on \`${values.model}\``,
    `Weights symmetric per row${
      clip ? " with the clipping search" : ""
    }, GPTQ with the outlier columns swept last (calibrated on ${calib.length} windows of ${
      context + 1
    } tokens, seed ${seed}, true-sequential); activations asymmetric per token; outlier columns in f32; lm_head dense. Held-out = golden.json validation batch; backend ${backend}. changePct: change of ${metric} against dense; paperNllChangePct: the paper's Llama-2-7B WikiText-2 perplexity as a change of mean NLL, the comparable figure.`,
    markdownTable(rows, cols),
    ...(saved
      ? [
        `Saved QUIK-4B to \`${saved.dir}\`; reloaded: identical logits, ${metric} ${
          (saved[metric] as number).toFixed(6)
        }.`,
      ]
      : []),
  ].join("\n\n");
  const files = await writeOutputs(await runFolder("quik", values), {
    "results.json": JSON.stringify({ model: values.model, backend, metric, rows, saved }, null, 2),
    "results.csv": stringify(rows, { columns: cols }),
    "report.md": md + "\n",
    ...(await reportFiles({ title: "QUIK", markdown: md, charts })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
