import { Matrix } from "./lib/core/matrix.ts";
import { Rng } from "./lib/core/rng.ts";
import { bitmapFromDense, bitmapMatmulT } from "./lib/kernels/spmm_bitmap.ts";
import { blockSparseFromDense, blockSparseMatmulT } from "./lib/kernels/spmm.ts";
import { matmul } from "./lib/kernels/matmul.ts";
const K = 8192, N = 28672, rng = new Rng(3);
const opts = { backend: "cpu" } as const;
const t = (name: string, f: () => unknown) => {
  f();
  const ts = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    f();
    ts.push(performance.now() - t0);
  }
  ts.sort((a, b) => a - b);
  console.log(name, ts[2]!.toFixed(1), "ms");
};
const w = new Matrix(N, K, rng.normalArray(N * K));
for (const s of [0.5, 0.9]) {
  const pw = new Matrix(N, K, w.data.slice());
  for (let i = 0; i < pw.data.length; i++) if (rng.uniform() < s) pw.data[i] = 0;
  const b = bitmapFromDense(pw), c = blockSparseFromDense(pw);
  for (const m of [1, 4]) {
    const x = new Matrix(m, K, rng.normalArray(m * K));
    t(`s=${s} m=${m} dense`, () => matmul(x, pw, { transB: true, ...opts }));
    t(`s=${s} m=${m} bitmap`, () => bitmapMatmulT(x, b, opts));
    t(`s=${s} m=${m} bsc`, () => blockSparseMatmulT(x, c, opts));
  }
}
