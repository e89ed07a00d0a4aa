// The router of the routed-layer benchmarks (CPU and GPU): random directions to d/32 dimensions
// standing in for the PCA, whose 8192-wide eigendecomposition is out of reach in TypeScript, then
// k centroids fitted by k-means on the benchmark's own tokens, as Sparse Expansion fits them.
import type { Matrix } from "../lib/core/matrix.ts";
import type { Rng } from "../lib/core/rng.ts";
import { fitCentroids, projectTokens, type Router } from "../lib/sparse/router.ts";

/** A router for the tokens `x` (tokens × d) with `k` clusters. */
export function benchRouter(x: Matrix, k: number, rng: Rng): Router {
  const d = x.cols, r = d / 32;
  const base: Router = {
    mean: new Float64Array(d),
    components: Float64Array.from({ length: r * d }, () => rng.normal() / Math.sqrt(d)),
    centroids: new Float64Array(k * r),
    dim: d,
    rank: r,
    k,
  };
  return {
    ...base,
    centroids: fitCentroids(projectTokens(base, x), r, { k, restarts: 1, seed: 5 }),
  };
}

/** "smallest…largest tokens per expert" for the clusters `labels` of k experts. */
export function splitText(labels: Int32Array, k: number): string {
  const count = new Array<number>(k).fill(0);
  for (const l of labels) count[l]!++;
  return `${Math.min(...count)}…${Math.max(...count)} tokens per expert`;
}
