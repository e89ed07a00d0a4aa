// One rank of the data-parallel training benchmark (bench/ddp_bench.ts starts it as
//   mpirun -np N deno run --allow-read=data --allow-ffi=ffi/build bench/_ddp_rank.ts --dist mpi …
// or alone with --dist single). The bundled tinyllama-bytes, cpu backend, f32; the global batch is
// N × --batch windows of --seq + 1 tokens of real text (the "text" fields of UD PUD English, each
// [256] + UTF-8 bytes, concatenated: the stream bench/torch_ddp_peer.py cuts), rank r training on
// windows [r·batch, (r+1)·batch), the same batch every step. AdamW (0.9, 0.95), lr 1e-3, weight
// decay 0.1 on projections, clip 1: bench/torch_ddp_peer.py's step. Per mode (async: the
// all-reduce overlapped with the backward; sync: after it), --warmup + --steps steps, each
// between barriers; then the all-reduce of the whole gradient alone. Rank 0 prints one JSON line
// per mode.
import { parseArgs } from "node:util";
import { createCommunicator } from "../lib/comm/communicator.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { batchFromSequences } from "../lib/train/data.ts";
import { LlamaParams } from "../lib/train/params.ts";
import { Trainer } from "../lib/train/trainer.ts";
import { textWindows } from "../tests/_util.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    dist: { type: "string", default: "mpi" },
    batch: { type: "string", default: "8" },
    seq: { type: "string", default: "256" },
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    "bucket-mb": { type: "string", default: "25" },
    mode: { type: "string", default: "both" },
  },
});
const ROOT = new URL("..", import.meta.url).pathname;
const B = Number(values.batch), T = Number(values.seq);
using comm = createCommunicator(values.dist);
const { rank, size } = comm;

const mine = textWindows(size * B, T + 1).slice(rank * B, (rank + 1) * B);
const batch = batchFromSequences(mine);
const model = await LlamaModel.load(`${ROOT}data/models/tinyllama-bytes`, { backend: "cpu" });
const init = LlamaParams.fromModel(model);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const steps = Number(values.steps), warmup = Number(values.warmup);

for (const mode of values.mode === "both" ? ["async", "sync"] : [values.mode!]) {
  const trainer = new Trainer(init.clone(), [[256, 256]], {
    steps: 1000,
    microBatch: B,
    lr: 1e-3,
    minLr: 1e-3,
    warmup: 0,
    clip: 1,
    weightDecay: 0.1,
  }, { backend: "cpu", comm, bucketBytes: Number(values["bucket-mb"]) * 2 ** 20 });
  const times: number[] = [], waits: number[] = [], losses: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    comm.barrierSync();
    const t0 = performance.now();
    const r = mode === "async"
      ? await trainer.trainStepOnAsync([batch])
      : trainer.trainStepOn([batch]);
    comm.barrierSync();
    losses.push(r.loss);
    if (i < warmup) continue;
    times.push((performance.now() - t0) / 1000);
    waits.push(r.waitSeconds);
  }
  const hash = trainer.checkReplicas("at the end");
  // the whole gradient's all-reduce alone, for scale
  const g = new Float32Array(init.data.length), alone: number[] = [];
  for (let i = 0; i < 5; i++) {
    comm.barrierSync();
    const t0 = performance.now();
    comm.allReduceSync(g);
    alone.push((performance.now() - t0) / 1000);
  }
  const step = median(times);
  if (rank === 0) {
    console.log(JSON.stringify({
      peer: "lmkit",
      mode,
      world: size,
      batch: B,
      seq: T,
      bucket_mb: Number(values["bucket-mb"]),
      median_step_s: step,
      tokens_per_s: size * B * T / step,
      median_wait_s: median(waits),
      allreduce_alone_s: median(alone),
      gradient_mib: init.data.length * 4 / 2 ** 20,
      loss_first: losses[0],
      loss_last: losses.at(-1),
      weights_hash: hash,
    }));
  }
}
