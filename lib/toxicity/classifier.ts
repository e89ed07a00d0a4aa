/**
 * A transparent post-level toxicity classifier: bag-of-words logistic regression (binary word
 * presence, L2 penalty on the word weights, unpenalised bias) trained to convergence in
 * TypeScript by a sparse Newton–conjugate-gradient solver. It serves as the binary gate of span
 * detectors and, through its per-word weights, as a rationale extractor: the words of a post whose
 * weight exceeds a threshold become its toxic spans.
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";

const TOKENS = /[\p{L}\p{N}]+/gu;

/** Training settings of {@linkcode BowLogReg.train}. */
export interface LogRegOptions {
  /**
   * λ > 0, the L2 penalty (λ/2)‖w‖² on the word weights in the objective (default 1); the fit is
   * sklearn's `LogisticRegression(C=1/λ, penalty='l2', fit_intercept=True)`.
   */
  lambda?: number;
  /** Words seen in fewer posts are not features (an integer ≥ 1, default 2). */
  minCount?: number;
  /** Stop when every component of the objective's gradient is within ± this (default 1e-8). */
  tolerance?: number;
  /** Newton iterations at most (an integer ≥ 1, default 100); past it training throws. */
  maxIterations?: number;
}

const OPTION_NAMES = ["lambda", "minCount", "tolerance", "maxIterations"];

/** How {@linkcode BowLogReg.train} ended: the objective and gradient at the returned weights. */
export interface LogRegTraining {
  /** The penalty λ used. */
  lambda: number;
  /** The objective F(w, b) at the returned weights and bias. */
  objective: number;
  /** max |∂F/∂θ| over the weights and the bias at the returned solution (≤ the tolerance). */
  gradient: number;
  /** Newton iterations taken. */
  iterations: number;
  /** Training posts. */
  posts: number;
  /** Words with a weight (the features). */
  features: number;
}

/** A word occurrence with its code-point offsets. */
export interface WordToken {
  /** The lower-cased word. */
  word: string;
  /** First code point. */
  start: number;
  /** One past the last code point. */
  end: number;
}

/** Lower-cased letter/digit runs of `text` with code-point offsets. */
export function wordTokens(text: string): WordToken[] {
  const out: WordToken[] = [];
  const lower = text.toLowerCase();
  // code-point offset of each UTF-16 index
  let cp = 0, prev = 0;
  for (const m of lower.matchAll(TOKENS)) {
    for (let i = prev; i < m.index; i++) {
      const c = lower.charCodeAt(i);
      if (!(c >= 0xdc00 && c <= 0xdfff)) cp++;
    }
    const len = [...m[0]].length;
    out.push({ word: m[0], start: cp, end: cp + len });
    cp += len;
    prev = m.index + m[0].length;
  }
  return out;
}

/** The distinct words of `text` in order of first appearance: {@linkcode wordTokens}' words. */
function distinctWords(text: string): string[] {
  return [...new Set(text.toLowerCase().match(TOKENS))];
}

/** `a` copied into an array twice as long. */
function grow(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  const b = new Int32Array(2 * a.length);
  b.set(a);
  return b;
}

/** Binary bag-of-words features: the vocabulary and, per text, the indices of its words. */
export interface BowFeatures {
  /** The feature words, in order of first appearance in the texts. */
  vocabulary: string[];
  /** Per text, the vocabulary indices of its distinct words, in order of first appearance. */
  rows: Int32Array[];
}

/**
 * The features {@linkcode BowLogReg.train} fits on: the distinct {@linkcode wordTokens} words of
 * each text that occur in at least `minCount` of the texts, each present (1) or absent (0).
 *
 * @example
 * ```ts
 * import { bowFeatures } from "./classifier.ts";
 * const f = bowFeatures(["You idiot, idiot", "an idiot", "nice"], 2);
 * if (f.vocabulary.join() !== "idiot" || f.rows[2]!.length !== 0) throw new Error("features");
 * ```
 */
export function bowFeatures(texts: readonly string[], minCount = 2): BowFeatures {
  if (!Number.isInteger(minCount) || minCount < 1) {
    throw new RangeError(`minCount is ${String(minCount)}, expected an integer ≥ 1`);
  }
  // one hash lookup per token: every word gets an id at its first appearance, a post lists an
  // id once (the last post that listed it is remembered) and counts towards its document frequency
  const ids = new Map<string, number>();
  const words: string[] = [];
  let df = new Int32Array(1024), last = new Int32Array(1024);
  const docs = texts.map((t, i) => {
    if (typeof t !== "string") {
      throw new TypeError(`Text ${i} is ${typeof t} (${String(t)}), expected a string`);
    }
    const row: number[] = [];
    for (const w of t.toLowerCase().match(TOKENS) ?? []) {
      let id = ids.get(w);
      if (id === undefined) {
        id = words.length;
        ids.set(w, id);
        words.push(w);
        if (id === df.length) [df, last] = [grow(df), grow(last)];
        last[id] = -1;
      }
      if (last[id] !== i) {
        last[id] = i;
        df[id]!++;
        row.push(id);
      }
    }
    return row;
  });
  // the words in at least minCount posts, numbered in order of first appearance
  const index = new Int32Array(words.length).fill(-1);
  const vocabulary: string[] = [];
  for (let id = 0; id < words.length; id++) {
    if (df[id]! >= minCount) index[id] = vocabulary.push(words[id]!) - 1;
  }
  const rows = docs.map((d) => {
    const row = new Int32Array(d.length);
    let len = 0;
    for (const id of d) if (index[id]! >= 0) row[len++] = index[id]!;
    return row.slice(0, len);
  });
  return { vocabulary, rows };
}

/**
 * Bag-of-words logistic regression. {@linkcode BowLogReg.train} minimises, over the word weights
 * w and the bias b,
 *
 *   F(w, b) = Σᵢ log(1 + exp(−yᵢ·(w·xᵢ + b))) + (λ/2)·‖w‖²,   yᵢ = ±1 (toxic: +1),
 *
 * with xᵢ the binary word-presence vector of post i ({@linkcode bowFeatures}) and the bias not
 * penalised. sklearn's `LogisticRegression(penalty='l2', C=C, fit_intercept=True)` minimises
 * C·Σᵢ log(1 + exp(−yᵢ·(w·xᵢ + b))) + ½‖w‖² (lbfgs, newton-cg: intercept unpenalised), which is C
 * times F with λ = 1/C: the same minimiser, so λ = 1 (the default) is sklearn's default C = 1.
 * F is strictly convex when both classes occur; the solver is Newton's method with the Newton
 * system solved by Jacobi-preconditioned conjugate gradients on the sparse design (Hessian–vector
 * products Xᵀ·diag(σ(1−σ))·X·v + λv, never an n × d matrix) and an Armijo backtracking line
 * search, started from zero and deterministic. It stops when max |∂F/∂θ| ≤ `tolerance` (default
 * 1e-8) and throws a {@linkcode NumericalError} if that has not happened after `maxIterations`
 * Newton steps (default 100) or when no step decreases F. Posts of one class only have no
 * minimiser (F → 0 as b → ±∞ with w = 0): train returns that limit, w = 0 and b = ±Infinity,
 * which calls every post toxic (or none).
 *
 * @example
 * ```ts
 * import { BowLogReg } from "./classifier.ts";
 * const docs = ["you idiot", "idiot again", "nice day", "a nice idea"];
 * const m = BowLogReg.train(docs, [true, true, false, false], { minCount: 1, lambda: 0.1 });
 * if (!(m.probability("what an idiot") > 0.5 && m.probability("nice") < 0.5)) throw new Error("fit");
 * if (!(m.training.gradient <= 1e-8)) throw new Error("not converged");
 * ```
 */
export class BowLogReg {
  /** Word → weight. */
  readonly weights: Map<string, number>;
  /** Bias. */
  readonly bias: number;
  /** The objective, gradient and iterations at the end of training. */
  readonly training: LogRegTraining;

  private constructor(weights: Map<string, number>, bias: number, training: LogRegTraining) {
    this.weights = weights;
    this.bias = bias;
    this.training = training;
  }

  /** Trains on `texts` with labels `toxic` to the minimum of F (see the class doc). */
  static train(
    texts: readonly string[],
    toxic: readonly boolean[],
    options: LogRegOptions = {},
  ): BowLogReg {
    if (texts.length !== toxic.length) {
      throw new RangeError(`${texts.length} texts but ${toxic.length} labels`);
    }
    if (texts.length === 0) throw new RangeError("No training posts");
    for (const key of Object.keys(options)) {
      if (!OPTION_NAMES.includes(key)) {
        throw new RangeError(
          `Unknown BowLogReg option '${key}' (options: ${OPTION_NAMES.join(", ")})`,
        );
      }
    }
    const { lambda = 1, minCount = 2, tolerance = 1e-8, maxIterations = 100 } = options;
    if (typeof lambda !== "number" || !(lambda > 0 && lambda < Infinity)) {
      throw new RangeError(
        `lambda is ${String(lambda)}, expected a finite number > 0 (sklearn's C = 1/lambda)`,
      );
    }
    if (typeof tolerance !== "number" || !(tolerance > 0 && tolerance < Infinity)) {
      throw new RangeError(`tolerance is ${String(tolerance)}, expected a finite number > 0`);
    }
    if (!Number.isInteger(maxIterations) || maxIterations < 1) {
      throw new RangeError(`maxIterations is ${String(maxIterations)}, expected an integer ≥ 1`);
    }
    const y = new Float64Array(texts.length);
    let positives = 0;
    toxic.forEach((t, i) => {
      if (typeof t !== "boolean") {
        throw new TypeError(`Label ${i} is ${String(t)}, expected true or false`);
      }
      y[i] = t ? 1 : -1;
      if (t) positives++;
    });
    const { vocabulary, rows } = bowFeatures(texts, minCount);
    const weights = new Map<string, number>();
    if (positives === 0 || positives === texts.length) {
      // no minimiser: the infimum F = 0 is the limit w = 0, b → ±∞
      for (const word of vocabulary) weights.set(word, 0);
      return new BowLogReg(weights, positives === 0 ? -Infinity : Infinity, {
        lambda,
        objective: 0,
        gradient: 0,
        iterations: 0,
        posts: texts.length,
        features: vocabulary.length,
      });
    }
    const fit = newtonCg(rows, vocabulary.length, y, lambda, tolerance, maxIterations);
    vocabulary.forEach((word, k) => weights.set(word, fit.w[k]!));
    return new BowLogReg(weights, fit.b, {
      lambda,
      objective: fit.objective,
      gradient: fit.gradient,
      iterations: fit.iterations,
      posts: texts.length,
      features: vocabulary.length,
    });
  }

  /** P(toxic | text). */
  probability(text: string): number {
    let z = this.bias;
    for (const word of distinctWords(text)) {
      z += this.weights.get(word) ?? 0;
    }
    return 1 / (1 + Math.exp(-z));
  }

  /** Code-point offsets of the words whose weight exceeds `threshold` (the rationale). */
  rationale(text: string, threshold: number): number[] {
    const out: number[] = [];
    for (const t of wordTokens(text)) {
      if ((this.weights.get(t.word) ?? -Infinity) > threshold) {
        for (let x = t.start; x < t.end; x++) {
          out.push(x);
        }
      }
    }
    return out;
  }
}

/** log(1 + eᵐ) without overflow. */
function softplus(m: number): number {
  return Math.max(m, 0) + Math.log1p(Math.exp(-Math.abs(m)));
}

/**
 * softplus(m + δ) − softplus(m), accurate when δ is small (no cancellation of two large values):
 * log1p(expm1(δ)·σ(m)).
 */
function softplusStep(m: number, delta: number): number {
  if (Math.abs(delta) > 1) return softplus(m + delta) - softplus(m);
  return Math.log1p(Math.expm1(delta) / (1 + Math.exp(-m)));
}

/**
 * Minimises F(w, b) = Σᵢ softplus(−yᵢ·(Σ_{k∈rowᵢ} w_k + b)) + (λ/2)‖w‖² by Newton-CG (see
 * {@linkcode BowLogReg}); θ = (w, b), the bias last.
 */
function newtonCg(
  rows: readonly Int32Array[],
  d: number,
  y: Float64Array,
  lambda: number,
  tolerance: number,
  maxIterations: number,
): { w: Float64Array; b: number; objective: number; gradient: number; iterations: number } {
  const n = rows.length, m = d + 1;
  // CSR copy of the rows
  const ptr = new Int32Array(n + 1);
  for (let i = 0; i < n; i++) ptr[i + 1] = ptr[i]! + rows[i]!.length;
  const idx = new Int32Array(ptr[n]!);
  for (let i = 0; i < n; i++) idx.set(rows[i]!, ptr[i]!);

  const theta = new Float64Array(m); // w then b
  const z = new Float64Array(n); // margins w·xᵢ + b
  const c = new Float64Array(n), h = new Float64Array(n), u = new Float64Array(n);
  const g = new Float64Array(m), p = new Float64Array(m), r = new Float64Array(m);
  const s = new Float64Array(m), q = new Float64Array(m), hq = new Float64Array(m);
  const diag = new Float64Array(m);

  // out = Xᵀ·v over the augmented design (a column of ones for the bias)
  const xtv = (v: Float64Array, out: Float64Array): void => {
    out.fill(0);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const vi = v[i]!;
      if (vi === 0) continue;
      sum += vi;
      for (let e = ptr[i]!; e < ptr[i + 1]!; e++) out[idx[e]!]! += vi;
    }
    out[d] = sum;
  };
  // out = X·θ' over the augmented design
  const xv = (t: Float64Array, out: Float64Array): void => {
    for (let i = 0; i < n; i++) {
      let acc = t[d]!;
      for (let e = ptr[i]!; e < ptr[i + 1]!; e++) acc += t[idx[e]!]!;
      out[i] = acc;
    }
  };
  const objective = (): number => {
    let f = 0;
    for (let k = 0; k < d; k++) f += theta[k]! * theta[k]!;
    f *= lambda / 2;
    for (let i = 0; i < n; i++) f += softplus(-y[i]! * z[i]!);
    return f;
  };
  const dot = (a: Float64Array, b: Float64Array, len = m): number => {
    let acc = 0;
    for (let k = 0; k < len; k++) acc += a[k]! * b[k]!;
    return acc;
  };

  // start from the best bias alone, log(n₊/n₋), with w = 0
  let positives = 0;
  for (let i = 0; i < n; i++) if (y[i]! > 0) positives++;
  theta[d] = Math.log(positives / (n - positives));
  z.fill(theta[d]!);
  let iterations = 0, gmax = Infinity;
  for (;;) {
    // gradient: Xᵀc + λ(w, 0), cᵢ = σ(zᵢ) − [yᵢ = 1] = −yᵢ / (1 + exp(yᵢ zᵢ))
    for (let i = 0; i < n; i++) c[i] = -y[i]! / (1 + Math.exp(y[i]! * z[i]!));
    xtv(c, g);
    for (let k = 0; k < d; k++) g[k]! += lambda * theta[k]!;
    gmax = 0;
    for (let k = 0; k < m; k++) gmax = Math.max(gmax, Math.abs(g[k]!));
    if (!Number.isFinite(gmax)) {
      throw new NumericalError(
        `BowLogReg.train: the gradient became ${gmax} after ${iterations} Newton iterations (lambda ${lambda})`,
      );
    }
    if (gmax <= tolerance) break;
    if (iterations >= maxIterations) {
      throw new NumericalError(
        `BowLogReg.train did not converge in ${maxIterations} Newton iterations: max |gradient| ${
          gmax.toExponential(3)
        } > tolerance ${tolerance} (lambda ${lambda}, ${n} posts, ${d} words)`,
      );
    }
    iterations++;
    // Hessian Xᵀ·diag(h)·X + λ(I, 0) with hᵢ = σ(zᵢ)(1 − σ(zᵢ)); Jacobi preconditioner diag(H)
    for (let i = 0; i < n; i++) {
      const e = Math.exp(-Math.abs(z[i]!));
      h[i] = e / ((1 + e) * (1 + e));
    }
    xtv(h, diag);
    for (let k = 0; k < d; k++) diag[k]! += lambda;
    for (let k = 0; k < m; k++) if (!(diag[k]! > 0)) diag[k] = 1;
    // out = H·v in one pass over the posts: uᵢ = hᵢ·(xᵢ·v), out = Xᵀu + λ(v_w, 0)
    const hessVec = (v: Float64Array, out: Float64Array): void => {
      for (let k = 0; k < d; k++) out[k] = lambda * v[k]!;
      const vb = v[d]!;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const lo = ptr[i]!, hi = ptr[i + 1]!;
        let acc = vb;
        for (let e = lo; e < hi; e++) acc += v[idx[e]!]!;
        acc *= h[i]!;
        sum += acc;
        for (let e = lo; e < hi; e++) out[idx[e]!]! += acc;
      }
      out[d] = sum;
    };
    // preconditioned CG for H p = −g to a residual of min(0.1, √‖g‖)·‖g‖ (superlinear forcing)
    const gNorm = Math.sqrt(dot(g, g));
    const eta = Math.min(0.1, Math.sqrt(gNorm)) * gNorm;
    p.fill(0);
    for (let k = 0; k < m; k++) {
      r[k] = -g[k]!;
      s[k] = r[k]! / diag[k]!;
      q[k] = s[k]!;
    }
    let rs = dot(r, s), rr = gNorm * gNorm;
    for (let it = 0; it < 2 * m + 50 && Math.sqrt(rr) > eta; it++) {
      hessVec(q, hq);
      const qhq = dot(q, hq);
      if (!(qhq > 0)) break; // round-off: keep the direction so far
      const alpha = rs / qhq;
      let rsNew = 0;
      rr = 0;
      for (let k = 0; k < m; k++) {
        p[k]! += alpha * q[k]!;
        const rk = (r[k]! -= alpha * hq[k]!), sk = (s[k] = rk / diag[k]!);
        rr += rk * rk;
        rsNew += rk * sk;
      }
      const beta = rsNew / rs;
      rs = rsNew;
      for (let k = 0; k < m; k++) q[k] = s[k]! + beta * q[k]!;
    }
    if (dot(p, p) === 0) { for (let k = 0; k < m; k++) p[k] = -g[k]! / diag[k]!; }
    // Armijo backtracking from the full Newton step; F(θ + t·p) − F(θ) summed term by term
    xv(p, u); // change of the margins per unit step
    const slope = dot(g, p), wp = dot(theta, p, d), pp = dot(p, p, d);
    let step = 1, accepted = false;
    for (let k = 0; k < 60; k++, step /= 2) {
      let change = lambda * (step * wp + (step * step * pp) / 2);
      for (let i = 0; i < n; i++) change += softplusStep(-y[i]! * z[i]!, -y[i]! * step * u[i]!);
      if (change <= 1e-4 * step * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      throw new NumericalError(
        `BowLogReg.train stalled after ${iterations} Newton iterations: no step along the Newton direction decreases the objective, max |gradient| ${
          gmax.toExponential(3)
        } > tolerance ${tolerance} (lambda ${lambda})`,
      );
    }
    for (let k = 0; k < m; k++) theta[k]! += step * p[k]!;
    xv(theta, z); // margins afresh, not updated, so the gradient is the returned solution's
  }
  return {
    w: theta.subarray(0, d),
    b: theta[d]!,
    objective: objective(),
    gradient: gmax,
    iterations,
  };
}
