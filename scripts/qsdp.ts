#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * QSDP (Markov et al., ICML 2023): a Llama model trained from scratch with fully sharded data
 * parallelism (lib/train/fsdp.ts), uncompressed (fp32) and with the weights' all-gathers and the
 * gradients' reduce-scatters quantized at a grid of bit widths, every run from the same
 * initialisation and the same batches for a fixed token budget. The report gives each setting's
 * final held-out loss and bits/byte (mean ± sd over seeds), the loss curves, the exact bytes on
 * the wire per step, the measured step time and the step time projected at 1–100 Gbit/s links,
 * and the verdict for "W8G8 within 1 % of fp32's held-out loss with ≥ 3.5× fewer bytes". Runs on
 * one process or on the ranks of an mpirun job (`--dist mpi`).
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
import { Rng } from "../lib/core/rng.ts";
import { COMM_BACKENDS, createCommunicator } from "../lib/comm/communicator.ts";
import { quantizedBytes } from "../lib/comm/quantize.ts";
import { timedCommunicator } from "../lib/comm/timed.ts";
import { exitIfRankFailed, onEveryRank } from "../lib/comm/ranks.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { type LlamaConfig, parseLlamaConfig } from "../lib/model/config.ts";
import { ByteTokenizer } from "../lib/model/tokenizer.ts";
import { loadTextData } from "../lib/train/data.ts";
import { type QsdpOptions, ShardedTrainer, shardPlan } from "../lib/train/fsdp.ts";
import { LlamaParams } from "../lib/train/params.ts";
import { ColorMap, lineChart, markdownTable, reportFiles } from "../lib/report/mod.ts";

const USAGE = `
qsdp.ts — QSDP: fully sharded data-parallel training from scratch with quantized weight
all-gathers and gradient reduce-scatters, against uncompressed (fp32) FSDP.

Usage: scripts/qsdp.ts [options]
       mpirun -np N deno run --no-prompt --allow-read --allow-write=out \\
         --allow-ffi=ffi/build scripts/qsdp.ts --dist mpi [options]
       deno task qsdp [-- options]

  --grid LIST          WxGy settings, bits 1–8 or 32 (default W8G8,W6G6,W4G8,W8G4,W4G4,W2G8);
                       fp32 FSDP always runs first
  --seeds LIST         seeds of the initialisation, data order and rounding (default 0); the
                       first runs every setting, the others fp32 and W8G8 only (mean ± sd)
  --config DIR         model configuration to start from (default data/models/tinyllama-bytes,
                       only its config.json is read: the model is trained from scratch)
  --layers N --hidden N --heads N --kv-heads N --intermediate N
                       override the configuration (defaults 2, 128, 4, 2, 384: a small model,
                       0.46M parameters; the bundled size is 6, 256, 8, 4, 768, 4.85M)
  --tokens N           training tokens of each run over all ranks (default 49152); the steps
                       are tokens / (ranks × batch × context)
  --batch N            windows per rank per step (default 4); --context N tokens (default 128)
  --lr X               peak learning rate (default 3e-3, warm-up 10 % of the steps, cosine to lr/10)
  --bucket N           elements per quantization bucket (default 1024)
  --min-elements N     smaller tensors travel as f32 (default 1024: the norms)
  --on-grid            keep the master weights on the weights' quantization grid (the paper's
                       iterates on the lattice: stochastic rounding after every update)
  --eval-windows N     held-out windows (default 64)
  --project-ranks N    world size of the projection when run on one process (default 8)
  --train FILE         training documents (default data/toxic_spans/semeval2021/tsd_train.csv)
  --heldout FILE       held-out documents (default data/toxic_spans/semeval2021/tsd_test.csv)
  --field NAME         JSONL/CSV text field (default text)
  --dist B             single (default) | mpi (the ranks of an mpirun job)
  --backend B          ts | cpu | cuda
  --out DIR            report folder (default out/qsdp/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  --json               also print results.json
  -h, --help           this text

Bytes on the wire: what one rank sends per step (ring all-gather / reduce-scatter: P − 1 of its
pieces per collective, received as much over a full-duplex link), exact from the trainer on P > 1
ranks and from the same formula (checked equal there) at P = --project-ranks on one process.
Projected step time at B Gbit/s: compute + sent bytes / B, where compute = the median over the
steps of (step time − time inside the communicator's calls) on this run (on one process: the
whole step, i.e. P ranks each with this run's per-rank batch); no overlap of communication with
computation (the trainer's collectives block), latency not counted.
Weights: each owner quantizes its shard once per step and every rank (itself included) computes
with the dequantized weights; the master weights and AdamW stay f32. Gradients: a rank never
quantizes its own chunk of a reduce-scatter, so in a world of one G changes the bytes, not the
training: the gradients' effect needs ≥ 2 ranks. Timings are medians on a shared machine.
Time (cpu backend, 2 cores): the defaults (7 runs of 96 steps of 4 × 128 tokens, interleaved step
by step) took 17 s on an idle machine, 3–5 min while another job kept both cores busy; the bundled
size (--layers 6 --hidden 256 --heads 8 --kv-heads 4 --intermediate 768) 2 min 33 s idle; 2 ranks
(mpirun -np 2 -x OMP_NUM_THREADS=1, 48 steps each) with --seeds 0,1,2: 23 s idle.
`;

/** One setting of the grid: fp32 is FSDP without QSDP. */
interface Setting {
  name: string;
  qsdp?: { weightBits: number; gradBits: number };
}

function parseGrid(text: string): Setting[] {
  const out: Setting[] = [];
  for (const item of text.split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = /^W(\d+)G(\d+)$/i.exec(item);
    const ok = (b: number) => (b >= 1 && b <= 8) || b === 32;
    if (!m || !ok(Number(m[1])) || !ok(Number(m[2]))) {
      throw new RangeError(
        `--grid: ${JSON.stringify(item)} is not WxGy with bits 1–8 or 32 (e.g. W8G8)`,
      );
    }
    const name = `W${Number(m[1])}G${Number(m[2])}`;
    if (out.some((s) => s.name === name)) {
      throw new RangeError(`--grid: ${name} is listed twice`);
    }
    out.push({ name, qsdp: { weightBits: Number(m[1]), gradBits: Number(m[2]) } });
  }
  if (out.length === 0) throw new RangeError("--grid: expected at least one WxGy setting");
  return out;
}

/** The config of DIR/config.json with the size flags applied (validated). */
function scratchConfig(
  base: LlamaConfig,
  v: Record<string, string | boolean | undefined>,
): LlamaConfig {
  const n = (flag: string) => intFlag(`--${flag}`, v[flag] as string, 1, 1 << 16);
  const hidden = n("hidden"), heads = n("heads"), kvHeads = n("kv-heads");
  if (hidden % heads !== 0 || (hidden / heads) % 2 !== 0) {
    throw new RangeError(`--hidden ${hidden} must be a multiple of 2·--heads (${heads})`);
  }
  if (heads % kvHeads !== 0) {
    throw new RangeError(`--heads ${heads} is not a multiple of --kv-heads ${kvHeads}`);
  }
  return {
    ...base,
    hiddenSize: hidden,
    intermediateSize: n("intermediate"),
    numLayers: n("layers"),
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim: hidden / heads,
  };
}

/**
 * Bytes one rank sends per step (one micro-batch) on `ranks` ranks: each unit's weights are
 * all-gathered once in the forward and the blocks' again in the backward (the head also gathers
 * the embedding when tied), each unit's gradient reduce-scattered once; a collective sends
 * ranks − 1 pieces. QSDP pieces: the quantized leading part plus the small tensors as f32.
 */
export function wireBytesPerStep(
  config: LlamaConfig,
  ranks: number,
  setting: Setting,
  bucketSize: number,
  minElements: number,
): { gather: number; reduceScatter: number } {
  const plan = shardPlan(config, ranks, setting.qsdp ? minElements : 1024);
  const piece = (i: number, bits: number | undefined) => {
    const u = plan.units[i]!;
    if (bits === undefined || bits === 32 || u.bigPiece === 0) return 4 * u.piece;
    return quantizedBytes(u.bigPiece, { bits, bucketSize }) + 4 * (u.piece - u.bigPiece);
  };
  const w = setting.qsdp?.weightBits, g = setting.qsdp?.gradBits;
  const last = plan.units.length - 1;
  let gather = piece(0, w) + piece(last, w) + (config.tieWordEmbeddings ? piece(0, w) : 0);
  for (let i = 1; i < last; i++) gather += 2 * piece(i, w);
  let reduceScatter = 0;
  for (let i = 0; i <= last; i++) reduceScatter += piece(i, g);
  return { gather: (ranks - 1) * gather, reduceScatter: (ranks - 1) * reduceScatter };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => {
  if (xs.length < 2) return NaN;
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1));
};
const pm = (xs: number[], digits = 4) =>
  xs.length > 1 ? `${mean(xs).toFixed(digits)} ± ${sd(xs).toFixed(digits)}` : mean(xs).toFixed(
    digits,
  );

const LINKS_GBIT = [1, 10, 25, 100];

type StepRow = {
  setting: string;
  seed: number;
  step: number;
  loss: number;
  stepSeconds: number;
  commSeconds: number;
  wireBytes: number;
};

await runScript({ name: "qsdp.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      grid: { type: "string", default: "W8G8,W6G6,W4G8,W8G4,W4G4,W2G8" },
      seeds: { type: "string", default: "0" },
      config: { type: "string", default: "data/models/tinyllama-bytes" },
      layers: { type: "string", default: "2" },
      hidden: { type: "string", default: "128" },
      heads: { type: "string", default: "4" },
      "kv-heads": { type: "string", default: "2" },
      intermediate: { type: "string", default: "384" },
      tokens: { type: "string", default: "49152" },
      batch: { type: "string", default: "4" },
      context: { type: "string", default: "128" },
      lr: { type: "string", default: "3e-3" },
      bucket: { type: "string", default: "1024" },
      "min-elements": { type: "string", default: "1024" },
      "eval-windows": { type: "string", default: "64" },
      "project-ranks": { type: "string", default: "8" },
      train: { type: "string", default: "data/toxic_spans/semeval2021/tsd_train.csv" },
      heldout: { type: "string", default: "data/toxic_spans/semeval2021/tsd_test.csv" },
      field: { type: "string", default: "text" },
      dist: { type: "string", default: "single" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
      "on-grid": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  // every flag is checked before any work
  const grid = parseGrid(values.grid);
  const seeds = values.seeds.split(",").map((s) => intFlag("--seeds", s.trim(), 0, 2 ** 31 - 1));
  if (new Set(seeds).size !== seeds.length) {
    throw new RangeError(`--seeds '${values.seeds}' lists a seed twice`);
  }
  if (!(COMM_BACKENDS as readonly string[]).includes(values.dist)) {
    throw new RangeError(
      `--dist ${JSON.stringify(values.dist)} is not one of ${COMM_BACKENDS.join(", ")}`,
    );
  }
  const tokens = intFlag("--tokens", values.tokens, 1);
  const batch = intFlag("--batch", values.batch, 1);
  const lr = numFlag("--lr", values.lr, 0, 1);
  const bucketSize = intFlag("--bucket", values.bucket, 1);
  const minElements = intFlag("--min-elements", values["min-elements"], 0);
  const evalWindows = intFlag("--eval-windows", values["eval-windows"], 1);
  const projectRanks = intFlag("--project-ranks", values["project-ranks"], 2, 1 << 16);
  requirePermissions("qsdp.ts", [
    { name: "read", path: values.train },
    { name: "read", path: values.heldout },
    { name: "read", path: values.config },
    { name: "write", path: values.out ?? "out/qsdp" },
    { name: "read", path: values.out ?? "out/qsdp" },
  ]);
  const path = `${values.config}/config.json`;
  const config = scratchConfig(parseLlamaConfig(await Deno.readTextFile(path), path), values);
  if (config.tokenizer !== "bytes") {
    throw new RangeError(`${path}: expected "tokenizer": "bytes" (the byte tokenizer)`);
  }
  const context = intFlag("--context", values.context, 2, config.maxPositionEmbeddings);
  const backend = selectBackend(values.backend);
  using world = createCommunicator(values.dist);
  const root = world.rank === 0;
  const log = (line: string) => root && console.error(line);
  const steps = Math.floor(tokens / (world.size * batch * context));
  if (steps < 2) {
    throw new RangeError(
      `--tokens ${tokens} gives ${steps} step(s) of ${world.size} × ${batch} × ${context} tokens: expected ≥ 2`,
    );
  }
  const warmup = Math.max(1, Math.round(steps / 10));

  const { train, heldout } = await exitIfRankFailed(onEveryRank(world, async () => {
    const { train, heldoutBatches: heldout } = await loadTextData(new ByteTokenizer(), {
      ...values,
      context,
      heldoutWindows: evalWindows,
      batch,
    });
    return { train, heldout };
  }));
  const nParams = new LlamaParams(config).data.length;
  const P = world.size > 1 ? world.size : projectRanks;
  log(
    `qsdp: from scratch (${config.numLayers} layers, hidden ${config.hiddenSize}, ${config.numHeads}/${config.numKvHeads} heads, intermediate ${config.intermediateSize}: ${
      (nParams / 1e6).toFixed(2)
    }M parameters), ${world.size} rank(s) × ${batch} windows of ${context} tokens, ${steps} steps (${
      steps * world.size * batch * context
    } tokens) per run, ${backend} backend, seeds ${seeds.join(",")}`,
  );

  const settings: Setting[] = [{ name: "fp32" }, ...grid];
  // a rank never quantizes its own chunk of a reduce-scatter: in a world of one, nothing
  const gradNote = world.size > 1
    ? `on ${world.size} ranks each rank's own chunk of a gradient reduce-scatter stays f32 (the other ${
      world.size - 1
    } contributions are quantized)`
    : "in a world of one the gradients are not quantized at all (a rank never quantizes its own chunk of a reduce-scatter), so G changes the bytes but not the training: run on ≥ 2 ranks (mpirun … --dist mpi) for the gradients' effect";
  log(`  note: ${gradNote}`);
  const rows: StepRow[] = [];
  type RunResult = {
    setting: string;
    seed: number;
    heldoutLoss: number;
    heldoutBitsPerByte: number;
    finalTrainLoss: number;
    firstTrainLoss: number;
    stepSeconds: number;
    computeSeconds: number;
    commSeconds: number;
    wireBytesMeasured: number;
    wireBytesFormula: number;
  };
  const runs: RunResult[] = [];
  // warm-up, not recorded: 2 steps of every setting (JIT, kernel and buffer first-use costs)
  for (const s of settings) {
    const t = new ShardedTrainer(LlamaParams.init(config, new Rng(seeds[0]!)), train, {
      steps: 2,
      microBatch: batch,
      lr,
      warmup: 1,
      seed: seeds[0]!,
    }, {
      backend,
      comm: world,
      ...(s.qsdp
        ? { qsdp: { ...s.qsdp, bucketSize, minElements, onGrid: values["on-grid"] } }
        : {}),
    });
    t.trainStep();
    t.trainStep();
  }
  for (const seed of seeds) {
    const init = LlamaParams.init(config, new Rng(seed));
    // every setting's trainer at once, their steps interleaved (fp32, W8G8, …, fp32, …) so that
    // all see the same machine load; each trainer is independent, so the results are the same
    const active = settings.filter((s) =>
      seed === seeds[0] || s.name === "fp32" || s.name === "W8G8"
    ).map((s) => {
      const timed = timedCommunicator(world);
      const qsdp: QsdpOptions | undefined = s.qsdp
        ? { ...s.qsdp, bucketSize, minElements, seed, onGrid: values["on-grid"] }
        : undefined;
      const t = new ShardedTrainer(init, train, {
        steps,
        microBatch: batch,
        lr,
        warmup,
        seed,
      }, { backend, comm: timed.comm, ...(qsdp ? { qsdp } : {}) });
      return {
        s,
        t,
        timed,
        stepS: [] as number[],
        computeS: [] as number[],
        wire: [] as number[],
        first: NaN,
        last: NaN,
      };
    });
    const t0 = performance.now();
    const bar = progress(`seed ${seed}`, steps * active.length, root ? {} : { enabled: false });
    for (let k = 0; k < steps; k++) {
      for (const a of active) {
        const c0 = a.timed.seconds(), s0 = performance.now();
        const r = a.t.trainStep();
        const dt = (performance.now() - s0) / 1000, dc = a.timed.seconds() - c0;
        const sent = r.wire.gather + r.wire.reduceScatter;
        a.stepS.push(dt);
        a.computeS.push(dt - dc);
        a.wire.push(sent);
        if (k === 0) a.first = r.loss;
        a.last = r.loss;
        rows.push({
          setting: a.s.name,
          seed,
          step: r.step,
          loss: r.loss,
          stepSeconds: dt,
          commSeconds: dc,
          wireBytes: sent,
        });
        bar.tick();
      }
      if (root && (k + 1) % Math.max(1, Math.round(steps / 4)) === 0 && k + 1 < steps) {
        log(
          `  seed ${seed}: step ${k + 1}/${steps}, ${
            ((performance.now() - t0) / 1000).toFixed(0)
          } s`,
        );
      }
    }
    bar.stop();
    for (const a of active) {
      const ev = a.t.evaluate(heldout);
      const f = wireBytesPerStep(config, world.size, a.s, bucketSize, minElements);
      const res: RunResult = {
        setting: a.s.name,
        seed,
        heldoutLoss: ev.loss,
        heldoutBitsPerByte: ev.bitsPerByte,
        firstTrainLoss: a.first,
        finalTrainLoss: a.last,
        stepSeconds: median(a.stepS),
        computeSeconds: median(a.computeS),
        commSeconds: median(a.stepS) - median(a.computeS),
        wireBytesMeasured: median(a.wire),
        wireBytesFormula: f.gather + f.reduceScatter,
      };
      runs.push(res);
      log(
        `  ${a.s.name} seed ${seed}: held-out ${ev.loss.toFixed(4)} nats/token, ${
          ev.bitsPerByte.toFixed(4)
        } bits/byte; train loss ${a.first.toFixed(3)} → ${a.last.toFixed(3)}; step ${
          (res.stepSeconds * 1000).toFixed(0)
        } ms (comm ${(res.commSeconds * 1000).toFixed(0)} ms); ${
          (res.wireBytesMeasured / 2 ** 20).toFixed(3)
        } MiB sent per rank per step`,
      );
      if (world.size > 1 && res.wireBytesMeasured !== res.wireBytesFormula) {
        throw new Error(
          `${a.s.name}: the trainer sent ${res.wireBytesMeasured} bytes per step, the formula gives ${res.wireBytesFormula}`,
        );
      }
    }
  }
  if (!root) return;

  // per setting, over seeds
  const fp32Runs = runs.filter((r) => r.setting === "fp32");
  const bytesAt = (s: Setting) => {
    const f = wireBytesPerStep(config, P, s, bucketSize, minElements);
    return f.gather + f.reduceScatter;
  };
  const fp32Bytes = bytesAt(settings[0]!);
  const summary = settings.map((s) => {
    const rs = runs.filter((r) => r.setting === s.name);
    const loss = rs.map((r) => r.heldoutLoss), bpb = rs.map((r) => r.heldoutBitsPerByte);
    const bytes = bytesAt(s);
    const compute = median(rs.map((r) => r.computeSeconds));
    const projected = Object.fromEntries(
      LINKS_GBIT.map((g) => [`${g}`, compute + bytes / (g * 1e9 / 8)]),
    );
    // the gap to fp32 paired by seed
    const paired = rs.map((r) => {
      const f = fp32Runs.find((x) => x.seed === r.seed)!;
      return (r.heldoutLoss - f.heldoutLoss) / f.heldoutLoss * 100;
    });
    return {
      setting: s.name,
      weightBits: s.qsdp?.weightBits ?? 32,
      gradBits: s.qsdp?.gradBits ?? 32,
      seeds: rs.map((r) => r.seed),
      heldoutLoss: { mean: mean(loss), sd: sd(loss), values: loss },
      heldoutBitsPerByte: { mean: mean(bpb), sd: sd(bpb), values: bpb },
      pairedGapPercent: { mean: mean(paired), sd: sd(paired), values: paired },
      firstTrainLoss: mean(rs.map((r) => r.firstTrainLoss)),
      finalTrainLoss: mean(rs.map((r) => r.finalTrainLoss)),
      stepSeconds: median(rs.map((r) => r.stepSeconds)),
      commSeconds: median(rs.map((r) => r.commSeconds)),
      computeSeconds: compute,
      wireBytesPerStep: bytes,
      wireBytesMeasured: world.size > 1 ? rs[0]!.wireBytesMeasured : null,
      fp32OverThis: fp32Bytes / bytes,
      projectedStepSeconds: projected,
      projectedSpeedup: Object.fromEntries(LINKS_GBIT.map((g) => [`${g}`, 0])),
    };
  });
  for (const r of summary) {
    for (const g of LINKS_GBIT) {
      r.projectedSpeedup[`${g}`] = summary[0]!.projectedStepSeconds[`${g}`]! /
        r.projectedStepSeconds[`${g}`]!;
    }
  }
  const w8 = summary.find((r) => r.setting === "W8G8");
  const within = (r: (typeof summary)[number]) => r.pairedGapPercent.mean <= 1;
  const broken = summary.filter((r) => r.setting !== "fp32" && !within(r)).map((r) => r.setting);
  const verdict = w8
    ? `W8G8: held-out loss ${w8.pairedGapPercent.mean >= 0 ? "+" : ""}${
      pm(w8.pairedGapPercent.values, 2)
    } % against fp32 of the same seed (${w8.seeds.length} seed(s)${
      w8.seeds.length >= 3 ? "" : "; fewer than 3: indicative only"
    }), ${
      w8.fp32OverThis.toFixed(2)
    }× fewer bytes: the goal (held-out loss at most 1 % above fp32's, ≥ 3.5× fewer bytes) is ${
      within(w8) && w8.fp32OverThis >= 3.5 ? "MET" : "NOT met"
    }.`
    : "W8G8 is not in the grid: no verdict.";
  const breaks = broken.length
    ? `More than 1 % above fp32's held-out loss: ${broken.join(", ")}.`
    : "No setting of the grid is more than 1 % above fp32's held-out loss.";

  const results = {
    config: {
      from: values.config,
      numLayers: config.numLayers,
      hiddenSize: config.hiddenSize,
      numHeads: config.numHeads,
      numKvHeads: config.numKvHeads,
      intermediateSize: config.intermediateSize,
      parameters: nParams,
    },
    ranks: world.size,
    dist: world.describe(),
    backend,
    steps,
    batch,
    context,
    tokensPerRun: steps * world.size * batch * context,
    lr,
    warmup,
    bucketSize,
    minElements,
    seeds,
    onGrid: values["on-grid"],
    gradientsQuantized: world.size > 1,
    gradNote,
    projection: {
      ranks: P,
      linksGbit: LINKS_GBIT,
      model:
        "compute + sentBytesPerRank / bandwidth; compute = median over steps of (step time − time in the communicator's blocking calls); sent bytes of one rank (ring all-gather / reduce-scatter, full duplex); no overlap, no latency",
    },
    verdict,
    breaks,
    settings: summary,
    runs,
  };
  const table = markdownTable(
    summary.map((r) => ({
      setting: r.setting,
      "held-out loss": pm(r.heldoutLoss.values),
      "bits/byte": pm(r.heldoutBitsPerByte.values),
      "gap % (paired)": pm(r.pairedGapPercent.values, 2),
      "MiB/step sent": (r.wireBytesPerStep / 2 ** 20).toFixed(3),
      "fp32 / this": r.fp32OverThis.toFixed(2),
      "step ms": (r.stepSeconds * 1000).toFixed(1),
      "compute ms": (r.computeSeconds * 1000).toFixed(1),
      ...Object.fromEntries(
        LINKS_GBIT.map((g) => [
          `${g} Gb/s ms`,
          `${(r.projectedStepSeconds[`${g}`]! * 1000).toFixed(1)} (${
            r.projectedSpeedup[`${g}`]!.toFixed(2)
          }×)`,
        ]),
      ),
    })),
    [
      "setting",
      "held-out loss",
      "bits/byte",
      "gap % (paired)",
      "MiB/step sent",
      "fp32 / this",
      "step ms",
      "compute ms",
      ...LINKS_GBIT.map((g) => `${g} Gb/s ms`),
    ],
  );
  const colors = new ColorMap(settings.map((s) => s.name));
  const curves = lineChart({
    name: "loss",
    title: `Training loss (seed ${seeds[0]})`,
    data: rows.filter((r) => r.seed === seeds[0]).map((r) => ({
      setting: r.setting,
      step: r.step,
      loss: r.loss,
    })),
    x: "step",
    y: "loss",
    series: "setting",
    colors,
    xInteger: true,
    yTitle: "nats/token",
  });
  const proj = lineChart({
    name: "projected-step-time",
    title: `Projected step time on ${P} ranks against link speed`,
    data: summary.flatMap((r) =>
      LINKS_GBIT.map((g) => ({
        setting: r.setting,
        "link Gbit/s": g,
        "ms per step": r.projectedStepSeconds[`${g}`]! * 1000,
      }))
    ),
    x: "link Gbit/s",
    y: "ms per step",
    series: "setting",
    colors,
    xLog: true,
    yZero: true,
  });
  const md =
    `# QSDP\n\nFrom scratch: ${config.numLayers} layers, hidden ${config.hiddenSize}, ${
      (nParams / 1e6).toFixed(2)
    }M parameters; ${world.size} rank(s) × ${batch} windows of ${context} tokens, ${steps} steps (${results.tokensPerRun} tokens) per run, lr ${lr} (warm-up ${warmup}, cosine), ${backend} backend; every run from the same initialisation and batches of its seed; seeds ${
      seeds.join(", ")
    } (the first for every setting, the others for fp32 and W8G8). Quantization: bucket ${bucketSize}, stochastic rounding, tensors under ${minElements} elements as f32${
      values["on-grid"] ? "; master weights kept on the weights' grid (--on-grid)" : ""
    }.\n\n` +
    `Bytes: what one rank sends per step on P = ${P} ranks (ring all-gather / reduce-scatter: P − 1 pieces per collective; it receives as much over a full-duplex link)${
      world.size > 1
        ? ", exact from the trainer (equal to the formula)"
        : ", from the trainer's formula (a world of one sends nothing)"
    }. Projected step time at B Gbit/s = compute + bytes / B, where compute is the median over the steps of step time minus the time spent inside the communicator's calls${
      world.size > 1 ? "" : " (one process: the whole step, i.e. each of P ranks with this batch)"
    }; no overlap, no latency. In brackets: fp32's projected time over this setting's. Gap: the held-out loss over fp32's of the same seed, − 1 (mean ± sd over seeds); the verdict uses its mean. Gradients: ${gradNote}.\n\n` +
    table + `\n\n**${verdict}** ${breaks}\n`;
  const files = await writeOutputs(await runFolder("qsdp", values), {
    "results.json": JSON.stringify(results, null, 2),
    "steps.csv": stringify(rows, {
      columns: ["setting", "seed", "step", "loss", "stepSeconds", "commSeconds", "wireBytes"],
    }),
    "runs.csv": stringify(runs, { columns: Object.keys(runs[0]!) }),
    "report.md": md,
    ...(await reportFiles({ title: "QSDP", markdown: md, charts: [curves, proj] })),
  });
  console.log(table);
  console.log(`\n${verdict} ${breaks}`);
  console.error(`wrote ${files.join(", ")}`);
  if (values.json) console.log(JSON.stringify(results, null, 2));
});
