#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Wasserstein neurons of a Llama model: every MLP neuron's W1 distance to N(0,1) over
 * calibration tokens, the top-p% per layer, and the paper's entanglement ablation (prune with
 * those neurons kept dense versus random ones, or prune only them).
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { Rng } from "../lib/core/rng.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { evaluateLoss } from "../lib/model/perplexity.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import {
  barChart,
  boxPlotChart,
  type Chart,
  ColorMap,
  histogramChart,
  markdownTable,
  reportFiles,
} from "../lib/report/mod.ts";
import { type PruneMethod, pruneModel } from "../lib/sparse/prune_model.ts";
import {
  neuronOutputShift,
  neuronWasserstein,
  selectWassersteinNeurons,
} from "../lib/wasserstein/neurons.ts";
import { sparseExpand } from "../lib/sparse/expansion.ts";

const USAGE = `
wasserstein_neurons.ts — W1 of every MLP neuron's outputs to N(0,1), the top-p% per layer, and
the entanglement ablation (Sparse Expansion / Wasserstein neurons, ICLR 2025).

Usage: scripts/wasserstein_neurons.ts [options]
       deno task wasserstein [-- options]

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes)
  --data DIR           folder with the bundled corpora for calibration (default data)
  --calib-windows N    calibration windows (default 64)
  --context N          tokens per window (default 256; at most the model's
                       max_position_embeddings − 1)
  --percent P          top-P% neurons per layer (default 3)
  --sparsity S         ablation sparsity in (0, 1) (default 0.7)
  --method M           ablation pruner: sparsegpt | wanda | magnitude (default sparsegpt)
  --experts K          experts for the Sparse Expansion comparison (default 4)
  --random-draws N     random neuron sets for the control variants (default 3)
  --heldout N          validation windows to evaluate (default 64, all)
  --no-ablation        only measure and select neurons
  --seed N             calibration order and random-neuron seed (default 0)
  --backend B          ts | cpu | cuda
  --out DIR            output folder (default out/wasserstein_neurons/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  -h, --help           this text

Held-out quality is the bits per byte (nats/token otherwise) of the model folder's golden.json
validation batch. Neurons are ranked by the W1 of their gate_proj output (the SiLU input); a
neuron kept dense keeps its gate_proj and up_proj rows.
`;

await runScript({ name: "wasserstein_neurons.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      data: { type: "string", default: "data" },
      "calib-windows": { type: "string", default: "64" },
      context: { type: "string", default: "256" },
      percent: { type: "string", default: "3" },
      sparsity: { type: "string", default: "0.7" },
      method: { type: "string", default: "sparsegpt" },
      "no-ablation": { type: "boolean", default: false },
      experts: { type: "string", default: "4" },
      "random-draws": { type: "string", default: "3" },
      heldout: { type: "string", default: "64" },
      seed: { type: "string", default: "0" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
    },
    strict: true,
  });
  requirePermissions("wasserstein_neurons.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "write", path: values.out ?? "out/wasserstein_neurons" },
    { name: "read", path: values.out ?? "out/wasserstein_neurons" },
  ]);
  const backend = selectBackend(values.backend);
  const percent = numFlag("--percent", values.percent, 1e-9, 99.999);
  const sparsity = numFlag("--sparsity", values.sparsity, 1e-9, 1 - 1e-9);
  const seed = intFlag("--seed", values.seed);
  // every option checked before the measurement (minutes) starts
  const heldout = intFlag("--heldout", values.heldout, 1);
  const draws = intFlag("--random-draws", values["random-draws"], 1);
  const experts = intFlag("--experts", values.experts, 1);
  const method = values.method as PruneMethod;
  if (!["sparsegpt", "wanda", "magnitude"].includes(method)) {
    throw new RangeError(`--method '${values.method}' is not one of sparsegpt, wanda, magnitude`);
  }
  const model = await LlamaModel.load(values.model, { backend });
  const tok = await loadTokenizer(values.model, model.config);
  const calib = calibrationWindows(await bundledDocuments(values.data), tok, {
    count: intFlag("--calib-windows", values["calib-windows"], 1),
    // a calibration window is context + 1 tokens, all within the model's positions
    context: intFlag("--context", values.context, 2, model.config.maxPositionEmbeddings - 1),
    seed,
  });
  console.error(
    `measuring ${model.config.numLayers} layers × gate/up on ${calib.length} windows (${backend})`,
  );
  const layers = await neuronWasserstein(model, calib);
  const gate = layers.filter((l) => l.name === "gate_proj");
  const selected = new Map(gate.map((l) => [l.layer, selectWassersteinNeurons(l.w1, percent)]));
  const neuronRows: Record<string, unknown>[] = [];
  const layerRows: Record<string, unknown>[] = [];
  for (const l of layers) {
    const sel = new Set(selectWassersteinNeurons(l.w1, percent));
    l.w1.forEach((w, j) =>
      neuronRows.push({
        layer: l.layer,
        name: l.name,
        neuron: j,
        w1: w,
        selected: sel.has(j) ? 1 : 0,
      })
    );
    const f = Array.from(l.w1).filter(Number.isFinite).sort((a, b) => a - b);
    layerRows.push({
      layer: l.layer,
      name: l.name,
      tokens: l.tokens,
      neurons: l.w1.length,
      medianW1: f[f.length >> 1],
      maxW1: f[f.length - 1],
      selected: sel.size,
      mostGaussian: l.extremes.least.neuron,
      leastGaussian: l.extremes.most.neuron,
      zeroVariance: l.zeroVariance.map((j) => `${l.name} neuron ${j}`).join("; "),
    });
    for (const j of l.zeroVariance) {
      console.error(`note: layer ${l.layer} ${l.name} neuron ${j} has zero variance: no W1`);
    }
  }
  // ablation
  const ablation: { variant: string; metric: number }[] = [];
  const shiftRows: Record<string, number>[] = [];
  let metricName = "bits/byte";
  if (!values["no-ablation"]) {
    const golden = JSON.parse(
      await Deno.readTextFile(`${values.model}/golden.json`).catch(() => {
        throw new RangeError(
          `'${values.model}' has no golden.json validation batch for the ablation; use --no-ablation`,
        );
      }),
    );
    const held: number[][] = golden.val_batch.sequences.slice(0, heldout);
    const measure = (m: LlamaModel) => {
      const r = evaluateLoss(m, held, { byteLevel: tok.byteLevel });
      if (!tok.byteLevel) metricName = "nats/token";
      return tok.byteLevel ? r.bitsPerByte : r.meanNats;
    };
    ablation.push({ variant: "dense", metric: measure(model) });
    const rng = new Rng(seed + 1);
    const I = model.config.intermediateSize;
    const randomSels = Array.from({ length: draws }, () =>
      new Map(
        gate.map((l) => [
          l.layer,
          rng.shuffle(Array.from({ length: I }, (_, j) => j)).slice(
            0,
            selected.get(l.layer)!.length,
          ),
        ]),
      ));
    const rowsOf = (pick: number[], prunable: boolean) => {
      const r = new Uint8Array(I).fill(prunable ? 0 : 1);
      for (const j of pick) r[j] = prunable ? 1 : 0;
      return r;
    };
    type Variant = [
      string,
      readonly ("gate_proj" | "up_proj" | "down_proj")[],
      (l: number) => Uint8Array | undefined,
    ];
    const MLP = ["gate_proj", "up_proj", "down_proj"] as const,
      GU = ["gate_proj", "up_proj"] as const;
    const variants: Variant[] = [
      [`prune all (${sparsity})`, MLP, () => undefined],
      [`keep top-${percent}% W1 dense`, MLP, (l) => rowsOf(selected.get(l)!, false)],
      ...randomSels.map((
        sel,
        d,
      ): Variant => [
        `keep random ${percent}% dense (draw ${d + 1})`,
        MLP,
        (l) => rowsOf(sel.get(l)!, false),
      ]),
      [`prune only top-${percent}% W1`, GU, (l) => rowsOf(selected.get(l)!, true)],
      ...randomSels.map((
        sel,
        d,
      ): Variant => [
        `prune only random ${percent}% (draw ${d + 1})`,
        GU,
        (l) => rowsOf(sel.get(l)!, true),
      ]),
    ];
    let pruneAll: LlamaModel | undefined;
    for (const [variant, names, rows] of variants) {
      console.error(`ablation: ${variant}`);
      const m = await LlamaModel.load(values.model, { backend });
      await pruneModel(m, calib, {
        method,
        sparsity,
        names,
        prunableRows: (layer, name) => name === "down_proj" ? undefined : rows(layer),
      });
      ablation.push({ variant, metric: measure(m) });
      if (!pruneAll) pruneAll = m;
      else m.dispose();
    }
    for (const kind of [`keep random ${percent}% dense`, `prune only random ${percent}%`]) {
      const xs = ablation.filter((a) => a.variant.startsWith(`${kind} (draw`)).map((a) => a.metric);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      const sd = Math.sqrt(
        xs.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, xs.length - 1),
      );
      ablation.push({
        variant: `${kind} (mean of ${xs.length}, sd ${sd.toFixed(4)})`,
        metric: mean,
      });
    }
    // Sparse Expansion at the same sparsity: quality, and how far the Wasserstein neurons' outputs
    // moved from the dense model's compared with plain pruning (the paper reports a large drop)
    console.error(`ablation: Sparse Expansion ×${experts}`);
    using se = await LlamaModel.load(values.model, { backend });
    await sparseExpand(se, calib, { experts, sparsity, restarts: 4, seed });
    ablation.push({ variant: `Sparse Expansion ×${experts} (${sparsity})`, metric: measure(se) });
    const probe = held.slice(0, 16);
    const before = neuronOutputShift(model, pruneAll!, probe, selected);
    const after = neuronOutputShift(model, se, probe, selected);
    for (const l of gate) {
      const b = before.get(l.layer)!, a = after.get(l.layer)!;
      const mean = (x: Float64Array) => x.reduce((s, v) => s + v, 0) / (x.length || 1);
      shiftRows.push({
        layer: l.layer,
        neurons: b.length,
        w1ToDensePruned: mean(b),
        w1ToDenseExpanded: mean(a),
        drop: 1 - mean(a) / mean(b),
      });
    }
    pruneAll!.dispose();
  }
  // report
  const charts: Chart[] = [boxPlotChart({
    name: "w1-per-layer",
    title: "W1 to N(0,1) of gate_proj neurons, per layer",
    section: "Per layer",
    groups: gate.map((l) => ({ label: `layer ${l.layer}`, values: l.w1 })),
    yTitle: "W1",
    height: 260,
  })];
  // the ablation in two charts, each on its own range so that small differences show: pruning
  // the MLP with some neurons kept dense, and pruning only some neurons; the random draws' means
  // carry the range of their draws
  if (ablation.length) {
    const dense = ablation[0]!.metric;
    const drawsOf = (variant: string) => {
      const kind = variant.replace(/ \(mean of .*$/, "");
      return ablation.filter((a) => a.variant.startsWith(`${kind} (draw`)).map((a) => a.metric);
    };
    const rowsOf = (keep: (v: string) => boolean) =>
      ablation.filter((a) => keep(a.variant)).map((a) => {
        const draws = a.variant.includes("(mean of") ? drawsOf(a.variant) : [];
        return {
          variant: a.variant,
          [metricName]: a.metric,
          "lowest draw": draws.length ? Math.min(...draws) : null,
          "highest draw": draws.length ? Math.max(...draws) : null,
        };
      });
    const common = {
      section: "Ablation",
      x: "variant",
      y: metricName,
      xTitle: null,
      error: { lo: "lowest draw", hi: "highest draw" },
      horizontal: true,
      yZero: false,
      valueFormat: ".4f",
      width: 520,
    };
    const kept = rowsOf((v) => !v.startsWith("dense") && !v.startsWith("prune only"));
    const only = rowsOf((v) => v.startsWith("dense") || v.startsWith("prune only"));
    charts.push(
      barChart({
        ...common,
        name: "ablation-keep-dense",
        title: `Held-out ${metricName} (lower is better): ${method} at ${sparsity} on the MLP, ` +
          `some neurons kept dense (dense model: ${
            dense.toFixed(4)
          }; whiskers: range of the draws)`,
        data: kept,
        height: 26 * kept.length,
      }),
      barChart({
        ...common,
        name: "ablation-prune-only",
        title: `Held-out ${metricName} (lower is better): only some neurons pruned ` +
          `(whiskers: range of the draws)`,
        data: only,
        rules: [{ y: dense, label: "dense" }],
        height: 26 * only.length,
      }),
    );
  }
  const colors = new ColorMap(["most non-Gaussian", "most Gaussian"]);
  for (const l of gate) {
    charts.push(histogramChart({
      name: `outputs-layer-${l.layer}`,
      title:
        `Layer ${l.layer} gate_proj: z-scored outputs of neurons #${l.extremes.most.neuron} (W1 ${
          l.w1[l.extremes.most.neuron]!.toFixed(3)
        }) and #${l.extremes.least.neuron} (W1 ${l.w1[l.extremes.least.neuron]!.toFixed(3)})`,
      section: "Most and least Gaussian",
      series: [
        { label: "most non-Gaussian", values: l.extremes.most.values },
        { label: "most Gaussian", values: l.extremes.least.values },
      ],
      colors,
      normal: true,
      bins: 60,
      xTitle: "z-scored output",
      width: 400,
      height: 200,
    }));
  }
  const md = [
    `# Wasserstein neurons of \`${values.model}\``,
    `${calib.length} calibration windows of ${
      calib[0]!.length - 1
    } tokens; top ${percent}% per layer (strictly above the ${
      100 - percent
    }th percentile); backend ${backend}.`,
    "## Per layer",
    markdownTable(layerRows, [
      "layer",
      "name",
      "tokens",
      "medianW1",
      "maxW1",
      "selected",
      "leastGaussian",
      "mostGaussian",
    ]),
    ...(ablation.length
      ? [
        "## Ablation",
        `${method}, sparsity ${sparsity} on the MLP; held-out: golden.json validation batch.`,
        markdownTable(ablation, ["variant", "metric"]),
      ]
      : []),
    ...(shiftRows.length
      ? [
        "## Wasserstein neurons before and after expansion",
        "Mean W1 between each selected neuron's gate_proj outputs in the dense model and in the compressed one, on 16 held-out windows: plain pruning (prune all) against Sparse Expansion at the same sparsity.",
        markdownTable(shiftRows, [
          "layer",
          "neurons",
          "w1ToDensePruned",
          "w1ToDenseExpanded",
          "drop",
        ]),
      ]
      : []),
    "## Most and least Gaussian gate_proj neurons",
    "Per layer, the z-scored outputs of the neuron farthest from N(0,1) in W1 and of the nearest: histograms in report.html (data: chart-outputs-layer-*.vl.json).",
  ].join("\n\n");
  const files = await writeOutputs(await runFolder("wasserstein_neurons", values), {
    "neurons.csv": stringify(neuronRows, {
      columns: ["layer", "name", "neuron", "w1", "selected"],
    }),
    "layers.json": JSON.stringify(layerRows, null, 2),
    // the ablation's tables only when it ran (not with --no-ablation)
    ...(ablation.length
      ? {
        "ablation.csv": stringify(ablation, { columns: ["variant", "metric"] }),
        "expansion_shift.csv": stringify(shiftRows, {
          columns: ["layer", "neurons", "w1ToDensePruned", "w1ToDenseExpanded", "drop"],
        }),
      }
      : {}),
    "results.json": JSON.stringify(
      {
        model: values.model,
        backend,
        percent,
        sparsity,
        method,
        metric: metricName,
        layers: layerRows,
        ablation,
        expansionShift: shiftRows,
      },
      null,
      2,
    ),
    "report.md": md + "\n",
    ...(await reportFiles({
      title: `Wasserstein neurons of ${values.model}`,
      markdown: md,
      charts,
    })),
  });
  console.log(md);
  console.error(`wrote ${files.join(", ")}`);
});
