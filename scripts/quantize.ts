#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Weight quantization of a Llama model with round-to-nearest and GPTQ over bits × group size ×
 * act-order, compared on held-out bits per byte and model bytes; optionally saves one setting as a
 * GPTQ or compressed-tensors checkpoint and checks that it loads back to the same model.
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
import { LINEAR_NAMES, type LinearName, LlamaModel } from "../lib/model/llama.ts";
import { goldenValidationBatch, heldOutScorer } from "../lib/model/perplexity.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { lineChart, markdownTable, reportFiles } from "../lib/report/mod.ts";
import {
  loadQuantizedModel,
  type QuantFormat,
  saveQuantizedModel,
} from "../lib/quant/checkpoint.ts";
import { quantizeModel, type QuantMethod } from "../lib/quant/quantize_model.ts";
import { resolveSpec } from "../lib/quant/quantizer.ts";

const USAGE = `
quantize.ts — weight-only quantization (RTN, GPTQ) of a Llama model, compared on held-out quality.

Usage: scripts/quantize.ts [options]
       deno task quantize [-- options]

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes)
  --data DIR           folder with the bundled corpora for calibration (default data)
  --methods LIST       of rtn, gptq (default both)
  --bits LIST          bits per weight, 2–8 (default 4,3)
  --groups LIST        group sizes; -1 = one group per output row (default -1,64)
  --act-order LIST     off, on: GPTQ's column order by descending diag H (default off)
  --sym                symmetric levels (default asymmetric, GPTQ's default)
  --mse                MSE clipping search for the scales (grid 100, maxshrink 0.8, norm 2.4)
  --static-groups      group parameters from the unquantized weights
  --no-true-sequential quantize a block's seven projections from the same inputs
  --names LIST         projections to quantize (default all seven)
  --nm N:M             prune to N:M with SparseGPT first (joint sparsity + quantization)
  --calib-windows N    calibration windows (default 32)
  --context N          tokens per window (default 256)
  --seed N             seed of the calibration windows (default 0)
  --save DIR           save the (single) configuration as a quantized checkpoint, reload it and
                       check that the reloaded model scores the same
  --format F           gptq (default) or compressed-tensors (pack-quantized)
  --backend B          ts | cpu | cuda
  --out DIR            (default out/quantize/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  -h, --help           this text

Held-out: the model folder's golden.json validation batch. Bytes: of the projections as the GPTQ
format stores them (levels, f16 scales, packed zeros, g_idx), plus every other tensor at the
source's dtype. Time on a quiet 2-core machine with the defaults: about 1 minute (6 minutes
when another job shares the cores).
`;

await runScript({ name: "quantize.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      data: { type: "string", default: "data" },
      methods: { type: "string", default: "rtn,gptq" },
      bits: { type: "string", default: "4,3" },
      groups: { type: "string", default: "-1,64" },
      "act-order": { type: "string", default: "off" },
      sym: { type: "boolean", default: false },
      mse: { type: "boolean", default: false },
      "static-groups": { type: "boolean", default: false },
      "no-true-sequential": { type: "boolean", default: false },
      names: { type: "string", default: LINEAR_NAMES.join(",") },
      nm: { type: "string" },
      "calib-windows": { type: "string", default: "32" },
      context: { type: "string", default: "256" },
      seed: { type: "string", default: "0" },
      save: { type: "string" },
      format: { type: "string", default: "gptq" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
    },
    strict: true,
  });
  const list = (v: string) => v.split(",").map((x) => x.trim()).filter(Boolean);
  const methods = list(values.methods) as QuantMethod[];
  for (const m of methods) {
    if (m !== "rtn" && m !== "gptq") {
      throw new RangeError(`--methods has '${m}': expected rtn or gptq`);
    }
  }
  const bitsList = list(values.bits).map((b) => intFlag("--bits", b, 2, 8));
  const groups = list(values.groups).map((g) => intFlag("--groups", g, -1));
  if (groups.includes(0)) throw new RangeError("--groups has 0: expected -1 or a size ≥ 1");
  const orders = list(values["act-order"]).map((a) => {
    if (a !== "off" && a !== "on") {
      throw new RangeError(`--act-order has '${a}': expected off or on`);
    }
    return a === "on";
  });
  const names = list(values.names) as LinearName[];
  for (const n of names) {
    if (!(LINEAR_NAMES as readonly string[]).includes(n)) {
      throw new RangeError(
        `--names has '${n}': expected projections among ${LINEAR_NAMES.join(", ")}`,
      );
    }
  }
  let nm: [number, number] | undefined;
  if (values.nm) {
    const m = values.nm.match(/^(\d+):(\d+)$/);
    if (!m || Number(m[1]) < 1 || Number(m[1]) >= Number(m[2])) {
      throw new RangeError(`--nm '${values.nm}' is not N:M with 1 ≤ N < M`);
    }
    nm = [Number(m[1]), Number(m[2])];
  }
  const format = values.format as QuantFormat;
  if (format !== "gptq" && format !== "compressed-tensors") {
    throw new RangeError(`--format '${values.format}': expected gptq or compressed-tensors`);
  }
  const configs = methods.flatMap((method) =>
    bitsList.flatMap((bits) =>
      groups.flatMap((groupSize) =>
        (method === "gptq" ? orders : [false]).map((actOrder) => ({
          method,
          bits,
          groupSize,
          actOrder,
        }))
      )
    )
  );
  if (values.save && configs.length !== 1) {
    throw new RangeError(
      `--save needs exactly one configuration (one method, one --bits, one --groups, one --act-order); these flags give ${configs.length}`,
    );
  }
  const count = intFlag("--calib-windows", values["calib-windows"], 1);
  const seed = intFlag("--seed", values.seed, 0);
  requirePermissions("quantize.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/quantize" },
    { name: "read", path: values.out ?? "out/quantize" },
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
  for (const c of configs) resolveSpec({ bits: c.bits, groupSize: c.groupSize }); // before any work
  const tok = await loadTokenizer(values.model, base.config);
  const held = await goldenValidationBatch(values.model);
  const { metric, score: measure } = heldOutScorer(held, tok.byteLevel);
  const calib = methods.includes("gptq")
    ? calibrationWindows(await bundledDocuments(values.data), tok, { count, context, seed })
    : [];
  // bytes: projections as stored in the GPTQ format, everything else at the source's dtype (f16
  // for the bundled model, as its torch_dtype says)
  const c = base.config;
  let srcBytes: number;
  {
    using ck = await openCheckpoint(values.model);
    srcBytes = (await ck.info("model.embed_tokens.weight")).dtype === "F32" ? 4 : 2;
  }
  const shapes = LINEAR_NAMES.map((n) => base.blocks[0]!.linears[n]);
  const otherParams = c.vocabSize * c.hiddenSize * (c.tieWordEmbeddings ? 1 : 2) +
    c.hiddenSize * (2 * c.numLayers + 1);
  const linearParams = shapes.reduce((a, l) => a + l.inFeatures * l.outFeatures, 0) * c.numLayers;
  const denseBytes = (otherParams + linearParams) * srcBytes;
  const quantBytes = (bits: number, g: number) =>
    otherParams * srcBytes + c.numLayers * LINEAR_NAMES.reduce((a, n, i) => {
        const l = shapes[i]!, inF = l.inFeatures, out = l.outFeatures;
        if (!names.includes(n)) return a + inF * out * srcBytes;
        const ng = g > 0 && g < inF ? Math.ceil(inF / g) : 1;
        return a + (inF * out * bits) / 8 + ng * out * (2 + bits / 8) + 4 * inF;
      }, 0);
  const rows: Record<string, string | number>[] = [];
  const dense = measure(base);
  rows.push({
    method: "dense",
    bits: 16,
    groupSize: "",
    actOrder: "",
    [metric]: dense,
    bytes: denseBytes,
    seconds: 0,
  });
  console.error(`dense: ${metric} ${dense.toFixed(4)}`);
  let saved: Record<string, unknown> | undefined;
  for (const cfg of configs) {
    const model = await LlamaModel.load(values.model, { backend });
    const t0 = performance.now();
    const layers = await quantizeModel(model, calib, {
      method: cfg.method,
      bits: cfg.bits,
      groupSize: cfg.groupSize,
      actOrder: cfg.actOrder,
      sym: values.sym,
      mse: values.mse,
      staticGroups: values["static-groups"],
      trueSequential: !values["no-true-sequential"],
      names,
      ...(nm ? { nm } : {}),
    });
    const seconds = (performance.now() - t0) / 1000;
    const score = measure(model);
    const row = {
      method: cfg.method,
      bits: cfg.bits,
      groupSize: cfg.groupSize,
      actOrder: cfg.method === "gptq" ? (cfg.actOrder ? "on" : "off") : "",
      [metric]: score,
      bytes: Math.round(quantBytes(cfg.bits, cfg.groupSize)),
      seconds: Number(seconds.toFixed(1)),
    };
    rows.push(row);
    console.error(
      `${cfg.method} ${cfg.bits}-bit g${cfg.groupSize}${
        cfg.actOrder ? " act-order" : ""
      }: ${metric} ${score.toFixed(4)} (${seconds.toFixed(1)} s)`,
    );
    if (values.save) {
      const { checkpointFormat } = await saveQuantizedModel(
        model,
        values.model,
        values.save,
        layers,
        {
          format,
          actOrder: cfg.actOrder,
          staticGroups: values["static-groups"],
          trueSequential: !values["no-true-sequential"],
          method: cfg.method,
        },
      );
      const again = await loadQuantizedModel(values.save, { backend });
      const reloaded = measure(again);
      saved = { dir: values.save, format, checkpointFormat, [metric]: reloaded };
      console.error(
        `saved ${values.save} (${checkpointFormat}); reloaded: ${metric} ${reloaded.toFixed(6)}`,
      );
    }
  }
  const cols = ["method", "bits", "groupSize", "actOrder", metric, "bytes", "seconds"];
  const label = (r: (typeof rows)[number]) =>
    `${r.method} g${r.groupSize}${r.actOrder === "on" ? " act-order" : ""}`;
  const chart = lineChart({
    name: "quality-vs-bits",
    title: `Held-out ${metric} against bits per weight`,
    data: rows.filter((r) => r.method !== "dense").map((r) => ({
      setting: label(r),
      bits: r.bits as number,
      [metric]: r[metric] as number,
    })),
    x: "bits",
    y: metric,
    series: "setting",
    xInteger: true,
    xTitle: "bits per weight",
    rules: [{ y: dense, label: `dense ${dense.toFixed(3)}` }],
    width: 600,
    height: 340,
  });
  const md = [
    `# Weight quantization of \`${values.model}\``,
    `Projections ${names.join(", ")}; ${values.sym ? "symmetric" : "asymmetric"} levels${
      values.mse ? ", MSE clipping" : ""
    }${values["static-groups"] ? ", static groups" : ""}${
      nm ? `, ${nm.join(":")} sparsity first` : ""
    }; GPTQ calibrated on ${calib.length} windows of ${context + 1} tokens (seed ${seed}), ${
      values["no-true-sequential"] ? "all projections of a block at once" : "true-sequential"
    }; held-out = golden.json validation batch; backend ${backend}. Bytes: projections as the GPTQ format stores them, other tensors at the source dtype.`,
    markdownTable(rows, cols),
    ...(saved
      ? [
        `Saved to \`${saved.dir}\` as ${saved.format} (${saved.checkpointFormat}); reloaded ${metric}: ${
          (saved[metric] as number).toFixed(6)
        }.`,
      ]
      : []),
  ].join("\n\n");
  const files = await writeOutputs(await runFolder("quantize", values), {
    "results.json": JSON.stringify({ model: values.model, backend, metric, rows, saved }, null, 2),
    "results.csv": stringify(rows, { columns: cols }),
    "report.md": md + "\n",
    ...(await reportFiles({ title: "Weight quantization", markdown: md, charts: [chart] })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
