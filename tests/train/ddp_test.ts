// Data-parallel training (lib/train/ddp.ts, Trainer with a communicator, train.ts --dist mpi).
// Without MPI: the bucket plan tiles the gradient with whole tensors in backward order; the
// backward reports every tensor's gradient once, in that order; buckets start in order and only
// when complete; a checkpoint refuses another number of ranks. With real `mpirun --oversubscribe`
// worlds (2 cores here): N ranks × batch B equal one process × batch N·B after 20 AdamW steps
// (losses and weights to 1e-5 relative; 2 ranks with accumulation, 4 ranks with tied
// embeddings), the overlapped and the blocking all-reduce give the same weights bit for bit,
// every rank ends with the same weights hash; a NaN loss on one rank fails the step on every
// rank and changes no weight; a rank killed mid-run ends the world within a bound; train.ts
// --dist mpi on 2 ranks matches the 1-process run with twice the batch, rank 0 writing.
// The mpirun tests are skipped, with one printed reason, where mpirun or the library is missing.
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { availableBackends } from "../../ffi/mod.ts";
import type { Communicator } from "../../lib/comm/communicator.ts";
import { Rng } from "../../lib/core/rng.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { lossAndGrad } from "../../lib/train/backward.ts";
import { loadCheckpoint } from "../../lib/train/checkpoint.ts";
import { batchFromSequences } from "../../lib/train/data.ts";
import { BucketReducer, gradientBuckets } from "../../lib/train/ddp.ts";
import { LlamaParams, paramLayout } from "../../lib/train/params.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { freshSeed, mpirunDeno, mpirunMissing, relL2, relMax } from "../_util.ts";
import { tinyConfig } from "./_ref_llama.ts";
import { DDP_OPTIONS, ddpCase } from "./_ddp.ts";

const seed = freshSeed();
const backend = availableBackends().cpu.ok ? "cpu" : "ts";

// ---- without MPI ----

Deno.test("gradientBuckets tiles the gradient with whole tensors, backward order, each ≥ the size but the last", () => {
  const rng = new Rng(seed);
  for (const tied of [false, true]) {
    const layout = paramLayout(tinyConfig(tied));
    for (const bytes of [4, 100, 4 * 37, 4 * 1000, 4 * layout.size, 1e9, 4 + rng.int(2000)]) {
      const b = gradientBuckets(layout, bytes);
      assertEquals(b[0]!.hi, layout.size);
      assertEquals(b.at(-1)!.lo, 0);
      b.forEach((x, i) => {
        if (i > 0) assertEquals(x.hi, b[i - 1]!.lo, "buckets are contiguous, from the end");
        if (i < b.length - 1) assert((x.hi - x.lo) * 4 >= bytes, `bucket ${i} is full`);
        const views = layout.views.filter((v) => x.names.includes(v.name));
        assertEquals(views.length, x.names.length);
        assertEquals(views[0]!.offset, x.lo);
        assertEquals(views.at(-1)!.offset + views.at(-1)!.size, x.hi, "whole tensors");
        // no bucket could have closed earlier: without its first tensor it would be short
        if (x.names.length > 1) assert((x.hi - views[1]!.offset) * 4 < bytes);
      });
      assertEquals(b.flatMap((x) => x.names).length, layout.views.length);
    }
    for (const bad of [0, 3, -1, NaN, Infinity]) {
      assertThrows(() => gradientBuckets(layout, bad), RangeError, "is not a number ≥ 4");
    }
  }
});

Deno.test("lossAndGrad reports every tensor's gradient once, in backward order, after it is final", () => {
  for (const tied of [false, true]) {
    const config = tinyConfig(tied), params = LlamaParams.init(config, new Rng(seed), 0.3);
    const batch = batchFromSequences([[1, 2, 3, 4, 5], [6, 7, 8]]);
    const full = lossAndGrad(params, batch, { backend: "ts" }).grad;
    const seen: string[] = [];
    const grad = params.zerosLike();
    lossAndGrad(params, batch, {
      backend: "ts",
      grad,
      onGradsReady: (names) => {
        for (const n of names) {
          // final: equal to the full backward's gradient already
          assertEquals(grad.view(n), full.view(n), `${n} is final when reported`);
          seen.push(n);
        }
      },
    });
    const offsets = seen.map((n) => params.info(n).offset);
    assertEquals(seen.length, params.layout.views.length);
    assertEquals(new Set(seen).size, seen.length);
    // layer by layer from the end; the embedding last
    assertEquals(seen.at(-1), "model.embed_tokens.weight");
    const layerOf = (n: string) => Number(/layers\.(\d+)\./.exec(n)?.[1] ?? -1);
    const layers = seen.map(layerOf).filter((l) => l >= 0);
    assertEquals(layers, [...layers].sort((a, b) => b - a));
    assert(offsets.length > 0);
  }
});

/** A world of two (for the reducer) that records the all-reduces it is asked for. */
function recorder(): { comm: Communicator; calls: [number, number][] } {
  const calls: [number, number][] = [];
  const record = (buf: Float32Array) =>
    calls.push([buf.byteOffset / 4, buf.byteOffset / 4 + buf.length]);
  const comm = {
    backend: "single",
    rank: 0,
    size: 2,
    allReduce: (buf: Float32Array) => Promise.resolve(void record(buf)),
    allReduceSync: (buf: Float32Array) => void record(buf),
  } as unknown as Communicator;
  return { comm, calls };
}

Deno.test("BucketReducer starts each bucket once, in order, when its last tensor is ready", async () => {
  const config = tinyConfig(false), grad = new LlamaParams(config);
  const r = recorder();
  const red = new BucketReducer(r.comm, grad, 4 * 150);
  const b = red.buckets;
  assert(b.length >= 3, `${b.length} buckets`);
  red.begin();
  // the second bucket complete first: nothing may start before the first is
  red.ready(b[1]!.names);
  assertEquals(r.calls.length, 0);
  red.ready(b[0]!.names.slice(1));
  assertEquals(r.calls.length, 0);
  red.ready(b[0]!.names.slice(0, 1));
  assertEquals(r.calls, [[b[0]!.lo, b[0]!.hi], [b[1]!.lo, b[1]!.hi]]);
  assertThrows(() => red.ready(["no.such.weight"]), RangeError, "no tensor 'no.such.weight'");
  await red.wait(); // starts the rest
  assertEquals(r.calls, b.map((x) => [x.lo, x.hi]));
  // the next step starts afresh; reduceSync reduces every bucket
  red.begin();
  red.reduceSync();
  assertEquals(r.calls.length, 2 * b.length);
});

Deno.test("a checkpoint resumes only on as many ranks as trained it", async () => {
  const { params, windows } = ddpCase(seed, false);
  const t = new Trainer(params.clone(), windows, { ...DDP_OPTIONS, microBatch: 2 }, { backend });
  t.trainStep();
  const dir = await Deno.makeTempDir();
  try {
    await t.save(dir);
    const ck = await loadCheckpoint(dir);
    assertEquals((ck.state.options as { ranks: number }).ranks, 1);
    (ck.state.options as { ranks: number }).ranks = 2;
    assertThrows(
      () => new Trainer(params.clone(), windows, DDP_OPTIONS, { backend, resume: ck }),
      RangeError,
      "was trained on 2 rank(s); resume it on as many (mpirun -np 2), not 1",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- real mpirun worlds ----

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the data-parallel mpi tests: ${skip}`);
const ENV = { OMP_NUM_THREADS: "1" };

/** tests/train/_ddp_rank.ts SCENARIO on np ranks, this run's seed and backend. */
function rankWorld(np: number, scenario: string, args: string[] = [], write?: string) {
  return mpirunDeno(np, [
    "--no-prompt",
    "--allow-read=data,tests",
    ...(write ? [`--allow-write=${write}`] : []),
    "--allow-ffi=ffi/build",
    "tests/train/_ddp_rank.ts",
    scenario,
    ...["--seed", String(seed), "--backend", backend, ...args],
  ], { limitS: 120, env: ENV });
}

function rankLines(out: string, np: number): string[] {
  const lines: string[] = [];
  for (let r = 0; r < np; r++) {
    const mine = out.split("\n").filter((l) => l.startsWith(`rank ${r}: `));
    lines.push(...mine.map((l) => `${r}\t${l.slice(`rank ${r}: `.length)}`));
  }
  return lines;
}

for (
  const w of [
    { np: 2, batch: 3, accumulate: 2, tied: false, mode: "both" },
    { np: 4, batch: 1, accumulate: 1, tied: true, mode: "async" },
  ]
) {
  Deno.test({
    name: `${w.np} ranks × batch ${w.batch} equal 1 process × batch ${
      w.np * w.batch
    } after 20 AdamW steps (accumulate ${w.accumulate}, ${w.tied ? "tied" : "untied"} embeddings)`,
    ignore: !!skip,
    async fn() {
      const dir = await Deno.makeTempDir();
      try {
        const run = await rankWorld(w.np, "train", [
          ...["--tied", w.tied ? "1" : "0", "--batch", String(w.batch)],
          ...["--accumulate", String(w.accumulate), "--mode", w.mode],
          ...["--bucket-bytes", "3000", "--out", `${dir}/w.bin`],
        ], dir);
        assertEquals(run.code, 0, run.stdout + run.stderr);
        const got = rankLines(run.stdout, w.np).map((l) => {
          const [r, json] = l.split("\t");
          return {
            rank: Number(r),
            ...JSON.parse(json!) as { mode: string; losses: number[]; hash: string },
          };
        });
        const modes = w.mode === "both" ? 2 : 1;
        assertEquals(got.length, w.np * modes, run.stdout);
        // every rank, every mode: the same losses and weights
        for (const g of got) {
          assertEquals(g.hash, got[0]!.hash, `rank ${g.rank} ${g.mode}`);
          assertEquals(g.losses, got[0]!.losses);
        }
        // one process with the whole batch
        const { params, windows } = ddpCase(seed, w.tied);
        const ref = new Trainer(params.clone(), windows, {
          ...DDP_OPTIONS,
          microBatch: w.np * w.batch,
          accumulate: w.accumulate,
        }, { backend });
        const losses = Array.from({ length: DDP_OPTIONS.steps }, () => ref.trainStep().loss);
        got[0]!.losses.forEach((l, i) => assertAlmostEquals(l, losses[i]!, 1e-5 * losses[i]!));
        const weights = new Float32Array(Deno.readFileSync(`${dir}/w.bin`).buffer);
        // ‖Δ‖₂/‖w‖₂: the order of the sums differs, and where a gradient element is near zero
        // AdamW's m/√v turns that rounding into an update of either sign, so one element may
        // differ by more (‖Δ‖∞/‖w‖∞ reached 2.6e-5 on one seed of 4 ranks)
        const err = relL2(weights, ref.params.data);
        console.log(
          `  ${w.np} ranks vs 1 process: weights ‖Δ‖₂/‖w‖₂ ${err.toExponential(2)}, ‖Δ‖∞/‖w‖∞ ${
            relMax(weights, ref.params.data).toExponential(2)
          }`,
        );
        assert(err <= 1e-5, `weights differ by ${err}`);
        // and they did train
        assert(relMax(weights, params.data) > 1e-2);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test({
  name: "a NaN loss on one rank fails the step on every rank and changes no weight",
  ignore: !!skip,
  async fn() {
    const run = await rankWorld(3, "nan");
    assertEquals(run.code, 0, run.stdout + run.stderr);
    const lines = rankLines(run.stdout, 3);
    assertEquals(lines.length, 3, run.stdout);
    for (const l of lines) {
      const [r, text] = l.split("\t");
      assert(text!.startsWith("error NumericalError: Step 1: the loss is NaN"), text);
      assert(text!.endsWith("the update was not applied | unchanged true step 0"), text);
      assert(
        text!.includes(r === "1" ? "on rank 1 (" : "on another rank"),
        `rank ${r}: ${text}`,
      );
    }
  },
});

Deno.test({
  name: "a rank killed mid-run ends every rank within a bound, never a hang",
  ignore: !!skip,
  async fn() {
    const run = await rankWorld(3, "killed");
    assert(!run.timedOut, `the world hung: ${run.stdout}${run.stderr}`);
    assert(run.code !== 0);
    assert(run.seconds < 30, `${run.seconds} s`);
    // rank 1 never finished step 3, and no rank trained on to the end
    assert(!/rank 1: step 3/.test(run.stdout), run.stdout);
    assert(!new RegExp(`step ${DDP_OPTIONS.steps}`).test(run.stdout), run.stdout);
    assert(/rank 1|process rank 1|signal 9|Killed/i.test(run.stderr), run.stderr);
  },
});

Deno.test({
  name:
    "train.ts --dist mpi on 2 ranks equals the 1-process run with twice the batch; rank 0 writes",
  ignore: !!skip,
  async fn() {
    const dir = await Deno.makeTempDir();
    const script = (tag: string) => [
      "--no-prompt",
      `--allow-read=data,${dir}`,
      `--allow-write=${dir}`,
      "--allow-ffi=ffi/build",
      "scripts/train.ts",
      ...["--out", `${dir}/${tag}`],
    ];
    const args = (tag: string) => [
      ...script(tag),
      ...["--from-scratch", "--layers", "2", "--hidden", "32", "--heads", "4", "--kv-heads", "2"],
      ...["--intermediate", "48", "--context", "48", "--steps", "6", "--warmup", "1"],
      ...["--lr", "2e-3", "--eval-every", "3", "--eval-windows", "5", "--backend", backend],
      ...["--seed", String(seed % 1000), "--bucket-mb", "0.01", "--checkpoint-every", "3"],
      ...["--save", `${dir}/${tag}-model`, "--checkpoint", `${dir}/${tag}-ck`],
    ];
    try {
      const two = await mpirunDeno(2, [...args("two"), "--batch", "2", "--dist", "mpi"], {
        limitS: 120,
        env: ENV,
      });
      assertEquals(two.code, 0, two.stdout + two.stderr);
      const one = await mpirunDeno(0, [...args("one"), "--batch", "4"], { limitS: 120, env: ENV });
      assertEquals(one.code, 0, one.stderr);
      // one report, written by rank 0
      assertEquals(two.stdout.match(/held-out bits\/byte (fell|did not fall)/g)?.length, 1);
      const res = JSON.parse(await Deno.readTextFile(`${dir}/two/results.json`));
      assertEquals(res.dist.ranks, 2);
      assertEquals(res.dist.weightsHash.length, 16);
      const col = async (tag: string, name: string) => {
        const text = await Deno.readTextFile(`${dir}/${tag}/loss.csv`);
        const [head, ...rows] = text.trim().split("\n");
        const i = head!.split(",").indexOf(name);
        return rows.map((r) => Number(r.split(",")[i]));
      };
      const l1 = await col("one", "loss"), l2 = await col("two", "loss");
      assertEquals(l2.length, 6);
      l2.forEach((l, i) => assertAlmostEquals(l, l1[i]!, 1e-5 * l1[i]!));
      const h1 = await col("one", "heldoutBitsPerByte");
      const h2 = await col("two", "heldoutBitsPerByte");
      assertEquals(h2.filter((h) => h > 0).length, 2);
      h2.forEach((h, i) => h > 0 && assertAlmostEquals(h, h1[i]!, 1e-5 * h1[i]!));
      const w = async (tag: string) =>
        LlamaParams.fromModel(await LlamaModel.load(`${dir}/${tag}-model`, { backend: "ts" }))
          .data;
      assert(relL2(await w("two"), await w("one")) <= 1e-5); // ‖Δ‖₂/‖w‖₂, as above
      // the checkpoint remembers the ranks: resuming it in one process is refused
      const again = await mpirunDeno(0, [...script("again"), "--resume", `${dir}/two-ck`], {
        limitS: 60,
      });
      assertEquals(again.code, 1);
      assert(again.stderr.includes("was trained on 2 rank(s)"), again.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
