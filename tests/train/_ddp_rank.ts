// One rank of a data-parallel test world, started by tests/train/ddp_test.ts as
//   mpirun -np N deno run --allow-read=data,tests --allow-write=DIR --allow-ffi=ffi/build \
//     tests/train/_ddp_rank.ts SCENARIO --seed S --tied 0|1 --batch B --accumulate A ...
// Prints `rank R: {json}` lines, or `rank R: error <name>: <message>`.
//   train   20 steps (--mode async: trainStepAsync, the overlapped all-reduce; sync: trainStep;
//           both: each from the same start, their weights compared); rank 0 writes the final
//           weights (raw f32) to --out; every rank prints its losses and its weights' hash
//   nan     rank 1's lm_head (or embedding) is made infinite: the first step fails on every rank
//   killed  rank 1 kills itself (SIGKILL) before step 3
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import type { Backend } from "../../lib/kernels/mod.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { DDP_OPTIONS, ddpCase } from "./_ddp.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    seed: { type: "string", default: "1" },
    tied: { type: "string", default: "0" },
    batch: { type: "string", default: "2" },
    accumulate: { type: "string", default: "1" },
    mode: { type: "string", default: "async" },
    "bucket-bytes": { type: "string", default: "4096" },
    backend: { type: "string", default: "cpu" },
    out: { type: "string" },
  },
});
const scenario = positionals[0] ?? "train";
using comm = createCommunicator("mpi", { timeoutSeconds: 60 });
const say = (s: string) => console.log(`rank ${comm.rank}: ${s}`);
const { params, windows } = ddpCase(Number(values.seed), values.tied === "1");
const make = () =>
  new Trainer(params.clone(), windows, {
    ...DDP_OPTIONS,
    microBatch: Number(values.batch),
    accumulate: Number(values.accumulate),
  }, { backend: values.backend as Backend, comm, bucketBytes: Number(values["bucket-bytes"]) });

try {
  if (scenario === "train") {
    const modes = values.mode === "both" ? ["async", "sync"] : [values.mode!];
    for (const mode of modes) {
      const t = make(), losses: number[] = [];
      for (let s = 0; s < DDP_OPTIONS.steps; s++) {
        losses.push((mode === "async" ? await t.trainStepAsync() : t.trainStep()).loss);
      }
      const hash = t.checkReplicas("at the end");
      if (comm.rank === 0 && values.out && mode === modes[0]) {
        Deno.writeFileSync(values.out, new Uint8Array(t.params.data.buffer));
      }
      say(JSON.stringify({ mode, losses, hash }));
    }
  } else if (scenario === "nan") {
    const t = make();
    if (comm.rank === 1) {
      t.params.view(
        t.params.config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight",
      ).fill(Infinity);
    }
    const before = t.params.data.slice();
    try {
      t.trainStep();
      say("no error");
    } catch (e) {
      const same = t.params.data.every((v, i) => Object.is(v, before[i]));
      say(`error ${(e as Error).name}: ${(e as Error).message} | unchanged ${same} step ${t.step}`);
    }
  } else if (scenario === "killed") {
    const t = make();
    for (let s = 0; s < DDP_OPTIONS.steps; s++) {
      if (s === 2 && comm.rank === 1) Deno.kill(Deno.pid, "SIGKILL");
      await t.trainStepAsync();
      say(`step ${t.step}`);
    }
  }
} catch (e) {
  say(`error ${(e as Error).name}: ${(e as Error).message}`);
  Deno.exit(1);
}
