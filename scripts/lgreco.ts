#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * L-GreCo (Alimohammadi et al., MLSys 2024): per-layer adaptive gradient compression on
 * data-parallel training. For each compression family (bucketed quantization, Top-K, PowerSGD)
 * the bundled model is fine-tuned from the same start, with the same batches, uncompressed, with
 * every layer at the uniform level, and with L-GreCo's per-layer levels (the authors' schedule
 * and DP: lib/comm/lgreco.ts); the report gives each run's bytes, its held-out bits/byte, the
 * loss curves and the per-layer levels over time. Runs on one process (the compressors' effect
 * on training, simulated) or on the ranks of an mpirun job (`--dist mpi`).
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { COMM_BACKENDS, createCommunicator } from "../lib/comm/communicator.ts";
import { exitIfRankFailed, onEveryRank } from "../lib/comm/ranks.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { AccordionLevels, CompressedExchange, LgrecoLevels } from "../lib/train/compressed.ts";
import {
  COMPRESSION_FAMILIES,
  type CompressionFamily,
  familyCompressor,
} from "../lib/train/compressors.ts";
import { loadTextData } from "../lib/train/data.ts";
import { LlamaParams } from "../lib/train/params.ts";
import { Trainer } from "../lib/train/trainer.ts";
import {
  type Chart,
  ColorMap,
  heatmapChart,
  lineChart,
  markdownTable,
  reportFiles,
} from "../lib/report/mod.ts";

const USAGE = `
lgreco.ts — L-GreCo: per-layer adaptive gradient compression (quantization, Top-K, PowerSGD)
compared with uniform compression and none, on data-parallel fine-tuning of a Llama model.

Usage: scripts/lgreco.ts [options]
       mpirun -np N deno run --no-prompt --allow-read --allow-write=out \\
         --allow-ffi=ffi/build scripts/lgreco.ts --dist mpi [options]
       deno task lgreco [-- options]

  --families LIST      quantize,topk,powersgd (default all three)
  --model DIR          checkpoint to fine-tune (default data/models/tinyllama-bytes)
  --train FILE         training documents (default data/toxic_spans/semeval2021/tsd_train.csv)
  --heldout FILE       held-out documents (default data/toxic_spans/semeval2021/tsd_test.csv)
  --field NAME         JSONL/CSV text field (default text)
  --steps N            optimiser steps per run (default 60)
  --batch N            sequences per rank per step (default 4); --context N tokens (default 128)
  --lr X               peak learning rate (default 3e-4, warm-up 5 steps, cosine to lr/10)
  --warmup N           L-GreCo's uncompressed steps (default 10)
  --adjust-freq N      steps per L-GreCo window (default 15); --acc-iter N (default 5)
  --alpha X            error budget = alpha × the uniform setting's error (default 1)
  --eval-windows N     held-out windows (default 16)
  --seed N             data order (default 0)
  --dist B             single (default) | mpi (the ranks of an mpirun job)
  --backend B          ts | cpu | cuda
  --out DIR            report folder (default out/lgreco/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  --json               also print results.json
  -h, --help           this text

The candidate levels (and the uniform one, in brackets): quantize bits 2,3,4,[4],6,8 (bucket 1024,
stochastic rounding); topk densities 0.001,0.003,[0.01],0.03,0.1; powersgd ranks 2,3,[4],5,6,7,8
(the authors' [r/2, 2r] around r = 4); for PowerSGD also Accordion (rank 4 in critical regimes,
2 elsewhere, decided per tensor at the same windows). Every run has error feedback. Time: 8 runs
of 60 steps of 4 × 128 tokens, about 3–6 minutes on 2 cores.
`;

type RunRow = {
  family: string;
  setting: string;
  step: number;
  loss: number;
  sentBytes: number;
};

await runScript({ name: "lgreco.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      families: { type: "string", default: COMPRESSION_FAMILIES.join(",") },
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      train: { type: "string", default: "data/toxic_spans/semeval2021/tsd_train.csv" },
      heldout: { type: "string", default: "data/toxic_spans/semeval2021/tsd_test.csv" },
      field: { type: "string", default: "text" },
      steps: { type: "string", default: "60" },
      batch: { type: "string", default: "4" },
      context: { type: "string", default: "128" },
      lr: { type: "string", default: "3e-4" },
      warmup: { type: "string", default: "10" },
      "adjust-freq": { type: "string", default: "15" },
      "acc-iter": { type: "string", default: "5" },
      alpha: { type: "string", default: "1" },
      "eval-windows": { type: "string", default: "16" },
      seed: { type: "string", default: "0" },
      dist: { type: "string", default: "single" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  const families = values.families.split(",").map((f) => f.trim()).filter(Boolean);
  for (const f of families) {
    if (!(COMPRESSION_FAMILIES as readonly string[]).includes(f)) {
      throw new RangeError(
        `--families: ${JSON.stringify(f)} is not one of ${COMPRESSION_FAMILIES.join(", ")}`,
      );
    }
  }
  if (!(COMM_BACKENDS as readonly string[]).includes(values.dist)) {
    throw new RangeError(
      `--dist ${JSON.stringify(values.dist)} is not one of ${COMM_BACKENDS.join(", ")}`,
    );
  }
  const steps = intFlag("--steps", values.steps, 1);
  const batch = intFlag("--batch", values.batch, 1);
  const lr = numFlag("--lr", values.lr, 0, 1);
  const warmup = intFlag("--warmup", values.warmup, 0);
  const adjustFreq = intFlag("--adjust-freq", values["adjust-freq"], 1);
  const accIter = intFlag("--acc-iter", values["acc-iter"], 1, adjustFreq);
  const alpha = numFlag("--alpha", values.alpha, 0);
  const evalWindows = intFlag("--eval-windows", values["eval-windows"], 1);
  const seed = intFlag("--seed", values.seed);
  requirePermissions("lgreco.ts", [
    { name: "read", path: values.train },
    { name: "read", path: values.heldout },
    { name: "read", path: values.model },
    { name: "write", path: values.out ?? "out/lgreco" },
    { name: "read", path: values.out ?? "out/lgreco" },
  ]);
  const backend = selectBackend(values.backend);
  using comm = createCommunicator(values.dist);
  const root = comm.rank === 0;
  const log = (line: string) => root && console.error(line);

  const data = await exitIfRankFailed(onEveryRank(comm, async () => {
    const model = await LlamaModel.load(values.model, { backend: "ts" });
    const tok = await loadTokenizer(values.model, model.config);
    const context = intFlag("--context", values.context, 1, model.config.maxPositionEmbeddings);
    const { train, heldoutBatches: heldout } = await loadTextData(tok, {
      ...values,
      context,
      heldoutWindows: evalWindows,
      batch,
    });
    return { init: LlamaParams.fromModel(model), train, heldout, context };
  }));
  const { init, train, heldout, context } = data;
  log(
    `lgreco: ${values.model}, ${comm.size} rank(s) × ${batch} windows of ${context} tokens, ${steps} steps per run, ${backend} backend; families ${
      families.join(", ")
    }`,
  );

  const rows: RunRow[] = [];
  const summary: Record<string, unknown>[] = [];
  const choices: { family: string; step: number; tensor: string; level: number | null }[] = [];
  const charts: Chart[] = [];
  // one colour per kind of run in every family's chart
  const colors = new ColorMap(["uncompressed", "uniform", "L-GreCo", "Accordion"]);

  /** One training run from the same start; returns its final held-out bits/byte and bytes. */
  async function run(family: string, setting: string, exchange?: CompressedExchange) {
    const t = new Trainer(init.clone(), train, {
      steps,
      microBatch: batch,
      lr,
      warmup: Math.min(5, steps - 1),
      seed,
    }, { backend, comm, ...(exchange ? { exchange } : {}) });
    let bytes = 0, compressedBytes = 0;
    const t0 = performance.now();
    const bar = progress(`${family} ${setting}`, steps, root ? {} : { enabled: false });
    for (let s = 0; s < steps; s++) {
      const r = await t.trainStepAsync();
      bar.tick();
      // uncompressed: the gradient a rank hands to the all-reduce (also in a world of one)
      const sent = exchange ? r.sentBytes : init.data.byteLength;
      bytes += sent;
      if (r.step > warmup) compressedBytes += sent;
      rows.push({ family, setting, step: r.step, loss: r.loss, sentBytes: sent });
    }
    bar.stop();
    t.checkReplicas("at the end");
    const bpb = t.evaluate(heldout).bitsPerByte;
    const seconds = (performance.now() - t0) / 1000;
    log(
      `  ${family} ${setting}: held-out ${bpb.toFixed(4)} bits/byte, ${
        (bytes / 2 ** 20).toFixed(1)
      } MiB sent per rank, ${seconds.toFixed(0)} s`,
    );
    return { bpb, bytes, compressedBytes, seconds };
  }

  const base = await run("none", "uncompressed");
  summary.push({ family: "none", setting: "uncompressed", ...base, ratio: 1 });
  for (const family of families as CompressionFamily[]) {
    const f = familyCompressor(family);
    const uniformLevel = f.candidates[f.uniform]!;
    // uniform: the same uncompressed warm-up, then every 2-D tensor at the uniform level
    const uni = await run(
      family,
      `uniform ${uniformLevel}`,
      new CompressedExchange(comm, init, f.compressor, {
        level: () => null,
        onInput: (_x, step, ex) => {
          for (const v of init.layout.views) {
            if (v.shape.length === 2) ex.setLevel(v.name, step > warmup ? uniformLevel : null);
          }
        },
      }),
    );
    const levels = new LgrecoLevels(comm, init, f.compressor, {
      candidates: f.candidates,
      uniform: f.uniform,
      warmup,
      adjustFreq,
      accIter,
      alpha,
    });
    const ex = new CompressedExchange(comm, init, f.compressor, {
      level: () => null,
      onInput: levels.onInput,
    });
    const lg = await run(family, "L-GreCo", ex);
    for (const h of levels.history) {
      levels.names.forEach((n, l) =>
        choices.push({ family, step: h.step, tensor: n, level: f.candidates[h.choice[l]!]! })
      );
    }
    // at equal error (α = 1): the DP's bytes against the uniform setting's, on the measured tables
    const solves = levels.history.filter((h) => h.adjustment);
    const dpRatio = solves.length
      ? solves.reduce((a, h) => {
        const adj = h.adjustment!;
        const uniBytes = adj.bytes.reduce((s, b) => s + b[f.uniform]!, 0);
        return a + uniBytes / adj.solution.bytes;
      }, 0) / solves.length
      : NaN;
    // Accordion (PowerSGD, the authors' comparison): the uniform rank in critical regimes, half of
    // it elsewhere, decided per tensor at the same windows
    if (family === "powersgd") {
      const acc = new AccordionLevels(comm, init, {
        fine: uniformLevel,
        coarse: f.candidates[0]!,
        warmup,
        interval: adjustFreq,
      });
      const ac = await run(
        family,
        "Accordion",
        new CompressedExchange(comm, init, f.compressor, {
          level: () => null,
          onInput: acc.onInput,
        }),
      );
      summary.push({
        family,
        setting: `Accordion ${f.candidates[0]}/${uniformLevel}`,
        ...ac,
        ratio: base.bytes / ac.bytes,
      });
    }
    summary.push(
      { family, setting: `uniform ${uniformLevel}`, ...uni, ratio: base.bytes / uni.bytes },
      {
        family,
        setting: "L-GreCo",
        ...lg,
        ratio: base.bytes / lg.bytes,
        overUniform: uni.compressedBytes / lg.compressedBytes,
        dpRatio,
      },
    );
    const kinds = ["uncompressed", `uniform ${uniformLevel}`, "L-GreCo", "Accordion"].filter((
      setting,
    ) => setting !== "Accordion" || family === "powersgd");
    charts.push(lineChart({
      name: `loss-${family}`,
      title: `${family}: training loss (uniform level ${uniformLevel})`,
      data: rows.filter((r) =>
        (r.family === family || r.family === "none") && kinds.includes(r.setting)
      ).map((r) => ({
        run: r.setting.replace(/ .*$/, ""),
        step: r.step,
        loss: r.loss,
      })),
      x: "step",
      y: "loss",
      series: "run",
      colors,
      xInteger: true,
      yTitle: "nats/token",
      rules: [{ x: warmup + 0.5, label: "end of warm-up" }],
    }));
    if (solves.length) {
      const steps = [...new Set(choices.filter((c) => c.family === family).map((c) => c.step))];
      charts.push(heatmapChart({
        name: `levels-${family}`,
        title: `${family}: L-GreCo's level per tensor at each solve`,
        data: levels.names.flatMap((n) =>
          steps.map((s) => ({
            tensor: n.replace("model.layers.", "L").replace(".weight", ""),
            solve: `step ${s + 1}`,
            level: choices.find((c) => c.family === family && c.step === s && c.tensor === n)
              ?.level ?? null,
          }))
        ),
        x: "solve",
        y: "tensor",
        value: "level",
        digits: family === "topk" ? 3 : 0,
        cellHeight: 16,
      }));
    }
  }
  if (!root) return;

  const results = {
    model: values.model,
    ranks: comm.size,
    dist: comm.describe(),
    backend,
    steps,
    batch,
    context,
    lgreco: { warmup, adjustFreq, accIter, alpha },
    runs: summary,
  };
  const table = markdownTable(
    summary.map((r) => ({
      family: r.family,
      setting: r.setting,
      "held-out bits/byte": r.bpb,
      "MiB sent per rank": (r.bytes as number) / 2 ** 20,
      "after warm-up": (r.compressedBytes as number) / 2 ** 20,
      "uncompressed / this": r.ratio,
      "uniform / L-GreCo after warm-up": r.overUniform ?? "",
      "uniform / L-GreCo in the DP's tables": r.dpRatio ?? "",
    })),
    [
      "family",
      "setting",
      "held-out bits/byte",
      "MiB sent per rank",
      "after warm-up",
      "uncompressed / this",
      "uniform / L-GreCo after warm-up",
      "uniform / L-GreCo in the DP's tables",
    ],
  );
  const md =
    `# L-GreCo\n\n${values.model} fine-tuned on ${comm.size} rank(s) × ${batch} windows of ${context} tokens, ${steps} steps per run, the same start and batches; the first ${warmup} steps uncompressed in every compressed run, then L-GreCo re-solves every ${adjustFreq} steps on the last ${accIter} steps' inputs with the error budget α = ${alpha} × the uniform level's. Bytes: what a rank hands to the communicator per step (an all-reduce's buffer once). "In the DP's tables": the uniform level's bytes over the DP choice's on the same measured tables (at α = 1 the choice's total error is below the uniform level's), averaged over the solves.\n\n` +
    table + "\n";
  const files = await writeOutputs(await runFolder("lgreco", values), {
    "results.json": JSON.stringify(results, null, 2),
    "runs.csv": stringify(rows, { columns: ["family", "setting", "step", "loss", "sentBytes"] }),
    "levels.csv": stringify(choices.map((c) => ({ ...c, level: c.level ?? "raw" })), {
      columns: ["family", "step", "tensor", "level"],
    }),
    "report.md": md,
    ...(await reportFiles({ title: "L-GreCo", markdown: md, charts })),
  });
  console.log(table);
  console.error(`wrote ${files.join(", ")}`);
  if (values.json) console.log(JSON.stringify(results, null, 2));
});
