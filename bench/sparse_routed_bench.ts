// The routed expert layer against the dense layer on the CPU at Llama-2-70B MLP shapes
// (`deno task bench`): M = 4096 tokens, 16 experts, up/gate 8192 → 28672 and down 28672 → 8192,
// random weights at 50 % and 90 % unstructured sparsity and at 2:4, each expert stored in the form
// that `compressWeight` picks (bitmap at 50 %, packed N:M at 2:4, block-sparse at 90 %). The
// dense baseline is the cpu matmul (OpenBLAS sgemm at this size). The router (bench/_router.ts:
// random directions to d/32 dimensions, centroids fitted by k-means on these tokens) and the
// gather/scatter are inside the timing; each case's name says how the tokens split. To fit in
// memory the 16 experts share one compressed weight: each is still a separate pass over 0.7–1.4
// GB, far beyond any cache, so the time equals 16 distinct experts'.
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { prunedCopy } from "./_prune.ts";
import { compressWeight, sparseWeightBytes } from "../lib/kernels/sparse_weight.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { routeTokens } from "../lib/sparse/router.ts";
import { benchRouter, splitText } from "./_router.ts";
import { SparseExpertLinear } from "../lib/sparse/sparse_expert.ts";

const M = 4096, E = 16;
const rng = new Rng(5);

for (
  const [name, din, dout] of [["up 8192→28672", 8192, 28672], [
    "down 28672→8192",
    28672,
    8192,
  ]] as const
) {
  const x = new Matrix(M, din, rng.normalArray(M * din));
  const w = new Matrix(dout, din, rng.normalArray(dout * din));
  const group = `routed layer ${name}, M=${M}, ${E} experts`;
  Deno.bench({
    name: `dense cpu matmul (${(2 * M * din * dout / 1e12).toFixed(2)} TFLOP)`,
    group,
    baseline: true,
    n: 1,
    warmup: 0,
    fn: () => void matmul(x, w, { transB: true, backend: "cpu" }),
  });
  const r = benchRouter(x, E, rng);
  for (const pattern of ["50%", "2:4", "90%"] as const) {
    const compressed = compressWeight(prunedCopy(w, pattern, rng)); // by density, as a saved model loads
    const layer = new SparseExpertLinear(
      r,
      Array.from({ length: E }, () => compressed),
      "cpu",
    );
    Deno.bench({
      name: `routed ${compressed.format} ${pattern} (${
        (sparseWeightBytes(compressed) / (4 * din * dout)).toFixed(2)
      } of dense bytes per expert; ${splitText(routeTokens(r, x), E)})`,
      group,
      n: 1,
      warmup: 0,
      fn: () => void layer.forward(x),
    });
  }
}
