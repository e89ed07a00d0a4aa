/**
 * The router of Sparse Expansion: PCA of a layer's inputs to a few dimensions, then k-means
 * (k-means++ initialisation, several seeded restarts); each token goes to its nearest centroid
 * (hard top-1).
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix as MlMatrix } from "npm:ml-matrix@6.15.1";
import { matmul } from "../kernels/matmul.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix, type MatrixData } from "../core/matrix.ts";
import { Rng } from "../core/rng.ts";

/** A fitted router: centre, projection and centroids. */
export interface Router {
  /** Input mean (d). */
  mean: Float64Array;
  /** Principal directions, r × d (row i is component i). */
  components: Float64Array;
  /** Centroids in PCA coordinates, k × r. */
  centroids: Float64Array;
  /** Input width d. */
  dim: number;
  /** PCA width r. */
  rank: number;
  /** Number of clusters k. */
  k: number;
}

/** Options of {@linkcode fitRouter}. */
export interface RouterOptions {
  /** Clusters (experts). */
  k: number;
  /** PCA width (default: d/32, at least 1). */
  rank?: number;
  /** k-means restarts, the best inertia kept (default 10). */
  restarts?: number;
  /** Lloyd iterations per restart (default 100). */
  maxIter?: number;
  /** Seed (default 0). */
  seed?: number;
}

const f32Components = new WeakMap<Router, { c: Matrix; meanProj: Float64Array }>();

/**
 * The input mean in PCA coordinates, mean·Cᵀ (r values, f64): what `(x − mean)·Cᵀ` subtracts
 * when computed as `x·Cᵀ − mean·Cᵀ`.
 *
 * @example
 * ```ts
 * import { projectedMean } from "./router.ts";
 * const router = { mean: Float64Array.of(1, 2), components: Float64Array.of(0, 1),
 *   centroids: Float64Array.of(0), dim: 2, rank: 1, k: 1 };
 * if (projectedMean(router)[0] !== 2) throw new Error("mean·Cᵀ");
 * ```
 */
export function projectedMean(router: Router): Float64Array {
  const { dim: d, rank: r, mean, components } = router;
  const out = new Float64Array(r);
  for (let i = 0; i < r; i++) {
    let sum = 0;
    for (let j = 0; j < d; j++) sum += mean[j]! * components[i * d + j]!;
    out[i] = sum;
  }
  return out;
}

/**
 * Projects rows of `x` (tokens × d) to PCA coordinates (tokens × r, f64). For model widths
 * d ≥ 4096 and f32 inputs the product runs through the matmul kernel in f32 (X·Cᵀ − mean·Cᵀ);
 * below that, exactly in f64 (the bundled model's widths keep their exact routing).
 */
export function projectTokens(router: Router, x: Matrix<MatrixData>): Float64Array {
  const { dim: d, rank: r, mean, components } = router;
  if (x.cols !== d) throw new ShapeError(`The router expects rows of ${d}, got ${x.cols}`);
  if (d >= 4096 && x.data instanceof Float32Array && x.rows > 0) {
    let f = f32Components.get(router);
    if (!f) {
      f = { c: new Matrix(r, d, Float32Array.from(components)), meanProj: projectedMean(router) };
      f32Components.set(router, f);
    }
    const z = matmul(x as Matrix, f.c, { transB: true });
    const out = new Float64Array(x.rows * r);
    for (let t = 0; t < x.rows; t++) {
      for (let i = 0; i < r; i++) out[t * r + i] = z.data[t * r + i]! - f.meanProj[i]!;
    }
    return out;
  }
  const out = new Float64Array(x.rows * r);
  for (let t = 0; t < x.rows; t++) {
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let j = 0; j < d; j++) {
        s += ((x.data[t * d + j] as number) - (mean[j] as number)) *
          (components[i * d + j] as number);
      }
      out[t * r + i] = s;
    }
  }
  return out;
}

function nearest(
  z: Float64Array,
  t: number,
  centroids: Float64Array,
  k: number,
  r: number,
): [number, number] {
  let best = 0, bestD = Infinity;
  for (let c = 0; c < k; c++) {
    let dist = 0;
    for (let i = 0; i < r; i++) {
      dist += ((z[t * r + i] as number) - (centroids[c * r + i] as number)) ** 2;
    }
    if (dist < bestD) {
      bestD = dist;
      best = c;
    }
  }
  return [best, bestD];
}

const scoreCache = new WeakMap<Router, RouterScores>();

/** A router as k linear scores (see {@linkcode routerScores}). */
export interface RouterScores {
  /** Score weights, k × d: row c is Cᵀz_c. */
  w: Matrix;
  /** Score offsets (k): −(Cᵀz_c)·μ − ‖z_c‖²/2. */
  bias: Float64Array;
}

/**
 * The nearest centroid as the largest of k linear scores: with z = C(x − μ),
 * argmin_c ‖z − z_c‖² = argmax_c (Cᵀz_c)·x − (Cᵀz_c)·μ − ‖z_c‖²/2, so one k × d product replaces
 * the r × d projection and the distances (the cheaper route when k < r). Computed once per router
 * in f64; the weights are stored f32.
 *
 * @example
 * ```ts
 * import { routerScores } from "./router.ts";
 * // 2-d inputs, one PCA direction (the first axis), centroids at −1 and +2
 * const router = { mean: Float64Array.of(0, 0), components: Float64Array.of(1, 0),
 *   centroids: Float64Array.of(-1, 2), dim: 2, rank: 1, k: 2 };
 * const { w, bias } = routerScores(router);
 * // x = (0.4, 5) projects to 0.4, below the midpoint 0.5 of −1 and 2: cluster 0 scores higher
 * const s = [0, 1].map((c) => w.data[c * 2]! * 0.4 + w.data[c * 2 + 1]! * 5 + bias[c]!);
 * if (!(s[0]! > s[1]!)) throw new Error("0.4 is nearer −1 than 2");
 * ```
 */
export function routerScores(router: Router): RouterScores {
  let f = scoreCache.get(router);
  if (f) return f;
  const { dim: d, rank: r, k, components, centroids } = router;
  const w64 = new Float64Array(k * d), bias = new Float64Array(k), pm = projectedMean(router);
  for (let c = 0; c < k; c++) {
    const wc = w64.subarray(c * d, (c + 1) * d);
    let b = 0; // (Cᵀz_c)·μ + ‖z_c‖²/2 = z_c·(mean·Cᵀ) + ‖z_c‖²/2
    for (let i = 0; i < r; i++) {
      const zi = centroids[c * r + i]!, ci = components.subarray(i * d, (i + 1) * d);
      b += zi * (pm[i]! + zi / 2);
      for (let j = 0; j < d; j++) wc[j]! += zi * ci[j]!;
    }
    bias[c] = -b;
  }
  f = { w: new Matrix(k, d, Float32Array.from(w64)), bias };
  scoreCache.set(router, f);
  return f;
}

/**
 * Cluster of each row of `x` (hard top-1 routing), ties to the lower cluster. Where
 * {@linkcode projectTokens} runs in f32 (d ≥ 4096, f32 inputs) and there are fewer clusters than PCA
 * dimensions, the same rule is evaluated as k linear scores (2·d·k multiply-adds per token instead
 * of 2·d·r: 56× fewer at Llama-2-70B's down projection, d = 28672, r = 896, k = 16). FLOPs are
 * still counted as the paper counts the router (`mlpFlopsPerToken`): projection and distances.
 */
export function routeTokens(router: Router, x: Matrix<MatrixData>): Int32Array {
  const { dim: d, rank: r, k } = router;
  if (x.cols !== d) throw new ShapeError(`The router expects rows of ${d}, got ${x.cols}`);
  if (d >= 4096 && x.data instanceof Float32Array && x.rows > 0 && k < r) {
    const { w, bias } = routerScores(router), s = matmul(x as Matrix, w, { transB: true }).data;
    const out = new Int32Array(x.rows);
    for (let t = 0; t < x.rows; t++) {
      let best = 0, top = -Infinity;
      for (let c = 0; c < k; c++) {
        const v = s[t * k + c]! + bias[c]!;
        if (v > top) top = v, best = c;
      }
      out[t] = best;
    }
    return out;
  }
  const z = projectTokens(router, x), out = new Int32Array(x.rows);
  for (let t = 0; t < x.rows; t++) {
    out[t] = nearest(z, t, router.centroids, router.k, router.rank)[0];
  }
  return out;
}

/**
 * Fits PCA (top `rank` eigenvectors of the input covariance, ml-matrix's symmetric EVD) and
 * k-means on the projected tokens.
 *
 * @example
 * ```ts
 * import { fitRouter, routeTokens } from "./router.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // two well-separated blobs along the first axis
 * const x = Matrix.from([[-5, 0.1], [-5.2, 0], [-4.9, -0.1], [5, 0], [5.1, 0.2], [4.8, -0.1]]);
 * const r = fitRouter(x, { k: 2, rank: 1 });
 * const c = routeTokens(r, x);
 * if (c[0] !== c[1] || c[0] === c[3] || c[3] !== c[5]) throw new Error("wrong clusters");
 * ```
 */
export function fitRouter(x: Matrix, options: RouterOptions): Router {
  const d = x.cols, n = x.rows, { k } = options;
  const r = options.rank ?? Math.max(1, Math.floor(d / 32));
  checkClusters(k, n);
  if (!Number.isInteger(r) || r < 1 || r > d) {
    throw new RangeError(`PCA rank ${r} is outside [1, ${d}]`);
  }
  const mean = new Float64Array(d);
  for (let t = 0; t < n; t++) for (let j = 0; j < d; j++) mean[j]! += x.data[t * d + j] as number;
  for (let j = 0; j < d; j++) mean[j]! /= n;
  const cov = new Float64Array(d * d);
  const row = new Float64Array(d);
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < d; j++) row[j] = (x.data[t * d + j] as number) - (mean[j] as number);
    for (let a = 0; a < d; a++) {
      const ra = row[a] as number;
      if (ra === 0) continue;
      for (let b = 0; b <= a; b++) cov[a * d + b]! += ra * (row[b] as number);
    }
  }
  const m = new MlMatrix(d, d);
  for (let a = 0; a < d; a++) {
    for (let b = 0; b <= a; b++) {
      m.set(a, b, cov[a * d + b]! / n), m.set(b, a, cov[a * d + b]! / n);
    }
  }
  const evd = new EigenvalueDecomposition(m, { assumeSymmetric: true });
  const vec = evd.eigenvectorMatrix; // columns, eigenvalues ascending
  const components = new Float64Array(r * d);
  for (let i = 0; i < r; i++) {
    for (let j = 0; j < d; j++) components[i * d + j] = vec.get(j, d - 1 - i);
  }
  const router: Router = {
    mean,
    components,
    centroids: new Float64Array(k * r),
    dim: d,
    rank: r,
    k,
  };
  const z = projectTokens(router, x);
  router.centroids = kmeans(z, n, r, k, options);
  return router;
}

/**
 * The centroids `fitRouter` fits after its PCA: k-means (k-means++ initialisation, seeded
 * restarts, the best inertia kept) of tokens already in PCA coordinates, `z` n × `rank` row-major.
 * Returns the k × rank centroids.
 *
 * @example
 * ```ts
 * import { fitCentroids } from "./router.ts";
 * const z = Float64Array.of(-5, -5.1, -4.9, 5, 5.2, 4.8); // six tokens, rank 1
 * const c = fitCentroids(z, 1, { k: 2 });
 * if (Math.abs(Math.abs(c[0]! - c[1]!) - 10) > 0.1) throw new Error("wrong centroids");
 * ```
 */
export function fitCentroids(
  z: Float64Array,
  rank: number,
  options: Omit<RouterOptions, "rank">,
): Float64Array {
  const { k } = options;
  if (!Number.isInteger(rank) || rank < 1 || z.length % rank !== 0) {
    throw new ShapeError(
      `Cannot read ${z.length} coordinates as tokens of rank ${rank}: expected a multiple of it`,
    );
  }
  const n = z.length / rank;
  checkClusters(k, n);
  return kmeans(z, n, rank, k, { ...options, rank });
}

/**
 * Throws unless `k` clusters can be fitted to `n` tokens: k a positive integer no larger than n.
 *
 * @example
 * ```ts
 * import { checkClusters } from "./router.ts";
 * checkClusters(4, 100); // fine
 * let msg = "";
 * try { checkClusters(16, 8); } catch (e) { msg = (e as Error).message; }
 * if (!msg.includes("more experts than tokens")) throw new Error(msg);
 * ```
 */
export function checkClusters(k: number, n: number): void {
  if (!Number.isInteger(k) || k < 1) {
    throw new RangeError(`Cannot fit ${k} clusters: expected a positive integer`);
  }
  if (k > n) {
    throw new RangeError(`Cannot fit ${k} clusters to ${n} tokens: more experts than tokens`);
  }
}

function kmeans(z: Float64Array, n: number, r: number, k: number, o: RouterOptions): Float64Array {
  const rng = new Rng(o.seed ?? 0), restarts = o.restarts ?? 10, maxIter = o.maxIter ?? 100;
  let best = new Float64Array(k * r), bestInertia = Infinity;
  const assign = new Int32Array(n), d2 = new Float64Array(n);
  for (let rep = 0; rep < restarts; rep++) {
    // k-means++ initialisation
    const c = new Float64Array(k * r);
    const first = rng.int(n);
    c.set(z.subarray(first * r, first * r + r), 0);
    for (let j = 1; j < k; j++) {
      let total = 0;
      for (let t = 0; t < n; t++) total += d2[t] = nearest(z, t, c, j, r)[1];
      let u = rng.uniform() * total, pick = n - 1;
      for (let t = 0; t < n; t++) {
        u -= d2[t] as number;
        if (u < 0) {
          pick = t;
          break;
        }
      }
      c.set(z.subarray(pick * r, pick * r + r), j * r);
    }
    let inertia = Infinity;
    for (let it = 0; it < maxIter; it++) {
      let changed = 0;
      inertia = 0;
      for (let t = 0; t < n; t++) {
        const [a, dist] = nearest(z, t, c, k, r);
        if (a !== assign[t] || it === 0) changed++;
        assign[t] = a;
        inertia += dist;
      }
      const sum = new Float64Array(k * r), count = new Float64Array(k);
      for (let t = 0; t < n; t++) {
        const a = assign[t] as number;
        count[a]!++;
        for (let i = 0; i < r; i++) sum[a * r + i]! += z[t * r + i] as number;
      }
      for (let j = 0; j < k; j++) {
        if (count[j] === 0) continue; // an empty cluster keeps its centroid
        for (let i = 0; i < r; i++) {
          c[j * r + i] = (sum[j * r + i] as number) / (count[j] as number);
        }
      }
      if (changed === 0) break;
    }
    if (inertia < bestInertia) {
      bestInertia = inertia;
      best = c;
    }
  }
  return best;
}

/**
 * A routed layer's forward: each row of `x` goes to its cluster, each cluster's rows are gathered
 * into one matrix, `expert(c, rows)` computes their outputs (rows × outFeatures), and the results
 * are scattered back into place.
 */
export function routedForward(
  router: Router,
  x: Matrix,
  outFeatures: number,
  expert: (cluster: number, rows: Matrix) => Matrix,
): Matrix {
  const labels = routeTokens(router, x);
  // one cluster for every row (always so for one token while decoding): no gather or scatter
  if (x.rows > 0 && labels.every((l) => l === labels[0])) return expert(labels[0]!, x);
  const out = Matrix.zeros(x.rows, outFeatures), d = x.cols, o = outFeatures;
  for (let c = 0; c < router.k; c++) {
    const rows: number[] = [];
    labels.forEach((l, t) => l === c && rows.push(t));
    if (rows.length === 0) continue;
    const g = Matrix.zeros(rows.length, d);
    rows.forEach((t, i) => g.data.set(x.data.subarray(t * d, (t + 1) * d), i * d));
    const y = expert(c, g);
    rows.forEach((t, i) => out.data.set(y.data.subarray(i * o, (i + 1) * o), t * o));
  }
  return out;
}
