/**
 * Mass-mean probes (the authors' `MassMeanProbe` and `UnsupervisedMassMeanProbe`, evaluate.py).
 *
 * - MMP: for each pair take the member that matches its label as "true" (h_pos if y = 1, h_neg if
 *   y = 0) and the other as "false"; θ = mean(true) − mean(false).
 * - MMP-iid: θ_iid = pinv(Σ)·θ, Σ = `torch.cov` (n − 1 denominator) of the 2n class-centred states
 *   [true − mean(true); false − mean(false)], pinv as `torch.linalg.pinv(Σ, hermitian=True,
 *   atol=1e-3)`: eigenvalues with |λ| ≤ 1e-3 (absolute) are dropped.
 * - Unsupervised MMP: cluster δ = h_pos − h_neg into 2 groups (agglomerative, cosine distance,
 *   complete linkage, scikit-learn's labels); θ = (mean(δ of label 1) − mean(δ of label 0)) / 2.
 *
 * @module
 */
import { EigenvalueDecomposition, Matrix as MlMatrix } from "npm:ml-matrix@6.15.1";
import { _checkLabels, _checkOption, _checkPairs } from "./_check.ts";
import { _sub } from "./_math.ts";
import { agglomerativeClustering, type Linkage } from "./cluster.ts";
import type { ContrastPairs } from "./pairs.ts";

/** Options of {@linkcode massMeanProbe}. */
export interface MassMeanOptions {
  /** Tilt by the pseudo-inverse of the class-centred covariance (default false, as the authors ran it). */
  iid?: boolean;
  /** Absolute eigenvalue cut-off of the pseudo-inverse (default 1e-3, the authors' `atol`). */
  atol?: number;
}

/**
 * The supervised mass-mean direction θ = mean(true states) − mean(false states), or its iid
 * variant pinv(Σ)·θ (see the module doc). The iid variant diagonalises the smaller of the d×d
 * covariance and the 2n×2n Gram matrix of the centred states (same non-zero spectrum), with
 * ml-matrix's symmetric EVD: fine for d or 2n up to about a thousand.
 *
 * @example
 * ```ts
 * import { massMeanProbe } from "./mass_mean.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const pairs = contrastPairs([[0, 1], [4, 0]], [[2, 1], [0, 2]]);
 * // pair 0 is true (true state = pos), pair 1 is false (true state = neg)
 * assertEquals(Array.from(massMeanProbe(pairs, [1, 0])), [(2 + 4) / 2 - (0 + 0) / 2, 0.5 - 1.5]);
 * ```
 */
export function massMeanProbe(
  pairs: ContrastPairs,
  labels: ArrayLike<number>,
  options: MassMeanOptions = {},
): Float64Array {
  const fn = "massMeanProbe";
  _checkPairs(fn, "pairs", pairs, options.iid ? 2 : 1);
  _checkLabels(fn, "labels", labels, pairs.n);
  const atol = options.atol ?? 1e-3;
  _checkOption(fn, "atol", atol, false);
  const { n, d } = pairs;
  const { trueRows, falseRows } = splitByLabel(pairs, labels);
  const muT = new Float64Array(d), muF = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) muT[j]! += trueRows[i * d + j]!, muF[j]! += falseRows[i * d + j]!;
  }
  const theta = new Float64Array(d);
  for (let j = 0; j < d; j++) muT[j]! /= n, muF[j]! /= n, theta[j] = muT[j]! - muF[j]!;
  if (!options.iid) return theta;
  // A = [true − μ_T; false − μ_F], then centred again by column as torch.cov does
  const N = 2 * n, a = new Float64Array(N * d), colMean = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) {
      a[i * d + j] = trueRows[i * d + j]! - muT[j]!;
      a[(n + i) * d + j] = falseRows[i * d + j]! - muF[j]!;
    }
  }
  for (let k = 0; k < N * d; k++) colMean[k % d]! += a[k]!;
  for (let j = 0; j < d; j++) colMean[j]! /= N;
  for (let k = 0; k < N * d; k++) a[k]! -= colMean[k % d]!;
  return pinvCovTimes(a, N, d, theta, atol);
}

/** The true and false member of every pair as two n×d arrays. */
function splitByLabel(
  pairs: ContrastPairs,
  labels: ArrayLike<number>,
): { trueRows: Float64Array; falseRows: Float64Array } {
  const { n, d, neg, pos } = pairs;
  const trueRows = new Float64Array(n * d), falseRows = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    const t = labels[i] === 1 ? pos : neg, f = labels[i] === 1 ? neg : pos;
    trueRows.set(t.subarray(i * d, (i + 1) * d), i * d);
    falseRows.set(f.subarray(i * d, (i + 1) * d), i * d);
  }
  return { trueRows, falseRows };
}

/** pinv(AᵀA / (N − 1), |λ| > atol)·v for a column-centred N×d matrix A. */
function pinvCovTimes(
  a: Float64Array,
  N: number,
  d: number,
  v: Float64Array,
  atol: number,
): Float64Array {
  const out = new Float64Array(d), denom = N - 1;
  if (d <= N) {
    const cov = new MlMatrix(d, d);
    for (let p = 0; p < d; p++) {
      for (let q = 0; q <= p; q++) {
        let s = 0;
        for (let i = 0; i < N; i++) s += a[i * d + p]! * a[i * d + q]!;
        cov.set(p, q, s / denom), cov.set(q, p, s / denom);
      }
    }
    const evd = new EigenvalueDecomposition(cov, { assumeSymmetric: true });
    const lam = evd.realEigenvalues, vec = evd.eigenvectorMatrix;
    for (let k = 0; k < d; k++) {
      const l = lam[k]!;
      if (!(Math.abs(l) > atol)) continue;
      let c = 0;
      for (let j = 0; j < d; j++) c += vec.get(j, k) * v[j]!;
      c /= l;
      for (let j = 0; j < d; j++) out[j]! += c * vec.get(j, k);
    }
    return out;
  }
  // Gram route: A Aᵀ = U M Uᵀ; Σ's non-zero eigenpairs are (m/(N−1), Aᵀu/√m)
  const gram = new MlMatrix(N, N);
  for (let p = 0; p < N; p++) {
    for (let q = 0; q <= p; q++) {
      let s = 0;
      for (let j = 0; j < d; j++) s += a[p * d + j]! * a[q * d + j]!;
      gram.set(p, q, s), gram.set(q, p, s);
    }
  }
  const evd = new EigenvalueDecomposition(gram, { assumeSymmetric: true });
  const m = evd.realEigenvalues, u = evd.eigenvectorMatrix;
  const av = new Float64Array(N); // A v
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let j = 0; j < d; j++) s += a[i * d + j]! * v[j]!;
    av[i] = s;
  }
  const coef = new Float64Array(N); // out = Aᵀ coef
  for (let k = 0; k < N; k++) {
    const mk = m[k]!, lam = mk / denom;
    if (!(lam > atol)) continue; // Gram eigenvalues are ≥ 0 (up to round-off far below atol)
    let c = 0;
    for (let i = 0; i < N; i++) c += u.get(i, k) * av[i]!;
    // v_k = Aᵀu_k/√m_k; (1/λ)·v_k(v_kᵀv) = Aᵀu_k · (u_kᵀAv)·(N−1)/m_k²
    c *= denom / (mk * mk);
    for (let i = 0; i < N; i++) coef[i]! += c * u.get(i, k);
  }
  for (let i = 0; i < N; i++) {
    const ci = coef[i]!;
    for (let j = 0; j < d; j++) out[j]! += ci * a[i * d + j]!;
  }
  return out;
}

/** Options of {@linkcode unsupervisedMassMeanProbe}. */
export interface UnsupervisedMassMeanOptions {
  /** Linkage of the clustering (default "complete", the authors' setting). */
  linkage?: Linkage;
}

/** The unsupervised mass-mean direction and the cluster labels it came from. */
export interface UnsupervisedMassMean {
  /** θ = (mean(δ | label 1) − mean(δ | label 0)) / 2 with δ = h_pos − h_neg. */
  direction: Float64Array;
  /** scikit-learn's `AgglomerativeClustering(2, metric="cosine").fit_predict(δ)` labels. */
  clusters: Int32Array;
}

/**
 * The authors' unsupervised mass-mean probe: 2-cluster agglomerative clustering of
 * δ = h_pos − h_neg with cosine distance and complete linkage; θ = (mean(δ | cluster 1) −
 * mean(δ | cluster 0)) / 2. Its sign is arbitrary (it follows scikit-learn's cluster numbering);
 * the calibration fixes it. No δ may be the zero vector (cosine distance is undefined there).
 *
 * @example
 * ```ts
 * import { unsupervisedMassMeanProbe } from "./mass_mean.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assert } from "@std/assert";
 *
 * const pairs = contrastPairs([[0, 0], [0, 0], [0, 0], [0, 0]], [[1, 0.1], [2, -0.1], [-1, 0], [-1.5, 0.2]]);
 * const { direction, clusters } = unsupervisedMassMeanProbe(pairs);
 * assert(clusters[0] === clusters[1] && clusters[2] === clusters[3] && clusters[0] !== clusters[2]);
 * assert(Math.abs(direction[0]!) > 10 * Math.abs(direction[1]!));
 * ```
 */
export function unsupervisedMassMeanProbe(
  pairs: ContrastPairs,
  options: UnsupervisedMassMeanOptions = {},
): UnsupervisedMassMean {
  const fn = "unsupervisedMassMeanProbe";
  _checkPairs(fn, "pairs", pairs, 2);
  const { n, d } = pairs;
  const delta = _sub(pairs.pos, pairs.neg);
  const clusters = agglomerativeClustering(delta, n, d, {
    nClusters: 2,
    metric: "cosine",
    linkage: options.linkage ?? "complete",
  });
  const m1 = new Float64Array(d), m0 = new Float64Array(d);
  let c1 = 0, c0 = 0;
  for (let i = 0; i < n; i++) {
    const m = clusters[i] === 1 ? m1 : m0;
    clusters[i] === 1 ? c1++ : c0++;
    for (let j = 0; j < d; j++) m[j]! += delta[i * d + j]!;
  }
  const direction = new Float64Array(d);
  for (let j = 0; j < d; j++) direction[j] = (m1[j]! / c1 - m0[j]! / c0) / 2;
  return { direction, clusters };
}
