/**
 * The LR probe: scikit-learn's `LogisticRegression(class_weight='balanced', fit_intercept=False)`
 * (C = 1, L2 penalty) fitted on x = h_neg − h_pos against the labels, θ = coef (the authors'
 * `LogisticRegressionSKLearn`, evaluate.py). sklearn minimises, with lbfgs,
 *
 *   F(β) = Σᵢ wᵢ·log(1 + exp(−tᵢ·xᵢ·β)) + ‖β‖² / (2C),   tᵢ = 2yᵢ − 1,
 *
 * with the balanced class weights w = n / (2·n_class). Here the same strictly convex F is
 * minimised by Newton-CG in f64 to a tight gradient tolerance, so the coefficients are sklearn's
 * optimum (sklearn itself stops at tol = 1e-4 after at most 100 lbfgs iterations).
 *
 * Note on the sign: the fit is on neg − pos, so σ(θ·(h_neg − h_pos)) is P(true) and θ points
 * from true towards false in the authors' p = (σ(h_pos·θ̂) + 1 − σ(h_neg·θ̂))/2; their calibration
 * (`fitCalibration`) takes the sign from the mass-mean direction and flips it back.
 *
 * @module
 */
import { _checkLabels, _checkOption, _checkPairs, _checkVector } from "./_check.ts";
import { _addMatTvec, _dot, _matvec, _sigmoid, _sub } from "./_math.ts";
import type { ContrastPairs } from "./pairs.ts";
import { ShapeError } from "../core/errors.ts";

/** Options of {@linkcode fitLogisticRegression} and {@linkcode lrProbe}. */
export interface LogisticOptions {
  /** Inverse L2 strength (sklearn's C, default 1). */
  C?: number;
  /** "balanced" (default, w = n / (2·n_class)) or "none" (all weights 1). */
  classWeight?: "balanced" | "none";
  /** Stop when max|∇F| / Σw ≤ tol (default 1e-10; sklearn's scaled gradient). */
  tol?: number;
  /** Newton iterations at most (default 100). */
  maxIter?: number;
}

/** A fitted logistic regression without intercept. */
export interface LogisticFit {
  /** The coefficients β (length d); for {@linkcode lrProbe} the probe direction θ. */
  coef: Float64Array;
  /** Newton iterations taken. */
  iterations: number;
  /** Whether max|∇F| / Σw reached `tol`. */
  converged: boolean;
  /** max|∇F| / Σw at the returned coefficients. */
  gradient: number;
  /** F(β) / Σw at the returned coefficients. */
  objective: number;
}

/**
 * Binary L2-regularised logistic regression without intercept on a row-major n×d matrix `x`,
 * labels 0/1 (both classes present), exactly sklearn's objective (see the module doc).
 *
 * @example
 * ```ts
 * import { fitLogisticRegression } from "./lr.ts";
 * import { assert } from "@std/assert";
 *
 * const x = new Float64Array([1, 0.2, 2, -0.1, -1, 0.3, -1.5, 0]);
 * const fit = fitLogisticRegression(x, 4, 2, [1, 1, 0, 0]);
 * assert(fit.converged && fit.coef[0]! > 0);
 * ```
 */
export function fitLogisticRegression(
  x: Float64Array,
  n: number,
  d: number,
  labels: ArrayLike<number>,
  options: LogisticOptions = {},
): LogisticFit {
  return fit("fitLogisticRegression", x, n, d, labels, options);
}

function fit(
  fn: string,
  x: Float64Array,
  n: number,
  d: number,
  labels: ArrayLike<number>,
  options: LogisticOptions,
): LogisticFit {
  if (!(x instanceof Float64Array)) throw new TypeError(`${fn}: x is not a Float64Array`);
  if (n < 1 || d < 1 || x.length !== n * d) {
    throw new ShapeError(`${fn}: x has ${x.length} values, expected n·d = ${n}·${d} ≥ 1`);
  }
  _checkVector(fn, "x", x);
  const [n0, n1] = _checkLabels(fn, "labels", labels, n);
  if (n0 === 0 || n1 === 0) {
    throw new RangeError(
      `${fn}: labels contain only class ${n0 === 0 ? 1 : 0}, expected both 0 and 1`,
    );
  }
  const C = options.C ?? 1, tol = options.tol ?? 1e-10, maxIter = options.maxIter ?? 100;
  _checkOption(fn, "C", C);
  _checkOption(fn, "tol", tol);
  _checkOption(fn, "maxIter", maxIter);
  const balanced = (options.classWeight ?? "balanced") === "balanced";
  const w = new Float64Array(n), t = new Float64Array(n);
  let wSum = 0;
  for (let i = 0; i < n; i++) {
    t[i] = labels[i] === 1 ? 1 : -1;
    w[i] = balanced ? n / (2 * (labels[i] === 1 ? n1 : n0)) : 1;
    wSum += w[i]!;
  }
  const z = new Float64Array(n), c = new Float64Array(n), h = new Float64Array(n);
  const objective = (beta: Float64Array, zb: Float64Array): number => {
    let f = _dot(beta, beta) / (2 * C);
    for (let i = 0; i < n; i++) {
      const m = -t[i]! * zb[i]!; // softplus(m) = log(1 + e^m)
      f += w[i]! * (Math.max(m, 0) + Math.log1p(Math.exp(-Math.abs(m))));
    }
    return f;
  };
  const gradient = (beta: Float64Array, zb: Float64Array, g: Float64Array): void => {
    for (let j = 0; j < d; j++) g[j] = beta[j]! / C;
    for (let i = 0; i < n; i++) c[i] = -w[i]! * t[i]! * _sigmoid(-t[i]! * zb[i]!);
    _addMatTvec(x, n, d, c, g);
  };
  const beta = new Float64Array(d);
  const g = new Float64Array(d), p = new Float64Array(d), r = new Float64Array(d);
  const q = new Float64Array(d), hv = new Float64Array(d), xv = new Float64Array(n);
  const trial = new Float64Array(d), zTrial = new Float64Array(n);
  // Hessian-vector product: (Xᵀ diag(h) X + I/C) v
  const hessVec = (v: Float64Array, out: Float64Array): void => {
    _matvec(x, n, d, v, xv);
    for (let i = 0; i < n; i++) xv[i]! *= h[i]!;
    for (let j = 0; j < d; j++) out[j] = v[j]! / C;
    _addMatTvec(x, n, d, xv, out);
  };
  _matvec(x, n, d, beta, z);
  let f = objective(beta, z), iterations = 0, gmax = Infinity;
  for (;;) {
    gradient(beta, z, g);
    gmax = 0;
    for (let j = 0; j < d; j++) gmax = Math.max(gmax, Math.abs(g[j]!));
    gmax /= wSum;
    if (gmax <= tol || iterations >= maxIter) break;
    iterations++;
    for (let i = 0; i < n; i++) {
      const s = _sigmoid(z[i]!);
      h[i] = w[i]! * s * (1 - s);
    }
    // conjugate gradients for H p = −g, to a residual of min(0.5, √‖g‖)·‖g‖
    const gNorm = Math.sqrt(_dot(g, g));
    const eta = Math.min(0.5, Math.sqrt(gNorm)) * gNorm;
    p.fill(0);
    for (let j = 0; j < d; j++) r[j] = -g[j]!, q[j] = r[j]!;
    let rr = _dot(r, r);
    for (let k = 0; k < Math.max(2 * d, 50) && Math.sqrt(rr) > eta; k++) {
      hessVec(q, hv);
      const alpha = rr / _dot(q, hv);
      for (let j = 0; j < d; j++) p[j]! += alpha * q[j]!, r[j]! -= alpha * hv[j]!;
      const rrNew = _dot(r, r);
      const b = rrNew / rr;
      rr = rrNew;
      for (let j = 0; j < d; j++) q[j] = r[j]! + b * q[j]!;
    }
    // backtracking (Armijo) line search from the full Newton step
    const slope = _dot(g, p);
    let step = 1, accepted = false;
    for (let k = 0; k < 40; k++, step /= 2) {
      for (let j = 0; j < d; j++) trial[j] = beta[j]! + step * p[j]!;
      _matvec(x, n, d, trial, zTrial);
      const fTrial = objective(trial, zTrial);
      if (fTrial <= f + 1e-4 * step * slope) {
        f = fTrial;
        accepted = true;
        break;
      }
    }
    if (!accepted) break; // no decrease representable in f64: at the optimum up to round-off
    beta.set(trial);
    z.set(zTrial);
  }
  return { coef: beta, iterations, converged: gmax <= tol, gradient: gmax, objective: f / wSum };
}

/**
 * The authors' LR probe: {@linkcode fitLogisticRegression} on x = h_neg − h_pos (sklearn's
 * `LogisticRegression(class_weight='balanced', fit_intercept=False)`); θ = coef.
 *
 * @example
 * ```ts
 * import { lrProbe } from "./lr.ts";
 * import { contrastPairs } from "./pairs.ts";
 * import { assert } from "@std/assert";
 *
 * // true statements (y = 1) have pos above neg along feature 0
 * const pairs = contrastPairs([[-1, 0.1], [1, 0], [-2, 0.3], [1.5, -0.2]], [[1, 0], [-1, 0.2], [2, 0], [-1, 0.1]]);
 * const fit = lrProbe(pairs, [1, 0, 1, 0]);
 * assert(fit.coef[0]! < 0); // fitted on neg − pos: points from true to false
 * ```
 */
export function lrProbe(
  pairs: ContrastPairs,
  labels: ArrayLike<number>,
  options: LogisticOptions = {},
): LogisticFit {
  _checkPairs("lrProbe", "pairs", pairs);
  return fit("lrProbe", _sub(pairs.neg, pairs.pos), pairs.n, pairs.d, labels, options);
}
