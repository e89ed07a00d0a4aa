// One rank of a fully sharded test world, started by tests/train/fsdp_test.ts as
//   mpirun -np N deno run --allow-read=data,tests --allow-write=DIR --allow-ffi=ffi/build \
//     tests/train/_fsdp_rank.ts --seed S --tied 0|1 --odd 0|1 --batch B --accumulate A --out DIR
// Trains the case of tests/train/_ddp.ts (--odd 1: hidden 25, intermediate 41) for 20 AdamW steps three ways from the same start:
// DDP (Trainer), FSDP (ShardedTrainer) and QSDP W8G8 (ShardedTrainer, qsdp); rank 0 writes the
// final DDP and FSDP weights (raw f32) to DIR/ddp.bin and DIR/fsdp.bin; every rank prints
// DIR/rankR-RUN.json with each run's losses, hashes, wire bytes and memory.
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import type { Backend } from "../../lib/kernels/mod.ts";
import { ShardedTrainer } from "../../lib/train/fsdp.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { DDP_OPTIONS, ddpCase } from "./_ddp.ts";
import { Rng } from "../../lib/core/rng.ts";
import { LlamaParams } from "../../lib/train/params.ts";

/** tests/train/_ddp.ts's case; with `odd`, hidden 25 and intermediate 41 (padded shards). */
export function oddCase(seed: number, tied: boolean, odd: boolean) {
  const c = ddpCase(seed, tied);
  if (!odd) return c;
  const config = { ...c.config, hiddenSize: 25, intermediateSize: 41 };
  return { config, windows: c.windows, params: LlamaParams.init(config, new Rng(seed), 0.1) };
}

// Importing this file (for oddCase) runs nothing.
if (import.meta.main) main();

function main(): void {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      seed: { type: "string", default: "1" },
      tied: { type: "string", default: "0" },
      batch: { type: "string", default: "2" },
      accumulate: { type: "string", default: "1" },
      backend: { type: "string", default: "cpu" },
      "min-elements": { type: "string", default: "64" },
      odd: { type: "string", default: "0" },
      out: { type: "string" },
    },
  });
  using comm = createCommunicator("mpi", { timeoutSeconds: 60 });
  const say = (s: string) => console.log(`rank ${comm.rank}: ${s}`);
  // long lines of several ranks interleave on mpirun's stdout: each rank writes a file
  const report = (run: string, o: unknown) =>
    Deno.writeTextFileSync(`${values.out}/rank${comm.rank}-${run}.json`, JSON.stringify(o));
  const { params, windows } = oddCase(Number(values.seed), values.tied === "1", values.odd === "1");
  const options = {
    ...DDP_OPTIONS,
    microBatch: Number(values.batch),
    accumulate: Number(values.accumulate),
  };
  const backend = values.backend as Backend;

  try {
    const ddp = new Trainer(params.clone(), windows, options, { backend, comm, bucketBytes: 3000 });
    const ddpLosses: number[] = [];
    for (let s = 0; s < DDP_OPTIONS.steps; s++) ddpLosses.push(ddp.trainStep().loss);
    ddp.checkReplicas("at the end");
    if (comm.rank === 0 && values.out) {
      Deno.writeFileSync(`${values.out}/ddp.bin`, new Uint8Array(ddp.params.data.buffer));
    }
    report("ddp", { run: "ddp", losses: ddpLosses });
    for (const run of ["fsdp", "qsdp"]) {
      const t = new ShardedTrainer(params, windows, options, {
        backend,
        comm,
        ...(run === "qsdp" ? { qsdp: { minElements: Number(values["min-elements"]) } } : {}),
      });
      const steps = [];
      for (let s = 0; s < DDP_OPTIONS.steps; s++) {
        const r = t.trainStep();
        steps.push({ loss: r.loss, wire: r.wire, sent: r.sentBytes, hash: r.gatheredHash });
      }
      const full = t.gatherParams();
      if (comm.rank === 0 && values.out && run === "fsdp") {
        Deno.writeFileSync(`${values.out}/fsdp.bin`, new Uint8Array(full.data.buffer));
      }
      const ev = t.evaluate([]);
      report(run, {
        run,
        steps,
        state: t.stateHash(),
        memory: t.memory(),
        shardSize: t.plan.shardSize,
        padding: t.plan.padding,
        evalTokens: ev.tokens,
      });
    }
  } catch (e) {
    say(`error ${(e as Error).name}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
