#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * One-shot sparsification of a Llama model's MLPs with magnitude, Wanda, SparseGPT and Sparse
 * Expansion, compared on held-out bits per byte against the dense model, with FLOPs per token
 * and memory; optionally saves one pruned model as safetensors.
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
import { selectBackend } from "../ffi/mod.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { DenseLinear } from "../lib/model/linear.ts";
import { LINEAR_NAMES, type LinearName, LlamaModel } from "../lib/model/llama.ts";
import { goldenValidationBatch, heldOutScorer } from "../lib/model/perplexity.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { ColorMap, lineChart, markdownTable, reportFiles } from "../lib/report/mod.ts";
import { meanSd } from "../lib/stats/descriptive.ts";
import { ExpertLinear, mlpFlopsPerToken, sparseExpand } from "../lib/sparse/expansion.ts";
import { saveModel } from "../lib/sparse/expansion_io.ts";
import { type PruneMethod, pruneModel } from "../lib/sparse/prune_model.ts";
import { checkModelPattern } from "../lib/sparse/mod.ts";
import { checkClusters } from "../lib/sparse/router.ts";

const MLP = ["gate_proj", "up_proj", "down_proj"] as const;

const USAGE = `
sparse_expand.ts — sparsify the MLPs of a Llama model and compare methods on held-out quality.

Usage: scripts/sparse_expand.ts [options]
       deno task sparse-expand [-- options]

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes)
  --data DIR           folder with the bundled corpora for calibration (default data)
  --methods LIST       of magnitude, wanda, sparsegpt, expand (default all four)
  --names LIST         projections the one-shot baselines prune (default gate_proj,up_proj,
                       down_proj, as Sparse Expansion, which always takes the MLPs)
  --sparsities LIST    unstructured sparsities in (0, 1) (default 0.5,0.7,0.9)
  --nm N:M             also an N:M pattern, e.g. 2:4
  --experts LIST       expert counts for expand (default 2,4; the paper uses up to 16)
  --calib-windows N    calibration windows of --context tokens (default 64)
  --context N          (default 256; at most the model's max_position_embeddings − 1)
  --restarts N         k-means restarts (default 4)
  --seed LIST          seeds of the calibration windows and the k-means starts (default 0); with
                       several, every method runs once per seed and the report adds the mean
                       and standard deviation over seeds (the charts plot the means)
  --hessian f64|f32    element type of the layer Hessians (default f64; f32 is what the
                       authors' PyTorch code uses, twice as fast to accumulate on the cpu)
  --save DIR           save the pruned or expanded model (one configuration only); experts are
                       written as bitmap + values in the source's dtype and load back
                       compressed with loadExpandedModel (lib/sparse/expansion_io.ts)
  --backend B          ts | cpu | cuda
  --out DIR            (default out/sparse_expand/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  -h, --help           this text

Every method prunes gate_proj, up_proj and down_proj of every block; attention stays dense (as
Sparse Expansion does). Held-out: the model folder's golden.json validation batch.
`;

await runScript({ name: "sparse_expand.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      data: { type: "string", default: "data" },
      methods: { type: "string", default: "magnitude,wanda,sparsegpt,expand" },
      names: { type: "string", default: "gate_proj,up_proj,down_proj" },
      sparsities: { type: "string", default: "0.5,0.7,0.9" },
      nm: { type: "string" },
      experts: { type: "string", default: "2,4" },
      "calib-windows": { type: "string", default: "64" },
      context: { type: "string", default: "256" },
      restarts: { type: "string", default: "4" },
      seed: { type: "string", default: "0" },
      hessian: { type: "string", default: "f64" },
      save: { type: "string" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
    },
    strict: true,
  });
  const methods = values.methods.split(",").map((m) => m.trim());
  for (const m of methods) {
    if (!["magnitude", "wanda", "sparsegpt", "expand"].includes(m)) {
      throw new RangeError(`--methods has '${m}': expected magnitude, wanda, sparsegpt or expand`);
    }
  }
  const sparsities = values.sparsities.split(",").filter((s) => s.trim()).map((s) =>
    numFlag("--sparsities", s, 1e-9, 1 - 1e-9)
  );
  const patterns: { label: string; x: number; sparsity?: number; nm?: [number, number] }[] =
    sparsities.map((s) => ({ label: `${s}`, x: s, sparsity: s }));
  if (values.nm) {
    const m = values.nm.match(/^(\d+):(\d+)$/);
    if (!m) throw new RangeError(`--nm '${values.nm}' is not N:M`);
    const nm: [number, number] = [Number(m[1]), Number(m[2])];
    patterns.push({ label: values.nm, x: nm[0] / nm[1], nm });
  }
  const experts = values.experts.split(",").map((e) => intFlag("--experts", e, 1));
  requirePermissions("sparse_expand.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/sparse_expand" },
    { name: "read", path: values.out ?? "out/sparse_expand" },
    ...(values.save
      ? [{ name: "write" as const, path: values.save }, {
        name: "read" as const,
        path: values.save,
      }]
      : []),
  ]);
  const seeds = [...new Set(values.seed.split(",").map((x) => intFlag("--seed", x.trim())))];
  if (
    values.save &&
    (methods.length !== 1 || patterns.length !== 1 || seeds.length !== 1 ||
      (methods[0] === "expand" && experts.length !== 1))
  ) {
    throw new RangeError(
      "--save needs exactly one method, one sparsity pattern, one seed and (for expand) one expert count",
    );
  }
  const backend = selectBackend(values.backend);
  const base = await LlamaModel.load(values.model, { backend });
  const tok = await loadTokenizer(values.model, base.config);
  const docs = await bundledDocuments(values.data);
  const count = intFlag("--calib-windows", values["calib-windows"], 1);
  // a calibration window is context + 1 tokens, all within the model's positions
  const context = intFlag("--context", values.context, 2, base.config.maxPositionEmbeddings - 1);
  const windows = (seed: number) => calibrationWindows(docs, tok, { count, context, seed });
  const names = values.names.split(",").map((n) => n.trim()) as LinearName[];
  for (const n of names) {
    if (!(LINEAR_NAMES as readonly string[]).includes(n)) {
      throw new RangeError(
        `--names has '${n}': expected projections among ${LINEAR_NAMES.join(", ")}`,
      );
    }
  }
  const hessian = values.hessian;
  if (hessian !== "f64" && hessian !== "f32") {
    throw new RangeError(`--hessian ${hessian}: expected f64 or f32`);
  }
  const held = await goldenValidationBatch(values.model);
  const { metric, score: measure } = heldOutScorer(held, tok.byteLevel);
  // bytes of the MLP weights: as dense f32 matrices (one per expert), and in the bitmap + values
  // form in which --save writes experts (counted with f32 values: d·4 + 1/8 bytes per entry at
  // density d; --save writes the source's dtype, F16 for the bundled model: d·2 + 1/8)
  const mlpBytes = (m: LlamaModel) => {
    let denseBytes = 0, bitmapBytes = 0;
    for (const b of m.blocks) {
      for (const name of MLP) {
        const l = b.linears[name];
        const mats = l instanceof ExpertLinear
          ? l.experts
          : l instanceof DenseLinear
          ? [l.weight]
          : [];
        for (const w of mats) {
          denseBytes += w.data.length * 4;
          bitmapBytes += w.data.reduce((a, v) => a + (v !== 0 ? 4 : 0), 0) +
            Math.ceil(w.cols / 8) * w.rows;
        }
      }
    }
    return { denseBytes, bitmapBytes };
  };
  // every pattern and expert count checked against the model and the calibration tokens before
  // the first run, not when its turn comes minutes later
  const calibs = new Map(seeds.map((seed) => [seed, windows(seed)]));
  const pruned = methods.includes("expand") ? [...new Set([...names, ...MLP])] : names;
  for (const p of patterns) {
    checkModelPattern(base, pruned, p.nm ? { nm: p.nm } : { sparsity: p.sparsity! });
  }
  if (methods.includes("expand")) {
    for (const calib of calibs.values()) {
      checkClusters(Math.max(...experts), calib.reduce((a, s) => a + s.length, 0));
    }
  }
  const rows: Record<string, string | number>[] = [];
  const denseMetric = measure(base), denseFlops = mlpFlopsPerToken(base).total;
  rows.push({
    method: "dense",
    experts: 1,
    pattern: "0",
    [metric]: denseMetric,
    mlpFlopsPerToken: denseFlops,
    ...mlpBytes(base),
  });
  console.error(`dense: ${denseMetric.toFixed(4)} ${metric}`);
  let calibCount = 0;
  for (const seed of seeds) {
    const calib = calibs.get(seed)!;
    calibCount = calib.length;
    for (const p of patterns) {
      for (const method of methods) {
        for (const e of method === "expand" ? experts : [1]) {
          const t0 = performance.now();
          using m = await LlamaModel.load(values.model, { backend });
          const pat = p.nm ? { nm: p.nm } : { sparsity: p.sparsity! };
          if (method === "expand") {
            await sparseExpand(m, calib, {
              experts: e,
              ...pat,
              restarts: intFlag("--restarts", values.restarts, 1),
              hessian,
              seed,
            });
          } else {
            await pruneModel(m, calib, {
              hessian,
              method: method as PruneMethod,
              ...pat,
              names,
            });
          }
          const q = measure(m), flops = mlpFlopsPerToken(m);
          const label = method === "expand" ? `expand×${e}` : method;
          rows.push({
            method: label,
            experts: e,
            pattern: p.label,
            seed,
            [metric]: q,
            mlpFlopsPerToken: flops.total,
            routerFlops: flops.router,
            ...mlpBytes(m),
            seconds: (performance.now() - t0) / 1000,
          });
          console.error(
            `${seeds.length > 1 ? `seed ${seed} ` : ""}${p.label} ${label}: ${
              q.toFixed(4)
            } ${metric}, ${(flops.total / 1e6).toFixed(3)} MFLOP/token`,
          );
          if (values.save) await saveModel(m, values.model, values.save);
        }
      }
    }
  }
  // one row per method and pattern: the mean over seeds (and, with several, their spread)
  const summary: Record<string, string | number>[] = [rows[0]!];
  for (const r of rows.slice(1)) {
    if (summary.some((x) => x.method === r.method && x.pattern === r.pattern)) continue;
    const same = rows.filter((x) => x.method === r.method && x.pattern === r.pattern);
    const [mean, sd] = meanSd(same.map((x) => x[metric] as number));
    const flops = same.reduce((a, x) => a + (x.mlpFlopsPerToken as number), 0) / same.length;
    const { seed: _seed, seconds: _s, ...rest } = r;
    summary.push({
      ...rest,
      [metric]: mean,
      mlpFlopsPerToken: flops,
      ...(seeds.length > 1 ? { sd, seeds: same.length } : {}),
    });
  }
  const labels = [
    ...new Set(summary.filter((r) => r.method !== "dense").map((r) => r.method as string)),
  ];
  const unstructured = (r: Record<string, string | number>) => !String(r.pattern).includes(":");
  const colors = new ColorMap(labels);
  const many = seeds.length > 1;
  const point = (r: Record<string, string | number>) => ({
    method: r.method as string,
    sparsity: Number(r.pattern),
    "MFLOP/token": (r.mlpFlopsPerToken as number) / 1e6,
    [metric]: r[metric] as number,
    ...(many
      ? {
        low: (r[metric] as number) - (r.sd as number),
        high: (r[metric] as number) + (r.sd as number),
      }
      : {}),
  });
  const denseRule = [{ y: denseMetric, label: `dense ${denseMetric.toFixed(3)}` }];
  const chart = lineChart({
    name: "quality-vs-sparsity",
    title: `Held-out ${metric} against MLP sparsity${
      many ? ` (means over ${seeds.length} seeds, band: ± sd)` : ""
    }`,
    section: "Sparse Expansion",
    data: summary.filter((r) => r.method !== "dense" && unstructured(r)).map(point),
    x: "sparsity",
    y: metric,
    series: "method",
    colors,
    rules: denseRule,
    ...(many ? { band: { lo: "low", hi: "high" } } : {}),
    width: 600,
    height: 340,
  });
  const flopsChart = lineChart({
    name: "quality-vs-flops",
    title: `Held-out ${metric} against MLP MFLOP per token (routers included)`,
    section: "Sparse Expansion",
    data: summary.filter((r) => r.method !== "dense").map(point),
    x: "MFLOP/token",
    y: metric,
    series: "method",
    colors,
    pointsOnly: true,
    rules: [...denseRule, {
      x: (summary[0]!.mlpFlopsPerToken as number) / 1e6,
      label: "dense FLOPs",
    }],
    width: 600,
    height: 340,
  });
  const cols = [
    "method",
    "pattern",
    metric,
    "mlpFlopsPerToken",
    "routerFlops",
    "denseBytes",
    "bitmapBytes",
  ];
  const md = [
    `# Sparse Expansion and one-shot baselines on \`${values.model}\``,
    `MLP projections only; ${calibCount} calibration windows${
      seeds.length > 1 ? ` per seed (seeds ${seeds.join(", ")})` : ""
    }; held-out = golden.json validation batch; backend ${backend}. MLP weight bytes: "denseBytes" as dense f32 matrices (E copies for E experts), "bitmapBytes" as a bitmap + f32 values, the form in which --save writes experts (d·4 + 1/8 bytes per entry at density d; --save writes values in the source checkpoint's dtype, for F16 d·2 + 1/8; dense and pruned baselines are saved as plain dense checkpoints).`,
    markdownTable(rows, seeds.length > 1 ? ["seed", ...cols] : cols),
    ...(seeds.length > 1
      ? [
        `Mean and sample standard deviation over the ${seeds.length} seeds:`,
        markdownTable(summary, ["method", "pattern", metric, "sd", "seeds", "mlpFlopsPerToken"]),
      ]
      : []),
  ].join("\n\n");
  const files = await writeOutputs(await runFolder("sparse_expand", values), {
    "results.json": JSON.stringify(
      { model: values.model, backend, metric, seeds, rows, summary },
      null,
      2,
    ),
    "results.csv": stringify(rows, { columns: [...cols, "experts", "seed", "seconds"] }),
    "report.md": md + "\n",
    ...(await reportFiles({
      title: "Sparse Expansion",
      markdown: md,
      charts: [chart, flopsChart],
    })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
