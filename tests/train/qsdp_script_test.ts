// scripts/qsdp.ts: bad flags fail with one sentence before any work (one process); on a real
// 2-rank mpirun world with tiny settings it trains fp32 FSDP and every grid setting from the same
// start, writes results.json with each of them, bytes per step exact from the trainer and equal
// to the script's formula (fp32 / W8G8 ≥ 3.5, lower bits fewer bytes), and a falling loss.
// Skipped, with one printed reason, without mpirun. And QSDP's `onGrid` (lib/train/fsdp.ts): the
// master weights stay on the weights' quantization grid (≤ 2^bits values per bucket) at the start
// and after every step, and the model still trains.
import { assert, assertEquals } from "@std/assert";
import { ShardedTrainer } from "../../lib/train/fsdp.ts";
import { DDP_OPTIONS, ddpCase } from "./_ddp.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { freshSeed, mpirunDeno, mpirunMissing, runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

const PERMS = ["--no-prompt", "--allow-ffi=ffi/build"];

Deno.test("qsdp.ts: bad flags fail with one sentence and write nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [flags, expect] of [
        [["--grid", "W8G9"], "--grid"],
        [["--grid", "W8G8,W8G8"], "twice"],
        [["--seeds", "0,x"], "--seeds"],
        [["--tokens", "0"], "--tokens"],
        [["--hidden", "100", "--heads", "3"], "--hidden"],
        [["--dist", "tcp"], "--dist"],
        [["--context", "100000"], "--context"],
        [["--tokens", "100"], "expected ≥ 2"],
        [["--nope"], "nope"],
      ] as const
    ) {
      const r = await runDeno([
        "run",
        ...PERMS,
        `--allow-write=${dir}`,
        `--allow-read=data,${dir}`,
        "scripts/qsdp.ts",
        ...flags,
        "--out",
        `${dir}/out`,
      ]);
      assertEquals(r.code, 1, `${flags.join(" ")}: ${r.stdout}${r.stderr}`);
      const lines = r.stderr.trim().split("\n");
      assertEquals(lines.length, 1, `${flags.join(" ")}: one line, got ${r.stderr}`);
      assert(lines[0]!.startsWith("error: ") && lines[0]!.includes(expect), lines[0]);
      assertEquals(r.stdout, "", "no work before the flags are checked");
    }
    assertEquals([...Deno.readDirSync(dir)].length, 0, "no output");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the qsdp.ts mpi test: ${skip}`);

Deno.test({
  name: "qsdp.ts on 2 ranks: fp32 and every grid setting, exact bytes, a falling loss, a report",
  ignore: !!skip,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const grid = ["W8G8", "W4G4", "W2G8"];
      const run = await mpirunDeno(2, [
        ...PERMS,
        `--allow-read=data,${dir}`,
        `--allow-write=${dir}`,
        "scripts/qsdp.ts",
        "--dist",
        "mpi",
        ...["--grid", grid.join(","), "--layers", "1", "--hidden", "64", "--intermediate", "128"],
        ...["--tokens", "3072", "--batch", "2", "--context", "64", "--lr", "1e-2"],
        ...["--eval-windows", "4", "--seeds", "3,4", "--out", dir],
      ], { limitS: 120, env: { OMP_NUM_THREADS: "1" } });
      assertEquals(run.code, 0, run.stdout + run.stderr);
      const res = JSON.parse(await Deno.readTextFile(`${dir}/results.json`));
      assertEquals(res.ranks, 2);
      assertEquals(res.steps, 12);
      assertEquals(res.settings.map((s: { setting: string }) => s.setting), ["fp32", ...grid]);
      const by = Object.fromEntries(
        res.settings.map((s: { setting: string }) => [s.setting, s]),
      );
      // the second seed runs fp32 and W8G8 only (mean ± sd over both)
      for (const s of res.settings) {
        assertEquals(s.seeds, ["fp32", "W8G8"].includes(s.setting) ? [3, 4] : [3], s.setting);
      }
      assert(Number.isFinite(by.W8G8.heldoutLoss.sd));
      assertEquals(by.W4G4.heldoutLoss.sd, null, "one seed: no sd");
      for (const s of res.settings) {
        // measured by the trainer on 2 ranks, the same as the formula the projection uses
        assertEquals(s.wireBytesMeasured, s.wireBytesPerStep, s.setting);
        assert(s.finalTrainLoss < s.firstTrainLoss - 0.5, `${s.setting}: the loss falls`);
        assert(Number.isFinite(s.heldoutBitsPerByte.mean) && s.heldoutBitsPerByte.mean > 0);
        assert(s.projectedStepSeconds["1"] > s.projectedStepSeconds["100"]);
        assertEquals(s.fp32OverThis, by.fp32.wireBytesPerStep / s.wireBytesPerStep);
      }
      // the ratio from first principles: f32 pieces against 8-bit levels + 8 bytes per bucket
      assert(by.W8G8.fp32OverThis >= 3.5 && by.W8G8.fp32OverThis < 4, `${by.W8G8.fp32OverThis}`);
      assert(by.W4G4.wireBytesPerStep < by.W8G8.wireBytesPerStep);
      assert(by.W2G8.wireBytesPerStep < by.W8G8.wireBytesPerStep);
      // the per-step bytes of fp32: 2 ranks send one piece per collective: every unit gathered
      // once forward, the blocks again backward, every gradient reduce-scattered once
      const p = res.config.parameters;
      assert(by.fp32.wireBytesPerStep >= 4 * (p / 2) * 2, "at least 2 passes of half the model");
      assert(res.verdict.startsWith("W8G8: "), res.verdict);
      for (const f of ["report.md", "report.html", "steps.csv", "runs.csv"]) {
        assert((await Deno.stat(`${dir}/${f}`)).size > 0, f);
      }
      await assertReport(dir, ["loss", "projected-step-time"]);
      assert(run.stdout.includes("| W8G8 |"), run.stdout);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("QSDP onGrid keeps the master weights on the 4-bit grid and trains; without it they leave it", () => {
  const seed = freshSeed(), { params, windows } = ddpCase(seed, false);
  const bucketSize = 64;
  /** Most distinct values in any bucket of any unit's quantized part of the shard. */
  const levels = (t: ShardedTrainer) => {
    let most = 0;
    for (const u of t.plan.units) {
      const x = t.weights.subarray(u.shardOffset, u.shardOffset + u.bigPiece);
      for (let b = 0; b < x.length; b += bucketSize) {
        most = Math.max(most, new Set(x.subarray(b, b + bucketSize)).size);
      }
    }
    return most;
  };
  const make = (onGrid: boolean) =>
    new ShardedTrainer(params, windows, { ...DDP_OPTIONS, microBatch: 4 }, {
      backend: "ts",
      qsdp: { weightBits: 4, gradBits: 8, bucketSize, minElements: 64, seed, onGrid },
    });
  const on = make(true), off = make(false);
  assert(on.plan.units.some((u) => u.bigPiece > 0));
  assert(levels(on) <= 16, `at the start: ${levels(on)} values in a bucket`);
  const losses: number[] = [];
  for (let s = 0; s < 8; s++) {
    losses.push(on.trainStep().loss);
    off.trainStep();
    assert(levels(on) <= 16, `after step ${s + 1}: ${levels(on)} values in a bucket`);
  }
  assert(levels(off) > 16, "the f32 master weights are not on the grid");
  assert(losses.at(-1)! < losses[0]! - 0.1, `the loss falls: ${losses.join(", ")}`);
});
