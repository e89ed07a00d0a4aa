/**
 * Factors of cross-lingual transfer: least squares of a score on several factors with
 * standardised coefficients, the relative importance of each factor by LMG (Lindeman, Merenda and
 * Gold: the R² gain of adding a factor, averaged over all orders of entry; equal to general
 * dominance), and percentile bootstrap confidence intervals. Linear algebra by ml-matrix (QR).
 *
 * @module
 */
import { Matrix as MlMatrix, QrDecomposition } from "npm:ml-matrix@6.15.1";
import { Rng } from "../core/rng.ts";
import { meanSd } from "../stats/descriptive.ts";

/** The fit of `y` on the factors. */
export interface FactorFit {
  /** Factor names, in the order of the coefficient arrays. */
  factors: string[];
  /** Rows used. */
  n: number;
  /** Intercept on the original scales. */
  intercept: number;
  /** Coefficients on the original scales. */
  coefficients: number[];
  /** Coefficients of the z-scored factors on the z-scored score. */
  standardized: number[];
  /** R² of the full model. */
  r2: number;
  /** LMG relative importance per factor (sums to r2). */
  lmg: number[];
}

/** A fit with bootstrap intervals. */
export interface FactorFitWithCi extends FactorFit {
  /** Bootstrap replicates drawn and kept (replicates with a constant column are skipped). */
  replicates: number;
  /** [low, high] per factor for the standardised coefficients. */
  standardizedCi: [number, number][];
  /** [low, high] per factor for LMG. */
  lmgCi: [number, number][];
  /** Confidence level, e.g. 0.95. */
  level: number;
}

/** R² of y on the given columns of X (with an intercept), or null when X is rank-deficient. */
function rSquared(cols: number[][], y: number[], which: number[]): number | null {
  const n = y.length;
  const [my] = meanSd(y);
  const tss = y.reduce((s, v) => s + (v - my) ** 2, 0);
  if (which.length === 0) return 0;
  const X = new MlMatrix(n, which.length + 1);
  for (let i = 0; i < n; i++) {
    X.set(i, 0, 1);
    which.forEach((j, k) => X.set(i, k + 1, cols[j]![i]!));
  }
  const qr = new QrDecomposition(X);
  if (!qr.isFullRank()) return null;
  const beta = qr.solve(MlMatrix.columnVector(y));
  const fitted = X.mmul(beta);
  let rss = 0;
  for (let i = 0; i < n; i++) rss += (y[i]! - fitted.get(i, 0)) ** 2;
  return 1 - rss / tss;
}

/**
 * Fits `y` on the columns `x` (one array per factor, all the length of `y`).
 * Throws a RangeError for too few rows, a constant column or collinear factors.
 *
 * @example
 * ```ts
 * import { fitFactors } from "./regression.ts";
 * const x1 = [1, 2, 3, 4, 5], x2 = [1, -1, 1, -1, 0];
 * const y = x1.map((v, i) => 2 + 3 * v - x2[i]!);
 * const f = fitFactors(y, [x1, x2], ["a", "b"]);
 * if (Math.abs(f.coefficients[0]! - 3) > 1e-9 || Math.abs(f.r2 - 1) > 1e-12) throw new Error("exact fit");
 * ```
 */
export function fitFactors(
  y: readonly number[],
  x: readonly (readonly number[])[],
  factors: readonly string[],
): FactorFit {
  const n = y.length, p = x.length;
  if (factors.length !== p) throw new RangeError(`${p} factor columns but ${factors.length} names`);
  if (p === 0) throw new RangeError("No factors to fit");
  if (p > 15) {
    throw new RangeError(`${p} factors: LMG over 2^${p} subsets is too many (at most 15)`);
  }
  if (n < p + 2) {
    throw new RangeError(`${n} rows are too few to fit ${p} factor(s): need at least ${p + 2}`);
  }
  for (let j = 0; j < p; j++) {
    if (x[j]!.length !== n) {
      throw new RangeError(`Factor '${factors[j]}' has ${x[j]!.length} values for ${n} rows`);
    }
    const bad = x[j]!.findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new RangeError(`Factor '${factors[j]}' row ${bad + 1} is not a finite number`);
    }
  }
  const badY = y.findIndex((v) => !Number.isFinite(v));
  if (badY >= 0) throw new RangeError(`Score row ${badY + 1} is not a finite number`);
  const [my, sy] = meanSd(y as number[]);
  if (!(sy > 0)) throw new RangeError("The score is constant: nothing to explain");
  const stats = x.map((c) => meanSd(c as number[]));
  stats.forEach(([, s], j) => {
    if (!(s > 0)) throw new RangeError(`Factor '${factors[j]}' is constant in these rows`);
  });
  const zy = y.map((v) => (v - my) / sy);
  const zx = x.map((c, j) => c.map((v) => (v - stats[j]![0]) / stats[j]![1]));
  // standardised coefficients: regression of z-scores (the intercept is then 0)
  const Z = new MlMatrix(n, p);
  for (let i = 0; i < n; i++) for (let j = 0; j < p; j++) Z.set(i, j, zx[j]![i]!);
  const qr = new QrDecomposition(Z);
  if (!qr.isFullRank()) {
    throw new RangeError(`The factors ${factors.join(", ")} are collinear in these rows`);
  }
  const std = qr.solve(MlMatrix.columnVector(zy)).getColumn(0);
  const coefficients = std.map((b, j) => (b * sy) / stats[j]![1]);
  const intercept = my - coefficients.reduce((s, b, j) => s + b * stats[j]![0], 0);
  // R² of every subset, then LMG: Σ over subsets S ∌ j of |S|!(p−|S|−1)!/p! · (R²(S∪j) − R²(S))
  const cols = zx;
  const r2Of = new Float64Array(1 << p);
  for (let mask = 1; mask < 1 << p; mask++) {
    const which = [...Array(p).keys()].filter((j) => mask & (1 << j));
    r2Of[mask] = rSquared(cols, zy, which) ?? NaN;
  }
  const fact = (k: number): number => (k <= 1 ? 1 : k * fact(k - 1));
  const lmg = new Array<number>(p).fill(0);
  for (let mask = 0; mask < 1 << p; mask++) {
    const size = [...Array(p).keys()].filter((j) => mask & (1 << j)).length;
    const w = (fact(size) * fact(p - size - 1)) / fact(p);
    for (let j = 0; j < p; j++) {
      if (mask & (1 << j)) continue;
      lmg[j]! += w * (r2Of[mask | (1 << j)]! - r2Of[mask]!);
    }
  }
  return {
    factors: [...factors],
    n,
    intercept,
    coefficients,
    standardized: std,
    r2: r2Of[(1 << p) - 1]!,
    lmg,
  };
}

function quantile(sorted: number[], q: number): number {
  const h = (sorted.length - 1) * q, lo = Math.floor(h), hi = Math.ceil(h);
  return sorted[lo]! + (h - lo) * (sorted[hi]! - sorted[lo]!);
}

/**
 * {@linkcode fitFactors} plus percentile bootstrap intervals from `replicates` resamples of the
 * rows (seeded). Resamples in which a factor is constant or the factors are collinear are
 * redrawn, at most `10 · replicates` draws in all.
 */
export function fitFactorsWithCi(
  y: readonly number[],
  x: readonly (readonly number[])[],
  factors: readonly string[],
  options: { replicates?: number; level?: number; seed?: number } = {},
): FactorFitWithCi {
  const fit = fitFactors(y, x, factors);
  const B = options.replicates ?? 1000, level = options.level ?? 0.95;
  if (!Number.isInteger(B) || B < 10) {
    throw new RangeError(`Bootstrap replicates ${B} must be an integer ≥ 10`);
  }
  if (!(level > 0 && level < 1)) throw new RangeError(`Confidence level ${level} is not in (0, 1)`);
  const rng = new Rng(options.seed ?? 0);
  const n = y.length, p = x.length;
  const stdDraws: number[][] = Array.from({ length: p }, () => []);
  const lmgDraws: number[][] = Array.from({ length: p }, () => []);
  let kept = 0;
  for (let tries = 0; kept < B && tries < 10 * B; tries++) {
    const idx = Array.from({ length: n }, () => rng.int(n));
    try {
      const f = fitFactors(idx.map((i) => y[i]!), x.map((c) => idx.map((i) => c[i]!)), factors);
      f.standardized.forEach((b, j) => stdDraws[j]!.push(b));
      f.lmg.forEach((b, j) => lmgDraws[j]!.push(b));
      kept++;
    } catch (e) {
      if (!(e instanceof RangeError)) throw e;
    }
  }
  if (kept < B) {
    throw new RangeError(
      `Only ${kept} of ${B} bootstrap resamples could be fitted (factors constant or collinear in most resamples): too few rows`,
    );
  }
  const ci = (draws: number[][]) =>
    draws.map((d) => {
      const s = d.slice().sort((a, b) => a - b);
      return [quantile(s, (1 - level) / 2), quantile(s, (1 + level) / 2)] as [number, number];
    });
  return { ...fit, replicates: kept, standardizedCi: ci(stdDraws), lmgCi: ci(lmgDraws), level };
}
