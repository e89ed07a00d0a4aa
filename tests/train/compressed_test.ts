// The compressed gradient exchange on the data-parallel path (lib/train/compressed.ts), in a world
// of one with a compressor whose result is known (keep the first ⌈level·n/4⌉ elements of each
// tensor, the rest to the residual): error feedback loses nothing (what is sent plus the new
// residual is exactly gradient plus old residual), 1-D tensors travel raw, a level that would not
// shrink a tensor is refused, a Trainer steps with it; L-GreCo's levels follow the authors'
// schedule (raw in warm-up, the uniform level, the DP's choice from the first solve on); and
// scripts/lgreco.ts end to end on a real 2-rank mpirun world.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { Rng } from "../../lib/core/rng.ts";
import {
  AccordionLevels,
  CompressedExchange,
  type GradientCompressor,
  LgrecoLevels,
} from "../../lib/train/compressed.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { freshSeed, mpirunDeno, mpirunMissing } from "../_util.ts";
import { compressInput } from "./_compress_data.ts";
import {
  dequantizeBuckets,
  dequantizeBucketsAdd,
  deriveSeed,
  quantizeBuckets,
} from "../../lib/comm/quantize.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { tinyConfig } from "./_ref_llama.ts";
import { DDP_OPTIONS, ddpCase } from "./_ddp.ts";

const seed = freshSeed();

/** Keeps the first ⌈level·n/4⌉ elements (level 1…3; 4 would not shrink the tensor). */
const prefix: GradientCompressor = {
  name: "prefix",
  bytes: (shape, level) => {
    const n = shape[0]! * shape[1]!, k = Math.ceil(level * n / 4);
    return k >= n ? null : 4 * k;
  },
  error: (x, shape, level) => {
    const k = Math.ceil(level * shape[0]! * shape[1]! / 4);
    return x.subarray(k).reduce((a, v) => a + v * v, 0);
  },
  exchange(_comm, x, residual, { shape, level }) {
    const k = Math.ceil(level * shape[0]! * shape[1]! / 4);
    residual.fill(0, 0, k);
    residual.set(x.subarray(k), k);
    x.fill(0, k);
    return Promise.resolve(4 * k);
  },
};

Deno.test("error feedback: what is sent plus the new residual is the gradient plus the old residual, bit for bit", async () => {
  const config = tinyConfig(false), rng = new Rng(seed);
  const grad = new LlamaParams(config, rng.normalArray(new LlamaParams(config).data.length));
  const ex = new CompressedExchange(createCommunicator("single"), grad, prefix, {
    level: (v) => v.name.includes("mlp") ? 3 : 1,
  });
  ex.residual.data.set(rng.normalArray(grad.data.length));
  const x = grad.data.map((g, i) => Math.fround(g + ex.residual.data[i]!));
  const sent = await ex.reduce(grad, 1);
  for (let i = 0; i < x.length; i++) {
    assertEquals(grad.data[i]! + ex.residual.data[i]!, x[i], `element ${i}`);
  }
  // the 1-D tensors travelled raw, their residual cleared
  for (const v of grad.layout.views.filter((v) => v.shape.length === 1)) {
    assertEquals(grad.view(v.name), x.subarray(v.offset, v.offset + v.size));
    assert(ex.residual.view(v.name).every((e) => e === 0));
  }
  assertEquals(sent, ex.stepBytes());
  assert(sent < grad.data.byteLength);
  // a level that would not shrink the tensor: raw; a 1-D tensor or a bad level: refused
  ex.setLevel("model.layers.0.self_attn.q_proj.weight", 4);
  assertEquals(ex.levels().get("model.layers.0.self_attn.q_proj.weight"), null);
  assertThrows(() => ex.setLevel("model.norm.weight", 2), RangeError, "only 2-D tensors");
  assertThrows(() => ex.setLevel("no.such", 2), RangeError, "no tensor");
  assertThrows(() => ex.setLevel("lm_head.weight", NaN), RangeError, "at level NaN");
});

Deno.test("a Trainer with a compressed exchange trains, and only asynchronously", async () => {
  const { params, windows } = ddpCase(seed, false);
  const ex = new CompressedExchange(createCommunicator("single"), params, prefix, {
    level: () => 2,
  });
  const t = new Trainer(params.clone(), windows, { ...DDP_OPTIONS, microBatch: 4 }, {
    backend: "ts",
    exchange: ex,
  });
  assertThrows(() => t.trainStep(), RangeError, "steps with trainStepOnAsync");
  const losses: number[] = [];
  for (let i = 0; i < 12; i++) {
    const r = await t.trainStepAsync();
    assertEquals(r.sentBytes, ex.stepBytes());
    losses.push(r.loss);
  }
  assert(losses.slice(-3).reduce((a, b) => a + b) < losses.slice(0, 3).reduce((a, b) => a + b));
});

Deno.test("L-GreCo levels: raw in warm-up, uniform until the first solve, the DP's choice after", async () => {
  const config = tinyConfig(false), rng = new Rng(seed + 1);
  const grad = new LlamaParams(config);
  const lg = new LlamaParams(config);
  const o = { candidates: [1, 2, 3], uniform: 1, warmup: 2, adjustFreq: 3, accIter: 2, alpha: 1 };
  const comm = createCommunicator("single");
  const levels = new LgrecoLevels(comm, lg, prefix, o);
  const ex = new CompressedExchange(comm, lg, prefix, {
    level: () => null,
    onInput: levels.onInput,
  });
  const seen: (number | null)[][] = [];
  for (let step = 1; step <= 9; step++) {
    grad.data.set(rng.normalArray(grad.data.length));
    await ex.reduce(grad, step);
    seen.push(levels.names.map((n) => ex.levels().get(n)!));
  }
  // steps 1–2 raw; 3–5 uniform (level 2); solves at the starts of steps 6 and 9
  assert(seen.slice(0, 2).every((s) => s.every((l) => l === null)));
  assert(seen.slice(2, 5).every((s) => s.every((l) => l === 2)));
  assertEquals(levels.history.map((h) => h.step), [5, 8]);
  const adj = levels.history[0]!.adjustment!;
  // the choice in force is the solution's, and within the budget (α = 1 × uniform's error)
  assertEquals(seen[5], adj.choice.map((c) => o.candidates[c]!));
  assert(adj.solution.error < adj.budget);
});

Deno.test("Accordion: the fine level in the first window and where the window norm moved by ≥ eta, else coarse", async () => {
  const config = tinyConfig(false), comm = createCommunicator("single");
  const params = new LlamaParams(config), grad = new LlamaParams(config);
  const acc = new AccordionLevels(comm, params, { fine: 3, coarse: 1, warmup: 1, interval: 2 });
  const ex = new CompressedExchange(comm, params, prefix, {
    level: () => null,
    onInput: acc.onInput,
  });
  const q = "model.layers.0.self_attn.q_proj.weight", k = "model.layers.0.self_attn.k_proj.weight";
  const seen: (number | null)[][] = [];
  // windows of 2 steps after 1 warm-up step; q's gradient norm jumps ×3 in the third window
  for (let step = 1; step <= 8; step++) {
    grad.data.fill(0);
    grad.view(q).fill(step >= 6 ? 3 : 1);
    grad.view(k).fill(1);
    ex.residual.data.fill(0); // isolate the windows from error feedback
    await ex.reduce(grad, step);
    seen.push([ex.levels().get(q)!, ex.levels().get(k)!]);
  }
  // step 1 raw; windows {2, 3}, {4, 5}, {6, 7}: the first decision (step 4) has no previous
  // window, so fine; at step 6 both norms are unchanged, so coarse; at step 8 q's tripled
  assertEquals(seen, [[null, null], [3, 3], [3, 3], [3, 3], [3, 3], [1, 1], [1, 1], [3, 1]]);
  assertEquals(acc.history.map((h) => h.step), [3, 5, 7]);
});

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the lgreco.ts mpi test: ${skip}`);

Deno.test({
  name:
    "lgreco.ts on 2 ranks: every family uncompressed, uniform and L-GreCo, equal replicas, a report",
  ignore: !!skip,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const run = await mpirunDeno(2, [
        "--no-prompt",
        `--allow-read=data,${dir}`,
        `--allow-write=${dir}`,
        "--allow-ffi=ffi/build",
        "scripts/lgreco.ts",
        "--dist",
        "mpi",
        ...["--steps", "8", "--warmup", "2", "--adjust-freq", "3", "--acc-iter", "1"],
        ...["--batch", "1", "--context", "32", "--eval-windows", "2", "--out", dir],
      ], { limitS: 240, env: { OMP_NUM_THREADS: "1" } });
      assertEquals(run.code, 0, run.stdout + run.stderr);
      const res = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
      assertEquals(res.ranks, 2);
      assertEquals(res.runs.length, 8);
      const base = res.runs[0];
      for (const r of res.runs.slice(1)) {
        assert(r.compressedBytes < base.compressedBytes, `${r.family} ${r.setting} compresses`);
        assert(Number.isFinite(r.bpb) && r.bpb > 0);
      }
      // 6 compressed steps in windows of 3: one solve (at the 4th), a level per 2-D tensor
      const levels = (await Deno.readTextFile(`${dir}/levels.csv`)).trim().split("\n").slice(1);
      const tensors = new LlamaParams(
        (await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" })).config,
      ).layout.views.filter((v) => v.shape.length === 2).length;
      assertEquals(levels.length, 3 * tensors);
      assert(run.stdout.includes("| powersgd | L-GreCo |"), run.stdout);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

for (const np of [2, 4]) {
  Deno.test({
    name:
      `the quantize family's exchange on ${np} ranks equals its one-process simulation bit for bit`,
    ignore: !!skip,
    async fn() {
      const dir = await Deno.makeTempDir();
      try {
        const run = await mpirunDeno(np, [
          "--no-prompt",
          "--allow-ffi=ffi/build",
          `--allow-write=${dir}`,
          "tests/train/_compress_rank.ts",
          ...["--seed", String(seed % 100000), "--out", `${dir}/r.bin`],
        ], { limitS: 60 });
        assertEquals(run.code, 0, run.stdout + run.stderr);
        const spec = { bits: 3, bucketSize: 1024 }, n = 7 * 1031;
        const s = seed % 100000;
        for (let r = 0; r < np; r++) {
          const got = new Float32Array(Deno.readFileSync(`${dir}/r.bin.${r}`).buffer);
          for (let call = 0; call < 3; call++) {
            // every rank quantizes with its own draws; the sum is taken in rank order
            const msgs = Array.from(
              { length: np },
              (_, q) =>
                quantizeBuckets(compressInput(s, call, q), {
                  ...spec,
                  seed: deriveSeed(s, call, q),
                }),
            );
            const sum = new Float32Array(n);
            for (const m of msgs) dequantizeBucketsAdd(m, sum, spec);
            const x = compressInput(s, call, r), mine = dequantizeBuckets(msgs[r]!, n, spec);
            const residual = x.map((v, i) => v - mine[i]!);
            assertEquals(
              got.subarray(2 * call * n, (2 * call + 1) * n),
              sum,
              `rank ${r} call ${call}`,
            );
            assertEquals(got.subarray((2 * call + 1) * n, (2 * call + 2) * n), residual);
          }
        }
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
