// Data-parallel training, lmkit against PyTorch DDP (issue 22, item 6b and 6c):
//   deno task bench-ddp        (= the command below, after deno task build)
//   deno run --no-prompt --allow-read=data,bench --allow-run=mpirun,/usr/bin/python3,deno \
//     bench/ddp_bench.ts [--steps 5] [--warmup 2] [--threads 1]
// The bundled tinyllama-bytes (4.85M parameters, an 18.5 MiB f32 gradient), the cpu backend, 8
// windows × 256 tokens of real text per rank (bench/_ddp_rank.ts; the same windows as
// bench/torch_ddp_peer.py), AdamW + clipping, --threads threads per rank (OMP_NUM_THREADS for
// lmkit, torch.set_num_threads for PyTorch). In the same run, one after another:
//   lmkit   1 process (--dist single) and 2 ranks (mpirun -np 2, --dist mpi) with 25 MiB buckets
//           (PyTorch's default; one bucket here) and 4 MiB buckets (five), each rank timing
//           overlapped steps (trainStepOnAsync) and blocking ones (trainStepOn)
//   PyTorch torch.nn.parallel.DistributedDataParallel over gloo, world 1 and 2, default buckets
// Prints tokens/s of each, the 2-rank ratio lmkit / PyTorch (goal ≥ 1.2×), the scaling from 1 to
// 2 ranks, and (6c) how much of the all-reduce the backward hid: 1 − overlapped wait / blocking
// wait, where a wait is the time a rank's step spent waiting for the gradient's all-reduce after
// its backward (it also holds the ranks' skew: the faster rank waits for the slower), beside the
// whole gradient's all-reduce timed alone.
// Skipped with one printed reason where mpirun or the python peer is missing.
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    steps: { type: "string", default: "5" },
    warmup: { type: "string", default: "2" },
    threads: { type: "string", default: "1" },
  },
});
const ROOT = new URL("..", import.meta.url).pathname;
const threads = values.threads!;
type Row = Record<string, number | string>;

async function run(cmd: string, args: string[], env: Record<string, string>): Promise<Row[]> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    const lines = new TextDecoder().decode(out.stderr).trim().split("\n");
    const errors = lines.filter((l) => /error|uncaught|exception/i.test(l));
    throw new Error(
      `${cmd} ${args.slice(0, 8).join(" ")} … failed: ${
        (errors.length ? errors : lines).slice(-3).join(" | ")
      }`,
    );
  }
  return text.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

const common = ["--steps", values.steps!, "--warmup", values.warmup!];
const rank = (dist: string, mb: number) => [
  "run",
  "--no-prompt",
  "--allow-read=data",
  "--allow-ffi=ffi/build",
  "bench/_ddp_rank.ts",
  "--dist",
  dist,
  "--bucket-mb",
  String(mb),
  ...common,
];
const env = { OMP_NUM_THREADS: threads, OPENBLAS_NUM_THREADS: threads };
const mpirun = (np: number, args: string[]) =>
  run("mpirun", [
    "--oversubscribe",
    "--allow-run-as-root",
    "-x",
    "OMP_NUM_THREADS",
    "-np",
    String(np),
    "deno",
    ...args,
  ], env);
const torch = (world: number) =>
  run("/usr/bin/python3", [
    "bench/torch_ddp_peer.py",
    "--world",
    String(world),
    "--threads",
    threads,
    ...common,
  ], {});

const rows: Row[] = [];
try {
  rows.push(...await run("deno", rank("single", 25), env));
  for (const mb of [25, 4]) rows.push(...await mpirun(2, rank("mpi", mb)));
} catch (e) {
  console.log(`skipped the lmkit side: ${(e as Error).message}`);
}
try {
  for (const w of [1, 2]) rows.push(...await torch(w));
} catch (e) {
  console.log(`skipped the PyTorch side: ${(e as Error).message}`);
}

const f = (x: unknown, d = 0) => typeof x === "number" ? x.toFixed(d) : "–";
console.log(
  `\nData-parallel training step, tinyllama-bytes, 8 × 256 tokens per rank, ${threads} thread(s) per rank\n`,
);
console.log("peer      mode   world  bucket MiB  s/step  tokens/s  wait s  all-reduce alone s");
for (const r of rows) {
  console.log(
    `${String(r.peer).padEnd(9)} ${String(r.mode ?? "ddp").padEnd(6)} ${
      String(r.world).padStart(5)
    }  ${f(r.bucket_mb).padStart(10)}  ${f(r.median_step_s, 2).padStart(6)}  ${
      f(r.tokens_per_s).padStart(8)
    }  ${f(r.median_wait_s, 3).padStart(6)}  ${
      f(r.allreduce_alone_s ?? r.allreduce_s, 3).padStart(8)
    }`,
  );
}
const pick = (peer: string, world: number, mode?: string, mb?: number) =>
  rows.find((r) =>
    String(r.peer).startsWith(peer) && r.world === world &&
    (mode === undefined || r.mode === mode) &&
    (mb === undefined || r.bucket_mb === mb)
  );
const ours = pick("lmkit", 2, "async", 25), theirs = pick("torch", 2);
const one = pick("lmkit", 1, "async"), theirsOne = pick("torch", 1);
if (ours && theirs) {
  console.log(
    `\n2 ranks, lmkit / PyTorch DDP tokens/s: ${
      (Number(ours.tokens_per_s) / Number(theirs.tokens_per_s)).toFixed(2)
    }× (goal ≥ 1.2×)`,
  );
}
if (ours && one) {
  console.log(
    `lmkit 1 → 2 ranks: ${(Number(ours.tokens_per_s) / Number(one.tokens_per_s)).toFixed(2)}×${
      theirs && theirsOne
        ? `; PyTorch ${(Number(theirs.tokens_per_s) / Number(theirsOne.tokens_per_s)).toFixed(2)}×`
        : ""
    }`,
  );
}
for (const mb of [25, 4]) {
  const a = pick("lmkit", 2, "async", mb), s = pick("lmkit", 2, "sync", mb);
  if (!a || !s) continue;
  const hidden = 1 - Number(a.median_wait_s) / Number(s.median_wait_s);
  console.log(
    `${mb} MiB buckets: wait ${f(s.median_wait_s, 3)} s blocking, ${
      f(a.median_wait_s, 3)
    } s overlapped, all-reduce alone ${f(a.allreduce_alone_s, 3)} s: hidden share ${
      (100 * Math.max(0, Math.min(1, hidden))).toFixed(0)
    } % (raw ${(100 * hidden).toFixed(0)} %); ${f(a.median_step_s, 2)} vs ${
      f(s.median_step_s, 2)
    } s/step`,
  );
}
