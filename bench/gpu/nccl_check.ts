// The nccl device communicator on a real GPU at world size 1: the time of an in-place all-reduce
// of 16 MiB of f32 (blocking and non-blocking), and of a 1-element one (the per-call overhead:
// enqueue, stream poll, return). Run by bench/gpu/nccl_check.sh; prints a Markdown table last
// (and writes it as JSON to --out when given). No npm imports, so that it runs from a bare
// checkout with .gpu/env.sh's Deno.
import { cudaSync, DeviceBuffer } from "../../ffi/mod.ts";
import { createNcclCommunicator } from "../../lib/comm/nccl.ts";

const outIdx = Deno.args.indexOf("--out");
const out = outIdx >= 0 ? Deno.args[outIdx + 1] : undefined;
const reps = 50;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

using comm = createNcclCommunicator();
console.log(`${comm.describe()} from ${comm.library.path}`);
const rows: { op: string; bytes: number; ms: number; gbps: number }[] = [];
for (const n of [4 << 20, 1]) {
  using buf = DeviceBuffer.from(new Float32Array(n).fill(1));
  for (const mode of ["blocking", "non-blocking"] as const) {
    const ts: number[] = [];
    for (let r = 0; r < reps + 5; r++) {
      cudaSync();
      const t0 = performance.now();
      if (mode === "blocking") comm.allReduceSync(buf);
      else await comm.allReduce(buf);
      if (r >= 5) ts.push(performance.now() - t0);
    }
    const ms = median(ts), bytes = n * 4;
    rows.push({ op: `allReduce f32 sum (${mode})`, bytes, ms, gbps: bytes / ms / 1e6 });
    console.error(`measured: ${rows.at(-1)!.op} | ${bytes} B | ${ms.toFixed(4)} ms`);
  }
  // out of place: at world size 1 an in-place all-reduce may move nothing; a gather copies
  using recv = DeviceBuffer.alloc("f32", n);
  const ts: number[] = [];
  for (let r = 0; r < reps + 5; r++) {
    cudaSync();
    const t0 = performance.now();
    comm.allGatherSync(buf, recv);
    if (r >= 5) ts.push(performance.now() - t0);
  }
  const ms = median(ts);
  rows.push({
    op: "allGather f32 (blocking, out of place)",
    bytes: n * 4,
    ms,
    gbps: n * 4 / ms / 1e6,
  });
  const back = buf.download(new Float32Array(n));
  if (back.some((v) => v !== 1)) {
    throw new Error(`allReduce at world size 1 changed the data (n=${n})`);
  }
}
console.log("\n| op | bytes | median ms (wall, call to return) | GB/s |\n|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.op} | ${r.bytes} | ${r.ms.toFixed(4)} | ${r.gbps.toFixed(1)} |`);
}
if (out) {
  await Deno.writeTextFile(out, JSON.stringify({ device: comm.describe(), rows }, null, 2) + "\n");
}
