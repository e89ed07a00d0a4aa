// A random QUIK weight for the benchmarks (bench/quik_bench.ts, bench/gpu/gpu_check.ts): uniform
// levels, small row scales, 1/16 of the inputs as outliers spread evenly, normal outlier weights.
import type { Rng } from "../lib/core/rng.ts";
import { quikLevelSums, quikRowBytes, type QuikWeight } from "../lib/kernels/quik_matmul.ts";
import { quikOutlierCount } from "../lib/quant/quik.ts";

export function randomQuikWeight(rng: Rng, out: number, inF: number, bits: number): QuikWeight {
  const count = quikOutlierCount(inF), kq = inF - count, rb = quikRowBytes(kq, bits);
  const levels = new Uint8Array(out * rb);
  for (let i = 0; i < levels.length; i++) levels[i] = Math.floor(rng.uniform() * 256);
  return {
    rows: out,
    cols: inF,
    bits,
    outliers: Int32Array.from({ length: count }, (_, j) => Math.floor((j * inF) / count)),
    levels,
    scales: Float32Array.from({ length: out }, () => 0.001 + 0.01 * rng.uniform()),
    sums: quikLevelSums(levels, out, kq, bits),
    outlierWeight: Float32Array.from(rng.normalArray(out * count)),
  };
}
