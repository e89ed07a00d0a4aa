#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Trains a Llama model: fine-tunes a checkpoint (default: the bundled model on the SemEval-2021
 * toxic-spans comments, held-out bits/byte on their test split) or trains one from scratch, with
 * AdamW, clipping, warm-up + cosine, gradient accumulation, held-out evaluation, checkpoints that
 * resume exactly, and a report. With `--dist mpi` (started by `mpirun -np N`) it trains
 * data-parallel: each rank trains on its own share of every batch, the gradient is all-reduced in
 * buckets while the backward runs, rank 0 evaluates its share, writes the report and the
 * checkpoints, and every rank's weights are checked equal (a hash) at each checkpoint and at the
 * end.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { COMM_BACKENDS, createCommunicator } from "../lib/comm/communicator.ts";
import { exitIfRankFailed, onEveryRank } from "../lib/comm/ranks.ts";
import { stringify } from "@std/csv";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { Rng } from "../lib/core/rng.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import type { LlamaConfig } from "../lib/model/config.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ByteTokenizer, loadTokenizer, type TextTokenizer } from "../lib/model/tokenizer.ts";
import { savedBytesPerToken } from "../lib/train/backward.ts";
import { type Checkpoint, loadCheckpoint, saveTrainedModel } from "../lib/train/checkpoint.ts";
import { loadTextData } from "../lib/train/data.ts";
import { LlamaParams } from "../lib/train/params.ts";
import { type StepResult, Trainer } from "../lib/train/trainer.ts";
import { DEFAULT_BUCKET_BYTES } from "../lib/train/ddp.ts";
import { lineChart, markdownTable, reportFiles } from "../lib/report/mod.ts";

const USAGE = `
train.ts — train a Llama model (fine-tune a checkpoint, or from scratch) with AdamW.

Usage: scripts/train.ts [options]
       deno task train [-- options]

Data (documents: a .txt file is one document, .jsonl/.csv/.tsv give one per record's --field):
  --train FILE         training documents (default data/toxic_spans/semeval2021/tsd_train.csv)
  --heldout FILE       held-out documents (default data/toxic_spans/semeval2021/tsd_test.csv)
  --field NAME         JSONL/CSV field holding the text (default text)

Model:
  --model DIR          checkpoint to fine-tune (default data/models/tinyllama-bytes)
  --from-scratch       a new model with the byte tokenizer, sized by:
    --layers N --hidden N --heads N --kv-heads N --intermediate N --max-positions N
                       (defaults 4, 128, 4, 2, 384, 512)
  --resume DIR         continue the run whose checkpoints are in DIR, exactly as if it had not
                       stopped (its hyperparameters and data position come from the checkpoint)

Training:
  --steps N            optimiser steps (default 40)
  --batch N            sequences per micro-batch (default 8)
  --accumulate N       micro-batches per step (default 1)
  --context N          tokens per training window (default 256)
  --lr X               peak learning rate (default 1e-4); --min-lr X (default lr/10)
  --warmup N           linear warm-up steps (default 4)
  --weight-decay X     on projections (default 0.1); --clip X global-norm clipping (default 1, 0 off)
  --seed N             data order and from-scratch initialisation (default 0)
  --eval-every N       held-out bits/byte every N steps (default 10, and at the start and end)
  --eval-windows N     held-out windows (default 16)
  --checkpoint DIR     write a checkpoint every --checkpoint-every N steps (default 10) into DIR
  --save DIR           write the trained model there (HF layout, F32; loadable by LlamaModel.load)
  --backend B          ts | cpu | cuda

Data-parallel (several processes or machines):
  --dist B             single (one process, the default) | mpi: the ranks of an mpirun job,
                       mpirun -np N deno run --allow-ffi=ffi/build … scripts/train.ts --dist mpi;
                       each rank trains on --batch sequences of every micro-batch (the global
                       batch is N × --batch), the gradient is summed over the ranks in buckets
                       during the backward, rank 0 writes every output
  --bucket-mb X        gradient bucket size in MiB (default 25, as PyTorch DDP)
  --comm-timeout S     mpi: the most seconds a rank waits for the others (default 600)
  --out DIR            report folder (default out/train/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  --json               also print results.json
  -h, --help           this text

Time: a step of 8 × 256 tokens of the bundled model takes about 1–4 s on the cpu backend of a
2-core machine, so the defaults run in a few minutes.
`;

function scratchConfig(v: Record<string, string | boolean | undefined>): LlamaConfig {
  const n = (flag: string, def: number) =>
    intFlag(`--${flag}`, (v[flag] as string | undefined) ?? String(def), 1, 1 << 16);
  const hidden = n("hidden", 128), heads = n("heads", 4), kvHeads = n("kv-heads", 2);
  if (hidden % heads !== 0 || (hidden / heads) % 2 !== 0) {
    throw new RangeError(`--hidden ${hidden} must be a multiple of 2·--heads (${heads})`);
  }
  if (heads % kvHeads !== 0) {
    throw new RangeError(`--heads ${heads} is not a multiple of --kv-heads ${kvHeads}`);
  }
  return {
    vocabSize: 258,
    hiddenSize: hidden,
    intermediateSize: n("intermediate", 384),
    numLayers: n("layers", 4),
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim: hidden / heads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: false,
    maxPositionEmbeddings: n("max-positions", 512),
    bosTokenId: 256,
    eosTokenIds: [257],
    tokenizer: "bytes",
  };
}

interface HistoryRow {
  step: number;
  lr: number;
  loss: number;
  gradNorm: number;
  tokens: number;
  seconds: number;
  /** Seconds waiting for the gradient all-reduce (absent in runs from before --dist). */
  waitSeconds?: number;
  heldoutBitsPerByte?: number;
}

await runScript({ name: "train.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      train: { type: "string", default: "data/toxic_spans/semeval2021/tsd_train.csv" },
      heldout: { type: "string", default: "data/toxic_spans/semeval2021/tsd_test.csv" },
      field: { type: "string", default: "text" },
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      "from-scratch": { type: "boolean", default: false },
      layers: { type: "string" },
      hidden: { type: "string" },
      heads: { type: "string" },
      "kv-heads": { type: "string" },
      intermediate: { type: "string" },
      "max-positions": { type: "string" },
      resume: { type: "string" },
      steps: { type: "string", default: "40" },
      batch: { type: "string", default: "8" },
      accumulate: { type: "string", default: "1" },
      context: { type: "string", default: "256" },
      lr: { type: "string", default: "1e-4" },
      "min-lr": { type: "string" },
      warmup: { type: "string", default: "4" },
      "weight-decay": { type: "string", default: "0.1" },
      clip: { type: "string", default: "1" },
      seed: { type: "string", default: "0" },
      "eval-every": { type: "string", default: "10" },
      "eval-windows": { type: "string", default: "16" },
      checkpoint: { type: "string" },
      "checkpoint-every": { type: "string", default: "10" },
      save: { type: "string" },
      backend: { type: "string" },
      dist: { type: "string", default: "single" },
      "bucket-mb": { type: "string", default: String(DEFAULT_BUCKET_BYTES / 2 ** 20) },
      "comm-timeout": { type: "string", default: "600" },
      ...RUN_FOLDER_FLAGS,
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  // every option is checked before any work
  const steps = intFlag("--steps", values.steps, 1);
  const batch = intFlag("--batch", values.batch, 1);
  const accumulate = intFlag("--accumulate", values.accumulate, 1);
  const lr = numFlag("--lr", values.lr, 0, 1);
  const minLr = values["min-lr"] === undefined
    ? lr / 10
    : numFlag("--min-lr", values["min-lr"], 0, lr);
  const warmup = intFlag("--warmup", values.warmup, 0);
  const weightDecay = numFlag("--weight-decay", values["weight-decay"], 0, 10);
  const clip = numFlag("--clip", values.clip, 0);
  const seed = intFlag("--seed", values.seed);
  const evalEvery = intFlag("--eval-every", values["eval-every"], 1);
  const evalWindows = intFlag("--eval-windows", values["eval-windows"], 1);
  const ckptEvery = intFlag("--checkpoint-every", values["checkpoint-every"], 1);
  const ckptDir = values.checkpoint ?? values.resume;
  if (values["from-scratch"] && values.resume) {
    throw new RangeError("Give --from-scratch or --resume, not both");
  }
  const scratch = values["from-scratch"] ? scratchConfig(values) : undefined;
  const bucketBytes = numFlag("--bucket-mb", values["bucket-mb"], 1e-3, 1 << 20) * 2 ** 20;
  const commTimeout = numFlag("--comm-timeout", values["comm-timeout"], 1);
  if (!(COMM_BACKENDS as readonly string[]).includes(values.dist)) {
    throw new RangeError(
      `--dist ${JSON.stringify(values.dist)} is not one of ${COMM_BACKENDS.join(", ")}`,
    );
  }
  requirePermissions("train.ts", [
    { name: "read", path: values.train },
    { name: "read", path: values.heldout },
    ...(scratch || values.resume ? [] : [{ name: "read" as const, path: values.model }]),
    ...(values.resume ? [{ name: "read" as const, path: values.resume }] : []),
    ...(ckptDir ? [{ name: "write" as const, path: ckptDir }] : []),
    ...(values.save ? [{ name: "write" as const, path: values.save }] : []),
    { name: "write", path: values.out ?? "out/train" },
    { name: "read", path: values.out ?? "out/train" },
  ]);
  const backend = selectBackend(values.backend);
  using comm = createCommunicator(values.dist, { timeoutSeconds: commTimeout });
  const root = comm.rank === 0;
  // a failure on any rank ends every rank (exitIfRankFailed); rank 0 reports it

  // the model and the data, on every rank
  const prepared = await exitIfRankFailed(onEveryRank(comm, async () => {
    // the model
    let params: LlamaParams, tok: TextTokenizer, source: string, baseConfig: string | undefined;
    let resume: Checkpoint | undefined;
    if (values.resume) {
      resume = await loadCheckpoint(values.resume);
      params = resume.params.clone();
      tok = new ByteTokenizer();
      if (resume.params.config.tokenizer !== "bytes") {
        tok = await loadTokenizer(resume.dir, resume.params.config);
      }
      source = `resumed from ${resume.dir} at step ${resume.state.step}`;
      baseConfig = await Deno.readTextFile(`${resume.dir}/config.json`);
    } else if (scratch) {
      params = LlamaParams.init(scratch, new Rng(seed));
      tok = new ByteTokenizer();
      source =
        `from scratch: ${scratch.numLayers} layers, hidden ${scratch.hiddenSize}, ${scratch.numHeads}/${scratch.numKvHeads} heads`;
    } else {
      const model = await LlamaModel.load(values.model, { backend: "ts" });
      params = LlamaParams.fromModel(model);
      tok = await loadTokenizer(values.model, model.config);
      source = `fine-tuning ${values.model}`;
      baseConfig = await Deno.readTextFile(`${values.model}/config.json`);
    }
    const config = params.config;
    const context = intFlag("--context", values.context, 1, config.maxPositionEmbeddings);
    const { train: trainWindows, heldout, heldoutBatches } = await loadTextData(tok, {
      ...values,
      context,
      heldoutWindows: evalWindows,
      batch,
    });
    return { params, source, baseConfig, resume, context, trainWindows, heldout, heldoutBatches };
  }));
  const { params, source, baseConfig, resume, context, trainWindows, heldout, heldoutBatches } =
    prepared;
  const trainer = new Trainer(params, trainWindows, {
    steps,
    microBatch: batch,
    accumulate,
    lr,
    minLr,
    warmup,
    clip,
    seed,
    weightDecay,
  }, { backend, comm, bucketBytes, ...(resume ? { resume } : {}) });
  const o = trainer.options;
  const history: HistoryRow[] = (resume?.state.history as HistoryRow[] | undefined) ?? [];
  const startBpb = (resume?.state.startBitsPerByte as number | undefined) ??
    trainer.evaluate(heldoutBatches).bitsPerByte;
  const ranks = comm.size > 1 ? ` on ${comm.size} ranks (${comm.describe()})` : "";
  const log = (line: string) => root && console.error(line);
  log(
    `${source}; ${backend} backend${ranks}; ${trainWindows.length} training windows of ${context} tokens, ${heldout.length} held-out; ` +
      `${o.steps} steps of ${
        comm.size > 1 ? `${comm.size}×` : ""
      }${o.microBatch}×${o.accumulate} sequences, lr ${o.lr} → ${o.minLr}; held-out ${
        startBpb.toFixed(4)
      } bits/byte at the start`,
  );
  const bar = progress("train", o.steps - trainer.step, root ? {} : { enabled: false });
  let lastEval = startBpb;
  const t0 = performance.now();
  let trainedTokens = 0;
  while (trainer.step < o.steps) {
    const ts = performance.now();
    const r: StepResult = await trainer.trainStepAsync();
    const seconds = (performance.now() - ts) / 1000;
    trainedTokens += r.tokens;
    const row: HistoryRow = {
      step: r.step,
      lr: r.lr,
      loss: r.loss,
      gradNorm: r.gradNorm,
      tokens: r.tokens,
      seconds,
      waitSeconds: r.waitSeconds,
    };
    if (r.step % evalEvery === 0 || r.step === o.steps) {
      row.heldoutBitsPerByte = lastEval = trainer.evaluate(heldoutBatches).bitsPerByte;
    }
    history.push(row);
    bar.tick();
    if (!Deno.stderr.isTerminal() || !Deno.stdout.isTerminal()) {
      log(
        `step ${r.step}/${o.steps} loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} |g| ${
          r.gradNorm.toFixed(3)
        } ` +
          `${(r.tokens / seconds).toFixed(0)} tokens/s${
            row.heldoutBitsPerByte === undefined
              ? ""
              : `, held-out ${lastEval.toFixed(4)} bits/byte`
          }`,
      );
    }
    if (ckptDir && (r.step % ckptEvery === 0 || r.step === o.steps)) {
      trainer.checkReplicas(`at step ${r.step}`);
      if (root) {
        await trainer.save(ckptDir, baseConfig ? { baseConfig } : {}, {
          history,
          startBitsPerByte: startBpb,
        });
      }
    }
  }
  bar.stop();
  const seconds = (performance.now() - t0) / 1000;
  const weightsHash = trainer.checkReplicas("at the end");
  if (!root) return; // rank 0 writes every output
  if (values.save) {
    await saveTrainedModel(values.save, trainer.params, baseConfig ? { baseConfig } : {});
  }
  const endBpb = history.at(-1)?.heldoutBitsPerByte ?? lastEval;
  const results = {
    source,
    backend,
    train: values.train,
    heldout: values.heldout,
    trainWindows: trainWindows.length,
    heldoutWindows: heldout.length,
    context,
    options: o,
    dist: { backend: comm.backend, ranks: comm.size, bucketBytes, weightsHash },
    parameters: params.layout.size,
    savedActivationBytesPerToken: savedBytesPerToken(params),
    heldoutBitsPerByte: { start: startBpb, end: endBpb, change: endBpb - startBpb },
    finalTrainLoss: history.at(-1)?.loss,
    stepsThisRun: history.length -
      (resume ? (resume.state.history as unknown[] | undefined)?.length ?? 0 : 0),
    tokensPerSecond: trainedTokens / seconds,
    ...(values.save ? { saved: values.save } : {}),
    ...(ckptDir ? { checkpoints: ckptDir } : {}),
  };
  const verdict = endBpb < startBpb
    ? `held-out bits/byte fell from ${startBpb.toFixed(4)} to ${endBpb.toFixed(4)}`
    : `held-out bits/byte did not fall: ${startBpb.toFixed(4)} → ${endBpb.toFixed(4)}`;
  const evals = history.filter((h) => h.heldoutBitsPerByte !== undefined);
  const charts = [
    lineChart({
      name: "loss",
      title: "Training loss per step",
      data: history.map((h) => ({ step: h.step, loss: h.loss })),
      x: "step",
      y: "loss",
      yTitle: "nats/token",
      xInteger: true,
    }),
    lineChart({
      name: "heldout",
      title: "Held-out bits per byte",
      section: "Held-out evaluations",
      data: [
        { step: 0, "bits/byte": startBpb },
        ...evals.map((h) => ({ step: h.step, "bits/byte": h.heldoutBitsPerByte! })),
      ],
      x: "step",
      y: "bits/byte",
      xInteger: true,
      points: true,
    }),
  ];
  const md =
    `# Training\n\n${source} on the ${backend} backend${ranks}: ${o.steps} steps of ${
      comm.size > 1 ? `${comm.size} ranks × ` : ""
    }${o.microBatch}×${o.accumulate} windows of ${context} tokens from \`${values.train}\`; held-out: ${heldout.length} windows of \`${values.heldout}\`.\n\n**${verdict}.**\n\n` +
    markdownTable([
      { metric: "held-out bits/byte at the start", value: startBpb },
      { metric: "held-out bits/byte at the end", value: endBpb },
      { metric: "final training loss (nats/token)", value: results.finalTrainLoss ?? NaN },
      { metric: "tokens/s (this run)", value: Math.round(results.tokensPerSecond) },
      { metric: "activation bytes kept per token", value: results.savedActivationBytesPerToken },
      ...(comm.size > 1
        ? [
          { metric: "ranks", value: comm.size },
          {
            metric: "share of step time waiting for the gradient all-reduce",
            value: history.reduce((a, h) => a + (h.waitSeconds ?? 0), 0) /
              history.reduce((a, h) => a + h.seconds, 0),
          },
          { metric: "weights hash (equal on every rank)", value: weightsHash },
        ]
        : []),
    ], ["metric", "value"]) + "\n\n## Held-out evaluations\n\n" +
    markdownTable(evals, ["step", "lr", "loss", "heldoutBitsPerByte"]) + "\n";
  const files = await writeOutputs(await runFolder("train", values), {
    "results.json": JSON.stringify(results, null, 2),
    "loss.csv": stringify(
      history.map((h) => ({
        ...h,
        waitSeconds: h.waitSeconds ?? "",
        heldoutBitsPerByte: h.heldoutBitsPerByte ?? "",
      })),
      {
        columns: [
          "step",
          "lr",
          "loss",
          "gradNorm",
          "tokens",
          "seconds",
          "waitSeconds",
          "heldoutBitsPerByte",
        ],
      },
    ),
    "report.md": md,
    ...(await reportFiles({ title: "Training", markdown: md, charts })),
  });
  console.log(
    `${verdict} after ${o.steps} steps (${backend}, ${
      results.tokensPerSecond.toFixed(0)
    } tokens/s)`,
  );
  console.error(`wrote ${files.join(", ")}${values.save ? `, ${values.save}/` : ""}`);
  if (values.json) console.log(JSON.stringify(results, null, 2));
});
