/**
 * 1-D Wasserstein-1 distances: between two weighted empirical distributions exactly as
 * `scipy.stats.wasserstein_distance` defines them, and between a sample and N(0,1) in quantile
 * form (the Wasserstein-neuron metric of Sparse Expansion) or against a seeded Gaussian sample.
 *
 * @module
 */
import { NumericalError, ShapeError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";

function check(name: string, x: ArrayLike<number>): void {
  if (x.length === 0) throw new RangeError(`Sample ${name} is empty`);
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) {
      throw new NumericalError(`Sample ${name}[${i}] is ${x[i]}: expected a finite number`);
    }
  }
}

function sortedWithWeights(
  name: string,
  x: ArrayLike<number>,
  w?: ArrayLike<number>,
): [Float64Array, Float64Array | null] {
  check(name, x);
  if (!w) return [Float64Array.from(x).sort(), null];
  if (w.length !== x.length) {
    throw new ShapeError(`Weights of ${name} have ${w.length} entries for ${x.length} values`);
  }
  let total = 0;
  for (let i = 0; i < w.length; i++) {
    const wi = w[i] as number;
    if (!(wi >= 0) || !Number.isFinite(wi)) {
      throw new RangeError(`Weight ${name}[${i}] is ${wi}: expected a finite number ≥ 0`);
    }
    total += wi;
  }
  if (!(total > 0)) throw new RangeError(`The weights of ${name} sum to 0`);
  const idx = Array.from({ length: x.length }, (_, i) => i).sort((a, b) =>
    (x[a] as number) - (x[b] as number)
  );
  return [
    Float64Array.from(idx, (i) => x[i] as number),
    Float64Array.from(idx, (i) => (w[i] as number) / total),
  ];
}

/** Options of {@linkcode wasserstein1}. */
export interface WassersteinOptions {
  /** Weights of u's values (default equal). */
  uWeights?: ArrayLike<number>;
  /** Weights of v's values (default equal). */
  vWeights?: ArrayLike<number>;
}

/**
 * W1(u, v) = ∫|F_u − F_v|, the area between the two empirical CDFs (scipy's definition).
 *
 * @example
 * ```ts
 * import { wasserstein1 } from "./distance.ts";
 * import { assertAlmostEquals } from "@std/assert";
 * assertAlmostEquals(wasserstein1([0, 1, 3], [5, 6, 8]), 5);
 * assertAlmostEquals(wasserstein1([0, 1, 3], [5, 6, 8], { uWeights: [3, 1, 1] }), 5.533333333333334);
 * ```
 */
export function wasserstein1(
  u: ArrayLike<number>,
  v: ArrayLike<number>,
  options: WassersteinOptions = {},
): number {
  const [us, uw] = sortedWithWeights("u", u, options.uWeights);
  const [vs, vw] = sortedWithWeights("v", v, options.vWeights);
  const nu = us.length, nv = vs.length;
  let i = 0, j = 0, fu = 0, fv = 0, total = 0;
  let prev = Math.min(us[0] as number, vs[0] as number);
  // walk the merged sorted values; between consecutive values both CDFs are constant
  while (i < nu || j < nv) {
    const x = j >= nv || (i < nu && (us[i] as number) <= (vs[j] as number))
      ? us[i] as number
      : vs[j] as number;
    total += Math.abs(fu - fv) * (x - prev);
    while (i < nu && us[i] === x) fu += uw ? uw[i++] as number : (++i, 1 / nu);
    while (j < nv && vs[j] === x) fv += vw ? vw[j++] as number : (++j, 1 / nv);
    prev = x;
  }
  return total;
}

// Acklam's coefficients
const A0 = -3.969683028665376e+01, A1 = 2.209460984245205e+02, A2 = -2.759285104469687e+02;
const A3 = 1.383577518672690e+02, A4 = -3.066479806614716e+01, A5 = 2.506628277459239e+00;
const B0 = -5.447609879822406e+01, B1 = 1.615858368580409e+02, B2 = -1.556989798598866e+02;
const B3 = 6.680131188771972e+01, B4 = -1.328068155288572e+01;
const C0 = -7.784894002430293e-03, C1 = -3.223964580411365e-01, C2 = -2.400758277161838e+00;
const C3 = -2.549732539343734e+00, C4 = 4.374664141464968e+00, C5 = 2.938163982698783e+00;
const D0 = 7.784695709041462e-03, D1 = 3.224671290700398e-01, D2 = 2.445134137142996e+00;
const D3 = 3.754408661907416e+00;

/**
 * Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error below
 * 1.2e-9 over (0, 1)).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) {
    if (p === 0) return -Infinity;
    if (p === 1) return Infinity;
    throw new RangeError(`Probability ${p} is outside [0, 1]`);
  }
  if (p < 0.02425 || p > 1 - 0.02425) {
    const q = Math.sqrt(-2 * Math.log(p < 0.5 ? p : 1 - p));
    const x = (((((C0 * q + C1) * q + C2) * q + C3) * q + C4) * q + C5) /
      ((((D0 * q + D1) * q + D2) * q + D3) * q + 1);
    return p < 0.5 ? x : -x;
  }
  const q = p - 0.5, r = q * q;
  return (((((A0 * r + A1) * r + A2) * r + A3) * r + A4) * r + A5) * q /
    (((((B0 * r + B1) * r + B2) * r + B3) * r + B4) * r + 1);
}

let quantileCache: Float64Array = new Float64Array(0);

/** Φ⁻¹((k − ½)/n) for k = 1..n, cached for the last n asked for. */
export function normalQuantiles(n: number): Float64Array {
  if (quantileCache.length !== n) {
    quantileCache = Float64Array.from({ length: n }, (_, k) => normalQuantile((k + 0.5) / n));
  }
  return quantileCache;
}

/**
 * W1 between a sample and N(0,1) in quantile form: mean_k |x₍ₖ₎ − Φ⁻¹((k − ½)/N)| with x sorted.
 * Standardise x first (see {@linkcode zscore}) for the Wasserstein-neuron metric.
 *
 * @example
 * ```ts
 * import { normalQuantile, w1ToNormal } from "./distance.ts";
 * const q = [0.5 / 3, 1.5 / 3, 2.5 / 3].map(normalQuantile);
 * if (w1ToNormal(q) > 1e-15) throw new Error("the quantiles themselves are at distance 0");
 * ```
 */
export function w1ToNormal(x: ArrayLike<number>): number {
  check("x", x);
  const s = Float64Array.from(x).sort(), n = s.length, q = normalQuantiles(n);
  let total = 0;
  for (let k = 0; k < n; k++) total += Math.abs((s[k] as number) - (q[k] as number));
  return total / n;
}

/**
 * W1 between a sample and `size` seeded standard-normal draws (default as many as x), through
 * {@linkcode wasserstein1}: the form the authors' code uses.
 */
export function w1ToGaussianSample(
  x: ArrayLike<number>,
  options: { seed?: number; size?: number } = {},
): number {
  const { seed = 0, size = x.length } = options;
  const rng = new Rng(seed);
  const g = new Float64Array(size);
  for (let i = 0; i < size; i++) g[i] = rng.normal();
  return wasserstein1(x, g);
}

/**
 * (x − mean)/std with the population standard deviation, or null when x has zero variance.
 *
 * @example
 * ```ts
 * import { zscore } from "./distance.ts";
 * const z = zscore([1, 3]);
 * if (!z || z[0] !== -1 || z[1] !== 1) throw new Error("wrong z-scores");
 * if (zscore([2, 2]) !== null) throw new Error("zero variance must give null");
 * ```
 */
export function zscore(x: ArrayLike<number>): Float64Array | null {
  check("x", x);
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i] as number;
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += ((x[i] as number) - mean) ** 2;
  const std = Math.sqrt(ss / n);
  if (!(std > 0) || std < 1e-12 * Math.abs(mean)) return null;
  return Float64Array.from(x, (v) => (v - mean) / std);
}

/** The q-th percentile (0–100) with numpy's default linear interpolation. */
export function percentile(x: ArrayLike<number>, q: number): number {
  check("x", x);
  if (!(q >= 0 && q <= 100)) throw new RangeError(`Percentile ${q} is outside [0, 100]`);
  const s = Float64Array.from(x).sort(), pos = (s.length - 1) * q / 100;
  const lo = Math.floor(pos), hi = Math.min(lo + 1, s.length - 1);
  return (s[lo] as number) + ((s[hi] as number) - (s[lo] as number)) * (pos - lo);
}
