// Trainer, checkpoints and scripts/train.ts: a resumed run's losses equal an uninterrupted run's
// exactly (in the library, and through the script after a SIGKILL), saved weights load in
// LlamaModel.load with the same logits, a NaN never reaches the weights, bad options fail first.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { NumericalError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { loadCheckpoint, saveTrainedModel } from "../../lib/train/checkpoint.ts";
import { checkFinite } from "../../lib/train/optimizer.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { runDeno } from "../_util.ts";
import { tinyConfig } from "./_ref_llama.ts";

const root = new URL("../../", import.meta.url).pathname;

function windows(rng: Rng, n: number, len: number, vocab: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: len }, () => rng.int(vocab)));
}

const OPTS = { steps: 8, microBatch: 2, accumulate: 2, lr: 3e-3, warmup: 2, clip: 0.5 };

for (const backend of ["ts", "cpu"] as const) {
  Deno.test(`Trainer ${backend}: a run resumed from a checkpoint repeats the uninterrupted run's losses exactly`, async () => {
    const config = tinyConfig(false), rng = new Rng(7);
    const data = windows(rng, 11, 9, config.vocabSize);
    const init = LlamaParams.init(config, new Rng(3), 0.3);
    const full = new Trainer(init.clone(), data, OPTS, { backend });
    const fullLosses = Array.from({ length: 8 }, () => full.trainStep().loss);
    const dir = await Deno.makeTempDir();
    try {
      const first = new Trainer(init.clone(), data, OPTS, { backend });
      const head = Array.from({ length: 3 }, () => first.trainStep().loss);
      await first.save(dir);
      first.trainStep(); // work after the checkpoint is lost
      const ck = await loadCheckpoint(dir);
      assertEquals(ck.state.step, 3);
      const again = new Trainer(LlamaParams.init(config, new Rng(99)), data, { steps: 8 }, {
        backend,
        resume: ck,
      });
      const tail = Array.from({ length: 5 }, () => again.trainStep().loss);
      assertEquals([...head, ...tail], fullLosses);
      assertEquals(again.params.data, full.params.data);
      // other data is refused
      assertThrows(
        () => new Trainer(init.clone(), data.slice(1), { steps: 8 }, { backend, resume: ck }),
        RangeError,
        "trained on other data",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("saved weights load in LlamaModel.load and give the trained parameters' logits", async () => {
  const config = tinyConfig(true), params = LlamaParams.init(config, new Rng(5), 0.3);
  const dir = await Deno.makeTempDir();
  try {
    await saveTrainedModel(`${dir}/m`, params);
    const loaded = await LlamaModel.load(`${dir}/m`, { backend: "ts" });
    const ids = [1, 5, 2, 12, 0];
    assertEquals(loaded.forward(ids).data, params.toModel("ts").forward(ids).data);
    const cfg = JSON.parse(await Deno.readTextFile(`${dir}/m/config.json`));
    assertEquals([cfg.model_type, cfg.torch_dtype, cfg.tie_word_embeddings], [
      "llama",
      "float32",
      true,
    ]);
    await assertRejects(() => loadCheckpoint(`${dir}/m`), Error, "not a training checkpoint");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a NaN loss or gradient names the step and the tensor and is never applied", () => {
  const config = tinyConfig(false), params = LlamaParams.init(config, new Rng(1), 0.3);
  params.view("model.layers.1.mlp.up_proj.weight")[4] = NaN;
  const before = params.data.slice();
  const t = new Trainer(params, windows(new Rng(2), 4, 6, config.vocabSize), OPTS, {
    backend: "ts",
  });
  assertThrows(
    () => t.trainStep(),
    NumericalError,
    "Step 1: the loss is NaN or infinite",
  );
  assertEquals(t.step, 0);
  assertEquals(t.optimizer.m.data.every((v) => v === 0), true);
  assertEquals(params.data, before);
  const g = params.zerosLike();
  g.view("model.norm.weight")[3] = Infinity;
  assertThrows(
    () => checkFinite(g, 12),
    NumericalError,
    "Step 12: the gradient of 'model.norm.weight' is Infinity at element 3",
  );
});

const FLAGS = [
  "run",
  "--no-prompt",
  "--allow-read=data,out",
  "--allow-write=out",
  "--allow-ffi=ffi/build",
  "--allow-env=LMKIT_BACKEND",
  "scripts/train.ts",
];
const TINY = [
  "--from-scratch",
  "--layers=2",
  "--hidden=32",
  "--heads=4",
  "--kv-heads=2",
  "--intermediate=48",
  "--context=48",
  "--batch=3",
  "--steps=14",
  "--lr=3e-3",
  "--eval-every=100",
  "--eval-windows=2",
  "--train=data/multilingual_text/ud_pud/pud_en.jsonl",
  "--heldout=data/multilingual_text/ud_pud/pud_de.jsonl",
];

function lossColumn(csv: string): string[] {
  return csv.trim().split("\n").slice(1).map((l) => l.split(",").slice(0, 3).join(","));
}

Deno.test("train.ts killed with SIGKILL mid-run and resumed repeats every later step's loss exactly", async () => {
  const tag = `out/test-train-${Deno.pid}-${Date.now()}`;
  try {
    const full = await runDeno([...FLAGS, ...TINY, `--out=${tag}/full`]);
    assertEquals(full.code, 0, full.stderr);
    // the same run, killed once it has checkpointed step 5, while it works on later steps
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        ...FLAGS,
        ...TINY,
        `--out=${tag}/cut`,
        `--checkpoint=${tag}/ck`,
        "--checkpoint-every=1",
      ],
      cwd: root,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).spawn();
    let seen = "";
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    while (!/step 6\/14/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    child.kill("SIGKILL");
    const status = await child.status;
    reader.releaseLock();
    await child.stderr.cancel().catch(() => {});
    assert(!status.success, `the run was not killed: ${seen}`);
    const latest = (await Deno.readTextFile(`${root}${tag}/ck/latest`)).trim();
    assert(/^step-000000[5-9]$/.test(latest), latest);
    const resumed = await runDeno([
      ...FLAGS,
      `--resume=${tag}/ck`,
      ...TINY.slice(1),
      `--out=${tag}/cut`,
    ]);
    assertEquals(resumed.code, 0, resumed.stderr);
    assert(resumed.stderr.includes("resumed from"), resumed.stderr);
    const a = lossColumn(await Deno.readTextFile(`${root}${tag}/full/loss.csv`));
    const b = lossColumn(await Deno.readTextFile(`${root}${tag}/cut/loss.csv`));
    assertEquals(a.length, 14);
    assertEquals(b, a);
  } finally {
    await Deno.remove(`${root}${tag}`, { recursive: true }).catch(() => {});
  }
});

Deno.test("train.ts refuses bad options before any work", async () => {
  for (
    const [args, msg] of [
      [["--steps=0"], "--steps '0' is not an integer"],
      [["--lr=abc"], "--lr 'abc' is not a number"],
      [["--context=600"], "--context '600' is not an integer"],
      [["--from-scratch", "--hidden=30", "--heads=4"], "--hidden 30 must be a multiple"],
      [["--train=/etc/passwd"], "--allow-read"],
      [["--resume=out/no-such-run"], "'out/no-such-run' is not a training checkpoint"],
    ] as const
  ) {
    const r = await runDeno([...FLAGS, ...args]);
    assertEquals(r.code, 1, `${args}: ${r.stderr}`);
    assert(r.stderr.includes(msg), `${args}: ${r.stderr}`);
    // one sentence; a missing permission adds the command line that grants it
    const lines = r.stderr.trim().split("\n");
    if (msg === "--allow-read") assert(lines[1]?.startsWith("  deno run "), r.stderr);
    assertEquals(lines.length, msg === "--allow-read" ? 2 : 1, r.stderr);
  }
});
