/**
 * Statistical tests for the toxicity analyses: the two-proportion z-test, rank correlations
 * (Spearman's ρ with its t-based p-value, Kendall's τ-b with the tie-corrected normal
 * approximation, as scipy's `spearmanr` and `kendalltau(method="asymptotic")`), and percentile
 * bootstrap intervals.
 *
 * @module
 */
import { Rng } from "../core/rng.ts";
import { normalTwoSidedP, tTwoSidedP } from "./distributions.ts";

/** Result of a two-proportion z-test. */
export interface TwoProportions {
  /** x1/n1. */
  p1: number;
  /** x2/n2. */
  p2: number;
  /** p2 − p1. */
  difference: number;
  /** z with the pooled standard error. */
  z: number;
  /** Two-sided p-value. */
  p: number;
}

/**
 * Tests H0: p1 = p2 from x1 of n1 and x2 of n2 (pooled variance).
 *
 * @example
 * ```ts
 * import { twoProportionTest } from "./tests.ts";
 * const t = twoProportionTest(10, 100, 20, 100);
 * if (Math.abs(t.z - 0.1 / Math.sqrt(0.15 * 0.85 * 0.02)) > 1e-12) throw new Error("pooled z");
 * ```
 */
export function twoProportionTest(x1: number, n1: number, x2: number, n2: number): TwoProportions {
  for (const [v, name] of [[x1, "x1"], [n1, "n1"], [x2, "x2"], [n2, "n2"]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} = ${v} is not a count`);
  }
  if (n1 === 0 || n2 === 0 || x1 > n1 || x2 > n2) {
    throw new RangeError(`Cannot compare ${x1}/${n1} with ${x2}/${n2}`);
  }
  const p1 = x1 / n1, p2 = x2 / n2, pool = (x1 + x2) / (n1 + n2);
  const se = Math.sqrt(pool * (1 - pool) * (1 / n1 + 1 / n2));
  const z = se === 0 ? 0 : (p2 - p1) / se;
  return { p1, p2, difference: p2 - p1, z, p: se === 0 ? 1 : normalTwoSidedP(z) };
}

/** Average ranks (1-based; ties get the mean of their positions). */
export function ranks(x: readonly number[]): number[] {
  const idx = x.map((_, i) => i).sort((a, b) => x[a]! - x[b]!);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && x[idx[j + 1]!] === x[idx[i]!]) j++;
    for (let k = i; k <= j; k++) r[idx[k]!] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}

function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n, mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}

function checkPair(x: readonly number[], y: readonly number[]): void {
  if (x.length !== y.length) throw new RangeError(`${x.length} and ${y.length} values: need pairs`);
  if (x.length < 3) {
    throw new RangeError(`${x.length} pairs are too few for a rank correlation (need 3)`);
  }
  if (![...x, ...y].every(Number.isFinite)) {
    throw new RangeError("Rank correlation of non-finite values");
  }
}

/** Spearman's ρ (Pearson of average ranks) and its two-sided p-value (t with n − 2 df). */
export function spearman(x: readonly number[], y: readonly number[]): { rho: number; p: number } {
  checkPair(x, y);
  const rho = pearson(ranks(x), ranks(y)), n = x.length;
  if (Number.isNaN(rho)) return { rho, p: NaN };
  const t = Math.abs(rho) >= 1 ? Infinity : rho * Math.sqrt((n - 2) / (1 - rho * rho));
  return { rho, p: tTwoSidedP(t, n - 2) };
}

/** Kendall's τ-b and its two-sided p-value (normal approximation with tie corrections). */
export function kendall(x: readonly number[], y: readonly number[]): { tau: number; p: number } {
  checkPair(x, y);
  const n = x.length;
  let conc = 0, disc = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const a = Math.sign(x[i]! - x[j]!), b = Math.sign(y[i]! - y[j]!);
      if (a === 0 || b === 0) continue;
      if (a === b) conc++;
      else disc++;
    }
  }
  const n0 = (n * (n - 1)) / 2;
  const tiesX = tieGroups(x), tiesY = tieGroups(y);
  const n1 = tiesX.reduce((s, t) => s + (t * (t - 1)) / 2, 0),
    n2 = tiesY.reduce((s, t) => s + (t * (t - 1)) / 2, 0);
  const denom = Math.sqrt((n0 - n1) * (n0 - n2));
  if (denom === 0) return { tau: NaN, p: NaN };
  const tau = (conc - disc) / denom;
  // variance of S = conc − disc under H0 with ties (Kendall 1970, as scipy)
  const v0 = n * (n - 1) * (2 * n + 5);
  const vt = tiesX.reduce((s, t) => s + t * (t - 1) * (2 * t + 5), 0);
  const vu = tiesY.reduce((s, t) => s + t * (t - 1) * (2 * t + 5), 0);
  const v1 = tiesX.reduce((s, t) => s + t * (t - 1), 0) *
    tiesY.reduce((s, t) => s + t * (t - 1), 0);
  const v2 = tiesX.reduce((s, t) => s + t * (t - 1) * (t - 2), 0) *
    tiesY.reduce((s, t) => s + t * (t - 1) * (t - 2), 0);
  const varS = (v0 - vt - vu) / 18 + v1 / (2 * n * (n - 1)) + v2 / (9 * n * (n - 1) * (n - 2));
  const z = (conc - disc) / Math.sqrt(varS);
  return { tau, p: normalTwoSidedP(z) };
}

function tieGroups(x: readonly number[]): number[] {
  const c = new Map<number, number>();
  for (const v of x) c.set(v, (c.get(v) ?? 0) + 1);
  return [...c.values()].filter((k) => k > 1);
}

/**
 * A percentile bootstrap interval: `statistic` is evaluated on `replicates` resamples drawn by
 * `resample(rng)`; returns [low, high] at `level`, NaN draws excluded.
 */
export function bootstrapInterval(
  resample: (rng: Rng) => number,
  options: { replicates?: number; level?: number; seed?: number } = {},
): [number, number] {
  const B = options.replicates ?? 1000, level = options.level ?? 0.95;
  const rng = new Rng(options.seed ?? 0);
  const draws: number[] = [];
  for (let b = 0; b < B; b++) {
    const v = resample(rng);
    if (!Number.isNaN(v)) draws.push(v);
  }
  if (draws.length === 0) return [NaN, NaN];
  draws.sort((a, b) => a - b);
  const q = (p: number) => {
    const h = (draws.length - 1) * p, lo = Math.floor(h);
    return draws[lo]! + (h - lo) * (draws[Math.ceil(h)]! - draws[lo]!);
  };
  return [q((1 - level) / 2), q((1 + level) / 2)];
}
