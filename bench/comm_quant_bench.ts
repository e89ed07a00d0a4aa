// Throughput of the C quantizer of the compressed collectives (lib/comm/quantize.ts over
// ffi/cpu/comm_quant.c) against a plain copy of the same buffer, on one thread:
//
//   OMP_NUM_THREADS=1 deno run --no-prompt --allow-ffi=ffi/build --allow-env bench/comm_quant_bench.ts \
//     [--mib 16] [--reps 15] [--json]
//
// For 4 and 8 bits (buckets of 1024, f32 metadata), stochastic and nearest rounding, it times
// quantize + pack of a --mib MiB f32 buffer (normal values) into its message, dequantize into an
// f32 buffer and dequantize-accumulate (out += dequant) against TypedArray.set of the same f32
// buffer into another (a memcpy: V8 copies with memmove). GB/s = the f32 input's bytes (the
// output's for dequantizing) / the median seconds of --reps calls after two warmups, the copy
// timed between the kernels' calls (so drift hits both alike). Ratio = kernel GB/s / copy GB/s,
// the goal ≥ 0.8 for quantize + pack. The thread count is the library's (OMP_NUM_THREADS; the
// script says when it is not 1).
import { parseArgs } from "node:util";
import { cpu, libraryInfo } from "../ffi/mod.ts";
import { dequantizeBuckets, dequantizeBucketsAdd, quantizeBuckets } from "../lib/comm/quantize.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mib: { type: "string", default: "16" },
    reps: { type: "string", default: "15" },
    json: { type: "boolean", default: false },
  },
});
const mib = Number(values.mib), reps = Number(values.reps);
if (!(mib > 0) || !Number.isInteger(reps) || reps < 1) {
  console.error(
    `comm_quant_bench: --mib ${values.mib} --reps ${values.reps}: expected mib > 0, reps ≥ 1`,
  );
  Deno.exit(2);
}
const threads = libraryInfo(cpu()).threads;
if (threads !== 1) {
  console.log(`note: the C library runs ${threads} threads (set OMP_NUM_THREADS=1)`);
}

const n = Math.floor(mib * 2 ** 20 / 4), bytes = n * 4;
const x = new Float32Array(n), copy = new Float32Array(n), y = new Float32Array(n);
let s = 12345;
for (let i = 0; i < n; i += 2) { // Box–Muller normals from an xorshift
  s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
  const u = ((s >>> 0) + 1) / 2 ** 32;
  s ^= s << 13, s ^= s >>> 17, s ^= s << 5;
  const v = (s >>> 0) / 2 ** 32, r = Math.sqrt(-2 * Math.log(u));
  x[i] = r * Math.cos(2 * Math.PI * v);
  if (i + 1 < n) x[i + 1] = r * Math.sin(2 * Math.PI * v);
}

const median = (a: number[]) => a.slice().sort((p, q) => p - q)[a.length >> 1]!;

/** Median seconds of `f` and of the copy, interleaved, after two warmups of each. */
function time(f: () => void): { kernel: number; memcpy: number } {
  const k: number[] = [], c: number[] = [];
  for (let r = -2; r < reps; r++) {
    let t = performance.now();
    f();
    const dk = performance.now() - t;
    t = performance.now();
    copy.set(x);
    const dc = performance.now() - t;
    if (r >= 0) k.push(dk / 1e3), c.push(dc / 1e3);
  }
  return { kernel: median(k), memcpy: median(c) };
}

interface Row {
  op: string;
  bits: number;
  rounding: string;
  kernelGBs: number;
  memcpyGBs: number;
  ratio: number;
}
const rows: Row[] = [];
for (const bits of [4, 8]) {
  for (const rounding of ["stochastic", "nearest"] as const) {
    const o = { bits, rounding, seed: 7, backend: "cpu" } as const;
    const msg = quantizeBuckets(x, o);
    const ops: [string, () => void][] = [
      ["quantize+pack", () => quantizeBuckets(x, o, msg)],
      ...(rounding === "stochastic"
        ? [
          ["dequantize", () => dequantizeBuckets(msg, n, o, y)] as [string, () => void],
          ["dequantize-add", () => dequantizeBucketsAdd(msg, y, o)] as [string, () => void],
        ]
        : []),
    ];
    for (const [op, f] of ops) {
      const t = time(f);
      const row = {
        op,
        bits,
        rounding: op === "quantize+pack" ? rounding : "-",
        kernelGBs: bytes / t.kernel / 1e9,
        memcpyGBs: bytes / t.memcpy / 1e9,
        ratio: t.memcpy / t.kernel,
      };
      rows.push(row);
    }
  }
}

if (values.json) {
  console.log(JSON.stringify({ mib, reps, threads, rows }, null, 2));
} else {
  console.log(
    `${mib} MiB f32 (${n} elements), buckets of 1024, f32 metadata, ${threads} thread(s), median of ${reps}`,
  );
  console.log("| op | bits | rounding | kernel GB/s | memcpy GB/s | ratio |");
  console.log("|---|---|---|---|---|---|");
  for (const r of rows) {
    console.log(
      `| ${r.op} | ${r.bits} | ${r.rounding} | ${r.kernelGBs.toFixed(2)} | ${
        r.memcpyGBs.toFixed(2)
      } | ${r.ratio.toFixed(2)} |`,
    );
  }
}
