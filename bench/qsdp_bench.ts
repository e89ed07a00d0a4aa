// QSDP (W8G8) against uncompressed FSDP, one training step on 2 ranks (issue 26, item 5):
//   deno run --no-prompt --allow-run=mpirun bench/qsdp_bench.ts [--steps 5] [--warmup 1]
//     [--batch 4] [--context 256] [--threads 1]
// (deno task bench-qsdp, after deno task build). Starts `mpirun --oversubscribe -np 2 -x
// OMP_NUM_THREADS=1 deno run --allow-read=data --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
// bench/qsdp_bench.ts --worker …`; each rank holds the bundled tinyllama-bytes (4.85M parameters)
// twice, as a ShardedTrainer without and one with QSDP W8G8 (bucket 1024, the norms as f32), both
// from the same weights and drawing the same batches (--batch windows × --context tokens of the
// SemEval-2021 comments per rank), cpu backend, and runs their steps interleaved (FSDP, QSDP,
// FSDP, …) so that both see the same machine load. Prints the median step time of each over
// --steps steps after --warmup, the ratio FSDP / QSDP, the median time inside the communicator's
// calls, and the exact bytes one rank sends per step. Skipped with one printed reason without
// mpirun or the MPI library.
import { parseArgs } from "node:util";
import { createCommunicator } from "../lib/comm/communicator.ts";
import { timedCommunicator } from "../lib/comm/timed.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { ByteTokenizer } from "../lib/model/tokenizer.ts";
import { readDocuments } from "../lib/io/text.ts";
import { documentWindows } from "../lib/train/data.ts";
import { ShardedTrainer } from "../lib/train/fsdp.ts";
import { LlamaParams } from "../lib/train/params.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    batch: { type: "string", default: "4" },
    context: { type: "string", default: "256" },
    threads: { type: "string", default: "1" },
    worker: { type: "boolean", default: false },
  },
});
const steps = Number(values.steps), warmup = Number(values.warmup);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function worker(): Promise<void> {
  using world = createCommunicator("mpi");
  const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
  const params = LlamaParams.fromModel(model);
  const windows = documentWindows(
    await readDocuments("data/toxic_spans/semeval2021/tsd_train.csv", "text"),
    new ByteTokenizer(),
    Number(values.context),
    "--context",
  );
  const options = { steps: steps + warmup, microBatch: Number(values.batch), lr: 1e-4, warmup: 1 };
  const runs = [
    { name: "FSDP fp32", t: timedCommunicator(world) },
    { name: "QSDP W8G8", t: timedCommunicator(world) },
  ].map((r) => ({
    ...r,
    trainer: new ShardedTrainer(params, windows, options, {
      backend: "cpu",
      comm: r.t.comm,
      ...(r.name.startsWith("QSDP") ? { qsdp: { weightBits: 8, gradBits: 8 } } : {}),
    }),
    step: [] as number[],
    comm: [] as number[],
    bytes: 0,
    uncompressed: 0,
  }));
  for (let k = 0; k < steps + warmup; k++) {
    for (const r of runs) {
      world.barrierSync();
      const c0 = 1000 * r.t.seconds(), t0 = performance.now();
      const s = r.trainer.trainStep();
      const dt = performance.now() - t0;
      if (k < warmup) continue;
      r.step.push(dt);
      r.comm.push(1000 * r.t.seconds() - c0);
      r.bytes = s.sentBytes;
      r.uncompressed = s.wire.uncompressed;
    }
  }
  if (world.rank !== 0) return;
  for (const r of runs) {
    console.log(JSON.stringify({
      name: r.name,
      stepMs: median(r.step),
      commMs: median(r.comm),
      bytes: r.bytes,
      uncompressed: r.uncompressed,
      steps: r.step.map((x) => Math.round(x)),
    }));
  }
}

async function main(): Promise<void> {
  const args = [
    "--oversubscribe",
    "--allow-run-as-root",
    "-x",
    "OMP_NUM_THREADS",
    "-np",
    "2",
    "deno",
    "run",
    "--no-prompt",
    "--allow-read=data",
    "--allow-ffi=ffi/build",
    "--allow-env=LMKIT_BACKEND",
    "bench/qsdp_bench.ts",
    "--worker",
    ...["--steps", values.steps!, "--warmup", values.warmup!],
    ...["--batch", values.batch!, "--context", values.context!],
  ];
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("mpirun", {
      args,
      cwd: new URL("..", import.meta.url).pathname,
      env: { NO_COLOR: "1", OMP_NUM_THREADS: values.threads!, OPENBLAS_NUM_THREADS: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    console.log(`skipped: cannot start mpirun (${(e as Error).message})`);
    return;
  }
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
    console.log(`skipped: mpirun -np 2 failed (${err})`);
    return;
  }
  const rows = text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
  const [f, q] = rows as { name: string; stepMs: number; commMs: number; bytes: number }[];
  console.log(
    `\nQSDP against FSDP: tinyllama-bytes (4.85M parameters), 2 ranks (mpirun, one machine), ${values.batch} × ${values.context} tokens per rank, ${values.threads} thread(s) per rank, cpu backend, median of ${steps} steps after ${warmup}\n`,
  );
  console.log("run          ms/step   comm ms   MiB sent per rank per step");
  for (const r of rows) {
    console.log(
      `${r.name.padEnd(11)} ${r.stepMs.toFixed(1).padStart(8)}  ${
        r.commMs.toFixed(1).padStart(8)
      }   ${(r.bytes / 2 ** 20).toFixed(3).padStart(8)}   (steps ${r.steps.join(", ")} ms)`,
    );
  }
  if (f && q) {
    console.log(
      `\nstep time FSDP / QSDP: ${(f.stepMs / q.stepMs).toFixed(2)}×; bytes FSDP / QSDP: ${
        (f.bytes / q.bytes).toFixed(2)
      }×`,
    );
  }
}

if (values.worker) await worker();
else await main();
