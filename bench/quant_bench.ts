// GPTQ weight-quantized products (`deno bench bench/quant_bench.ts`): W4A16 (4-bit levels as
// nibbles, groups of 128 columns in order) against the f32 product of the same shape, Y = X·Wᵀ on
// the cpu backend, at Llama-7B's layer shapes 4096 × 4096 (attention) and 11008 × 4096 (MLP up and
// gate), with 1, 4 and 16 tokens (decoding: the bytes read decide; the W4 weight has 0.14 of the
// f32 weight's bytes with its scales and zero points) and 256 and 2048 tokens (prefill: the W4
// weight is dequantized into the GEMM's panels, so the FLOPs decide). The f32 baseline is
// `matmul(x, w, { transB: true })`: OpenBLAS where it is installed (large products), else the own
// GEMM (which one is printed). Each call reads its weight from memory (calls rotate among copies
// larger than the L3 together). A table of times and speed-ups, measured from the same runs, is
// printed at the end.
import { cpu } from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { type PackedQuantWeight, quantMatmul } from "../lib/kernels/quant_matmul.ts";

const IN = 4096, GROUP = 128, TOKENS = [1, 4, 16, 256, 2048];
const rng = new Rng(5);
const opts = { backend: "cpu" } as const;

const info = new Uint8Array(512);
cpu().lk_info(info, info.length);
console.log(`cpu library: ${new TextDecoder().decode(info.subarray(0, info.indexOf(0)))}`);

/** A random W4 weight: levels 0..15, two a byte, scales and zero points per group of 128. */
function w4(rows: number, cols: number): PackedQuantWeight {
  const groups = cols / GROUP, packed = new Uint8Array(rows * cols / 2);
  for (let i = 0; i < packed.length; i++) packed[i] = Math.floor(rng.uniform() * 256);
  return {
    rows,
    cols,
    nibble: true,
    packed,
    scales: Float32Array.from({ length: rows * groups }, () => 0.002 + 0.01 * rng.uniform()),
    zeros: Float32Array.from({ length: rows * groups }, () => Math.floor(rng.uniform() * 16)),
    gIdx: Int32Array.from({ length: cols }, (_, k) => Math.floor(k / GROUP)),
    groups,
  };
}

const times = new Map<string, number[]>();
function timed(key: string, fn: () => unknown): () => void {
  return () => {
    const t = performance.now();
    fn();
    const list = times.get(key) ?? [];
    list.push(performance.now() - t);
    times.set(key, list);
  };
}
/** Iterations: every call of the two largest products takes about a second on two cores. */
function reps(tokens: number): { n: number; warmup: number } | Record<string, never> {
  return tokens >= 2048 ? { n: 2, warmup: 1 } : tokens >= 256 ? { n: 5, warmup: 1 } : {};
}

/** Copies of a weight that together pass ROTATE bytes: each call takes the next one. */
const ROTATE = 96e6;
function copies<T>(first: T, bytes: number, copy: (w: T) => T): T[] {
  const list = [first];
  while (list.length * bytes < ROTATE) list.push(copy(first));
  return list;
}

for (const out of [4096, 11008]) {
  const wq = w4(out, IN), qBytes = wq.packed.length + 8 * wq.scales.length;
  // a model's forward pass reads every layer's weight from memory, not from the 32 MB L3 that
  // holds one W4 weight of these shapes: calls rotate among copies of more than 96 MB in all
  const fs = copies(
    new Matrix(out, IN, rng.normalArray(out * IN)),
    4 * out * IN,
    (w) => new Matrix(w.rows, w.cols, w.data.slice()),
  );
  const qs = copies(wq, qBytes, (w) => ({
    ...w,
    packed: w.packed.slice(),
    scales: w.scales.slice(),
    zeros: w.zeros.slice(),
  }));
  let fi = 0, qi = 0;
  for (const tokens of TOKENS) {
    const x = new Matrix(tokens, IN, rng.normalArray(tokens * IN));
    const group = `${tokens} × ${IN} · (${out} × ${IN})ᵀ`, key = `${out}×${IN} | ${tokens}`;
    Deno.bench({
      name: `f32 (${(4 * out * IN / 1e6).toFixed(0)} MB)`,
      group,
      baseline: true,
      ...reps(tokens),
      fn: timed(`${key} | f32`, () => matmul(x, fs[fi++ % fs.length]!, { transB: true, ...opts })),
    });
    Deno.bench({
      name: `W4A16, groups of ${GROUP} (${(qBytes / 1e6).toFixed(1)} MB)`,
      group,
      ...reps(tokens),
      fn: timed(`${key} | w4`, () => quantMatmul(x, qs[qi++ % qs.length]!, opts)),
    });
  }
}

globalThis.addEventListener("unload", () => {
  // over every call (warm-up calls too: Deno.bench runs them through fn): the median is what a
  // caller sees, the best call the kernel on a quiet machine (on 2 cores another process or a GC
  // thread can take one for a while)
  const stat = (k: string) => {
    const l = [...(times.get(k) ?? [NaN])].sort((a, b) => a - b);
    return { mean: l[l.length >> 1]!, best: l[0]! };
  };
  console.log("\nW4A16 against f32 (ms per call, median / best; speed-up of W4 from the medians)");
  console.log("  shape          tokens      f32 median    best     W4 median    best   speed-up");
  for (const out of [4096, 11008]) {
    for (const tokens of TOKENS) {
      const key = `${out}×${IN} | ${tokens}`, f = stat(`${key} | f32`), q = stat(`${key} | w4`);
      const ms = (v: number) => v.toFixed(2).padStart(9);
      console.log(
        `  ${`${out}×${IN}`.padEnd(14)} ${String(tokens).padStart(6)}   ${ms(f.mean)} ${
          ms(f.best)
        }     ${ms(q.mean)} ${ms(q.best)}   ${(f.mean / q.mean).toFixed(2).padStart(6)}×`,
      );
    }
  }
});
