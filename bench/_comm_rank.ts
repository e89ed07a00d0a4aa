// One rank of bench/comm_bench.ts: each collective through lmkit's mpi communicator, timed the
// way bench/comm_peer.c times the same MPI call made straight from C. Started by comm_bench.ts as
//   mpirun --allow-run-as-root --oversubscribe -np N deno run --no-prompt --allow-ffi=ffi/build \
//     bench/_comm_rank.ts [--sizes 4096,262144,...] [--reps R] [--ops allreduce_f32,...]
// For each collective and size: warmup calls, then R rounds of (barrier, one blocking call;
// barrier, one non-blocking call awaited), so the two forms interleave; each rank times its own
// call and a call's time is the slowest rank's. Rank 0 prints one JSON line per (form, collective,
// size) with the median. Bytes per call: the bytes of each rank's send buffer (see comm_peer.c);
// R and the warmup as in comm_peer.c. Output buffers are passed (`out`), so no call allocates.
import { parseArgs } from "node:util";
import { createCommunicator } from "../lib/comm/communicator.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    sizes: { type: "string", default: "4096,262144,1048576,16777216" },
    reps: { type: "string", default: "0" },
    ops: { type: "string", default: "" },
  },
});
const OPS = [
  "allreduce_f32",
  "allreduce_f64",
  "allgather",
  "reduce_scatter_f32",
  "alltoall",
  "broadcast",
  "barrier",
] as const;
type Op = typeof OPS[number];
const wanted = values.ops ? values.ops.split(",") : [...OPS];
const sizes = values.sizes.split(",").map(Number);
const repsArg = Number(values.reps);

using comm = createCommunicator("mpi");
const { rank, size } = comm;
for (const b of sizes) {
  if (!Number.isInteger(b) || b < 0 || b % (8 * size)) {
    throw new RangeError(`size ${b} is not a multiple of 8 × ${size} ranks`);
  }
}
const maxBytes = Math.max(...sizes);
const send = new Uint8Array(maxBytes), recv = new Uint8Array(maxBytes * size);
send.fill(0), recv.fill(0); // touch every page before timing, as comm_peer.c's memset

const defaultReps = (bytes: number) =>
  Math.min(1000, Math.max(100, bytes > 0 ? Math.floor(2 ** 30 / bytes) : 1000));

/** One call of `op` on `b` bytes, blocking or not. */
function call(op: Op, b: number, sync: boolean): void | Promise<unknown> {
  const f32 = new Float32Array(send.buffer, 0, b / 4);
  switch (op) {
    case "allreduce_f32":
      return sync ? comm.allReduceSync(f32) : comm.allReduce(f32);
    case "allreduce_f64": {
      const f64 = new Float64Array(send.buffer, 0, b / 8);
      return sync ? comm.allReduceSync(f64) : comm.allReduce(f64);
    }
    case "allgather": {
      const s = send.subarray(0, b), o = recv.subarray(0, b * size);
      return sync ? void comm.allGatherSync(s, o) : comm.allGather(s, o);
    }
    case "reduce_scatter_f32": {
      const o = new Float32Array(recv.buffer, 0, b / 4 / size);
      return sync ? void comm.reduceScatterSync(f32, o) : comm.reduceScatter(f32, o);
    }
    case "alltoall": {
      const s = send.subarray(0, b), o = recv.subarray(0, b);
      return sync ? void comm.allToAllSync(s, o) : comm.allToAll(s, o);
    }
    case "broadcast": {
      const s = send.subarray(0, b);
      return sync ? comm.broadcastSync(s, 0) : comm.broadcast(s, 0);
    }
    case "barrier":
      return sync ? comm.barrierSync() : comm.barrier();
  }
}

/** The median over calls of the slowest rank's time (s); `times` in ms, one per call. */
function slowest(times: Float64Array): { median: number; min: number } {
  const all = comm.allGatherSync(new Uint8Array(times.buffer));
  const t = new Float64Array(all.buffer, all.byteOffset, times.length * size).slice();
  const worst = Array.from(times, (_, i) => {
    let m = 0;
    for (let r = 0; r < size; r++) m = Math.max(m, t[r * times.length + i]!);
    return m / 1000;
  }).sort((a, b) => a - b);
  const n = worst.length, median = n % 2 ? worst[n >> 1]! : (worst[n / 2 - 1]! + worst[n / 2]!) / 2;
  return { median, min: worst[0]! };
}

for (const op of OPS) {
  if (!wanted.includes(op)) continue;
  for (const b of op === "barrier" ? [0] : sizes) {
    const reps = Math.min(1000, repsArg > 0 ? repsArg : defaultReps(b));
    const warm = Math.max(3, Math.floor(reps / 10));
    const ts = new Float64Array(reps), ta = new Float64Array(reps);
    for (let i = -warm; i < reps; i++) {
      comm.barrierSync();
      let t0 = performance.now();
      call(op, b, true);
      const dSync = performance.now() - t0;
      comm.barrierSync();
      t0 = performance.now();
      await call(op, b, false);
      const dAsync = performance.now() - t0;
      if (i >= 0) ts[i] = dSync, ta[i] = dAsync;
    }
    for (const [form, times] of [["lmkit-sync", ts], ["lmkit-async", ta]] as const) {
      const { median, min } = slowest(times);
      if (rank === 0) {
        console.log(JSON.stringify({
          impl: form,
          op,
          bytes: b,
          np: size,
          reps,
          median_s: median,
          min_s: min,
        }));
      }
    }
  }
}
