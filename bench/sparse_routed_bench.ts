// The routed expert layer against the dense layer on the CPU at Llama-2-70B MLP shapes
// (`deno task bench`): M = 4096 tokens, 16 experts, up/gate 8192 → 28672 and down 28672 → 8192,
// random weights at 50 % and 90 % unstructured sparsity and at 2:4, each expert stored in the form
// that `compressWeight` picks (bitmap at 50 %, packed N:M at 2:4, block-sparse at 90 %). The
// dense baseline is the cpu matmul (OpenBLAS sgemm at this size). The router (random directions to
// d/32 dimensions standing in for the PCA, whose 8192-wide eigendecomposition is out of reach in
// TypeScript, then 16 centroids fitted by k-means on the bench's own tokens, as Sparse Expansion
// fits them) and the gather/scatter are inside the timing; each case's name says how the tokens
// split. To fit in memory the 16
// experts share one compressed weight: each is still a separate pass over 0.7–1.4 GB, far beyond
// any cache, so the time equals 16 distinct experts'.
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { prunedCopy } from "./_prune.ts";
import { compressWeight, sparseWeightBytes } from "../lib/kernels/sparse_weight.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { fitCentroids, project, route, type Router } from "../lib/sparse/router.ts";
import { SparseExpertLinear } from "../lib/sparse/sparse_expert.ts";

const M = 4096, E = 16;
const rng = new Rng(5);

function router(x: Matrix): Router {
  const d = x.cols, r = d / 32;
  const base: Router = {
    mean: new Float64Array(d),
    components: Float64Array.from({ length: r * d }, () => rng.normal() / Math.sqrt(d)),
    centroids: new Float64Array(E * r),
    dim: d,
    rank: r,
    k: E,
  };
  return { ...base, centroids: fitCentroids(project(base, x), r, { k: E, restarts: 1, seed: 5 }) };
}

/** "smallest…largest tokens per expert" under `r`. */
function split(r: Router, x: Matrix): string {
  const count = new Array<number>(E).fill(0);
  for (const l of route(r, x)) count[l]!++;
  return `${Math.min(...count)}…${Math.max(...count)} tokens per expert`;
}

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
  const r = router(x);
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
      } of dense bytes per expert; ${split(r, x)})`,
      group,
      n: 1,
      warmup: 0,
      fn: () => void layer.forward(x),
    });
  }
}
