// Stored forms of a pruned expert, measured on one per-expert product of the routed 70B layer
// (`deno task bench`): Y = X·Wᵀ with X 256 × 8192 (the 4096 tokens split among 16 experts) and
// W 28672 × 8192, random weights at 50 %, 2:4, 4:8, 65 %, 70 % and 90 %. Each form's C kernel against the
// dense cpu matmul (OpenBLAS sgemm) on the same X and W; the stored bytes are in each name.
// CSR is left out at 50–70 % (about 4 s per call, bench/RESULTS.md). Each pattern also times one
// token (decoding), where the bytes read decide.
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { prunedCopy } from "./_prune.ts";
import {
  blockSparseBytes,
  blockSparseFromDense,
  blockSparseMatmulT,
  csrBytes,
  csrFromDense,
  csrMatmulT,
} from "../lib/kernels/spmm.ts";
import { bitmapBytes, bitmapFromDense, bitmapMatmulT } from "../lib/kernels/spmm_bitmap.ts";
import { nmBytes, nmFromDense, nmMatmulT } from "../lib/kernels/spmm_nm.ts";
import { matmul } from "../lib/kernels/matmul.ts";

const M = 256, K = 8192, N = 28672, DENSE_BYTES = 4 * K * N;
const rng = new Rng(11);
const x = new Matrix(M, K, rng.normalArray(M * K));
const w = new Matrix(N, K, rng.normalArray(N * K));
const share = (bytes: number) => `${(bytes / DENSE_BYTES).toFixed(3)} of dense bytes`;

const opts = { backend: "cpu" } as const;
for (const pattern of ["50%", "2:4", "4:8", "65%", "70%", "90%"]) {
  const group = `${M}×${K}·(${N}×${K})ᵀ at ${pattern}`;
  Deno.bench({
    name: `dense cpu matmul (${(2 * M * K * N / 1e9).toFixed(0)} GFLOP)`,
    group,
    baseline: true,
    n: 3,
    warmup: 1,
    fn: () => void matmul(x, w, { transB: true, ...opts }),
  });
  let pw: Matrix | undefined = prunedCopy(w, pattern, rng);
  const bitmap = bitmapFromDense(pw), bsc = blockSparseFromDense(pw);
  const nmPattern = pattern.match(/^(\d+):(\d+)$/);
  const nm = nmPattern ? nmFromDense(pw, Number(nmPattern[1]), Number(nmPattern[2])) : undefined;
  const csr = pattern === "90%" ? csrFromDense(pw) : undefined;
  pw = undefined;
  const bench = (name: string, fn: () => unknown) =>
    Deno.bench({ name, group, n: 3, warmup: 1, fn: () => void fn() });
  bench(
    `bitmap, panel + GEMM (${share(bitmapBytes(bitmap))})`,
    () => bitmapMatmulT(x, bitmap, opts),
  );
  bench(`block-sparse (${share(blockSparseBytes(bsc))})`, () => blockSparseMatmulT(x, bsc, opts));
  if (nm) {
    bench(
      `packed ${pattern}, kept entries only (${share(nmBytes(nm))})`,
      () => nmMatmulT(x, nm, opts),
    );
  }
  if (csr) bench(`CSR (${share(csrBytes(csr))})`, () => csrMatmulT(x, csr, opts));
  // decoding: one token (memory-bound: the bytes read are what counts)
  const x1 = new Matrix(1, K, x.data.subarray(0, K));
  const decode = `1×${K}·(${N}×${K})ᵀ at ${pattern} (decoding one token)`;
  Deno.bench({
    name: "dense cpu matmul",
    group: decode,
    baseline: true,
    n: 10,
    warmup: 2,
    fn: () => void matmul(x1, w, { transB: true, ...opts }),
  });
  const one = (name: string, fn: () => unknown) =>
    Deno.bench({ name, group: decode, n: 10, warmup: 2, fn: () => void fn() });
  one("bitmap (bits and values read once)", () => bitmapMatmulT(x1, bitmap, opts));
  one("block-sparse", () => blockSparseMatmulT(x1, bsc, opts));
  if (nm) one(`packed ${pattern}`, () => nmMatmulT(x1, nm, opts));
}
