/**
 * L-GreCo (Alimohammadi et al., MLSys 2024): per-layer compression levels chosen by a knapsack
 * dynamic programme so that the total compressed size is smallest while the total compression
 * error stays within a budget, usually the error of a uniform setting (α = 1: the same total error
 * as every layer at the default level). This file is the algorithm only, with no communication:
 *
 * - {@linkcode solveLgreco}: the DP over a discretised error axis, as the authors' hook runs it
 *   (LGrCo/L-GreCo `ResNet18/hooks/lgreco_hook.py` lines 540–601; the ResNet50, Transformer-XL
 *   and Transformer-LM copies are the same file);
 * - {@linkcode uniformBudget}: α × the total error of a uniform setting (lines 541–542);
 * - {@linkcode LgrecoSchedule} (and the pure {@linkcode lgrecoPlan}): the authors' schedule —
 *   uncompressed warm-up, windows of `adjustFreq` steps, gradients accumulated over the last
 *   `accIter` steps of each window, a solve at the first step of the next window (lines 451–475,
 *   500, 605).
 *
 * The candidate levels (PowerSGD ranks `floor(γ·r0) … ceil(β·r0)` in the authors' code, every
 * integer rank between) and the error and size measures are the caller's; the authors measure the
 * error of rank r as ‖P Qᵀ − G‖_F (the Frobenius norm, not its square) after 5 power iterations on
 * the accumulated gradient, and the size as r·(n + m) elements.
 *
 * **Discretisation** (as the authors, lines 548–549 and 562–568). With `B` buckets and budget `E`,
 * the bucket is `u = E / B` and candidate c of layer l costs `e[l][c] = min(max(ceil(err / u), 1),
 * B)` buckets: rounded up, at least one bucket even for a zero error, at most B. The DP admits a
 * choice when `Σ e ≤ B − 1` (the first layer's row is filled where `bucket > e`, so the top bucket
 * is never reached). Hence the chosen set's true error is `≤ u·(B − 1) < E`: it never exceeds the
 * budget. What the rounding may cost: every choice whose true error is `≤ E·(1 − L/B)` is admitted
 * (each layer rounds up by less than one bucket, plus the one-bucket floor), so the bytes returned
 * are at most the least bytes over choices with true error ≤ `E·(1 − L/B)` and at least the least
 * bytes over choices with true error ≤ E. A problem of L ≥ B layers admits nothing. With α = 1
 * the uniform setting itself is never admitted (its buckets sum to at least B), so the DP returns
 * a choice with strictly less error than uniform, and the cheapest such.
 *
 * @module
 */
import { quoteValue, ShapeError } from "../core/errors.ts";

/** Options of {@linkcode solveLgreco}. */
export interface LgrecoSolveOptions {
  /** Buckets of the discretised error axis (the authors' `DPBUCKETS`, default 10,000). */
  buckets?: number;
}

/** The choice {@linkcode solveLgreco} makes. */
export interface LgrecoSolution {
  /** The candidate index chosen for each layer. */
  choice: number[];
  /** Total compressed size of the choice: Σ bytes[l][choice[l]]. */
  bytes: number;
  /** Total true (not discretised) error of the choice: Σ errors[l][choice[l]]. */
  error: number;
  /**
   * Whether some choice fits the discretised budget. When none does, `choice` is the per-layer
   * least error (ties: fewer bytes, then the lower index) and `error` may exceed the budget.
   */
  feasible: boolean;
  /** The choice's discretised error, Σ e[l][choice[l]] in buckets (0 when the budget is 0). */
  usedBuckets: number;
  /** The bucket width `budget / buckets` (0 when the budget is 0). */
  bucketSize: number;
}

/** The authors' number of DP buckets (`DPBUCKETS`, lgreco_hook.py line 498). */
export const LGRECO_BUCKETS = 10_000;

const MAX_CELLS = 2 ** 30; // backpointer bytes at most (L × (B + 1) cells)

function fail(call: string, what: string, v: unknown, expected: string): never {
  throw new RangeError(`${call}: ${what} is ${quoteValue(v)}, expected ${expected}`);
}

/** Checks that `m` is a non-empty-rowed rectangular table of numbers; returns its row length. */
function checkTable(
  call: string,
  name: string,
  m: unknown,
  cols: number | undefined,
  ok: (x: number) => boolean,
  expected: string,
): number {
  if (!Array.isArray(m)) {
    throw new TypeError(`${call}: ${name} is ${quoteValue(m)}, expected an array of arrays`);
  }
  let c = cols;
  for (let l = 0; l < m.length; l++) {
    const row: unknown = m[l];
    if (!Array.isArray(row) && !ArrayBuffer.isView(row)) {
      throw new TypeError(`${call}: ${name}[${l}] is ${quoteValue(row)}, expected an array`);
    }
    const r = row as ArrayLike<unknown>;
    if (c === undefined) c = r.length;
    if (r.length !== c || c === 0) {
      throw new ShapeError(
        `${call}: ${name}[${l}] has ${r.length} candidates, expected ${
          c === 0 ? "at least 1" : `${c} as every row`
        }`,
      );
    }
    for (let j = 0; j < c; j++) {
      const x = r[j];
      if (typeof x !== "number" || !ok(x)) fail(call, `${name}[${l}][${j}]`, x, expected);
    }
  }
  return c ?? 0;
}

const ERROR_OK = (x: number) => x >= 0; // NaN fails; +Infinity means "never admissible"
const ERROR_EXPECTED = "a number ≥ 0 (Infinity allowed)";
const BYTES_OK = (x: number) => x >= 0 && x < Infinity;
const BYTES_EXPECTED = "a finite number ≥ 0";

/**
 * Chooses one candidate per layer so that the total bytes are least while the total error stays
 * within `budget`: the authors' knapsack DP over `buckets` error buckets, O(L·C·B) time, one
 * byte (or two) of backpointer per layer and bucket.
 *
 * `errors[l][c]` is candidate c's error on layer l (the authors: ‖C_c(G_l) − G_l‖_F; any additive
 * measure works), `bytes[l][c]` its compressed size; both L × C. The errors are discretised as the
 * module notes say (rounded up, at least one bucket each, admitted when Σ ≤ B − 1), so the
 * returned choice's true error is below the budget. Among the cheapest admitted choices the one
 * with the least discretised error is returned, and the DP keeps the lower candidate index on a
 * tie (as the authors' `argmin` and strict `<`). A budget of 0 admits only zero-error candidates
 * (the cheapest per layer; the authors divide by zero there). When nothing is admitted the result
 * has `feasible: false` and the least-error choice; the authors' hook means to keep its previous
 * ranks then (its `if total_error <= DPBUCKETS` guard, line 586, never fails, so it back-tracks
 * from an empty cell), which {@linkcode LgrecoSchedule} does.
 *
 * @example Two layers, three ranks each
 * ```ts
 * import { solveLgreco, uniformBudget } from "./lgreco.ts";
 * const errors = [[9, 4, 1], [3, 2, 1.5]]; // falls with the rank
 * const bytes = [[100, 200, 400], [10, 20, 40]];
 * const budget = uniformBudget(errors, 1); // both layers at the middle rank: 4 + 2 = 6
 * const s = solveLgreco(errors, bytes, budget);
 * // rounding up keeps the total strictly below the budget, so the uniform 4 + 2 is out; the
 * // cheapest choice below 6 keeps the costly layer 0 at rank 1: 4 + 1.5
 * if (s.choice.join() !== "1,2" || s.bytes !== 240 || s.error !== 5.5) throw new Error();
 * const loose = solveLgreco(errors, bytes, 13); // 9 + 3 fits
 * if (loose.choice.join() !== "0,0" || loose.bytes !== 110) throw new Error();
 * ```
 */
export function solveLgreco(
  errors: readonly (readonly number[])[],
  bytes: readonly (readonly number[])[],
  budget: number,
  options: LgrecoSolveOptions = {},
): LgrecoSolution {
  const call = "solveLgreco";
  const C = checkTable(call, "errors", errors, undefined, ERROR_OK, ERROR_EXPECTED);
  if (!Array.isArray(bytes) || bytes.length !== errors.length) {
    throw new ShapeError(
      `${call}: bytes has ${
        Array.isArray(bytes) ? bytes.length : quoteValue(bytes)
      } layers, expected ${errors.length} as errors`,
    );
  }
  checkTable(call, "bytes", bytes, errors.length ? C : undefined, BYTES_OK, BYTES_EXPECTED);
  if (typeof budget !== "number" || !(budget >= 0 && budget < Infinity)) {
    fail(call, "budget", budget, "a finite number ≥ 0");
  }
  const B = options.buckets ?? LGRECO_BUCKETS;
  if (!Number.isSafeInteger(B) || B < 1) fail(call, "buckets", B, "an integer ≥ 1");
  const L = errors.length;
  if (L * (B + 1) > MAX_CELLS) {
    throw new RangeError(
      `${call}: ${L} layers × ${B + 1} buckets exceed ${MAX_CELLS} DP cells; use fewer buckets`,
    );
  }
  const choice = new Array<number>(L).fill(0);
  const u = budget / B;
  if (!(u > 0)) return zeroBudget(errors, bytes, choice);

  // e[l][c]: buckets, rounded up, clamped to [1, B] (lgreco_hook.py line 549).
  const e = new Int32Array(L * C);
  for (let l = 0; l < L; l++) {
    const er = errors[l]!;
    for (let c = 0; c < C; c++) {
      const q = Math.ceil(er[c]! / u);
      e[l * C + c] = q < 1 ? 1 : q > B ? B : q;
    }
  }
  const W = B + 1;
  const back = C <= 256
    ? new Uint8Array(L * W)
    : C <= 65536
    ? new Uint16Array(L * W)
    : new Uint32Array(L * W);
  // prev[b]: least bytes over the layers so far with Σ e ≤ b − 1; before layer 0, 0 for b ≥ 1.
  let prev = new Float64Array(W), cur = new Float64Array(W);
  prev[0] = Infinity;
  let lo = 1; // first finite entry of prev (prev is non-increasing in b)
  const cost = new Float64Array(C);
  for (let l = 0; l < L && lo <= B; l++) {
    cur.fill(Infinity);
    const br = bytes[l]!, off = l * W;
    for (let c = 0; c < C; c++) cost[c] = br[c]!;
    let next = W;
    for (let c = 0; c < C; c++) {
      const ec = e[l * C + c]!, s = cost[c]!, start = lo + ec;
      if (start > B) continue;
      if (start < next) next = start;
      // cur[b] = min_c prev[b − e_c] + s_c; strict < keeps the lower index on a tie.
      for (let b = start, a = lo; b <= B; b++, a++) {
        const v = prev[a]! + s;
        if (v < cur[b]!) {
          cur[b] = v;
          back[off + b] = c;
        }
      }
    }
    lo = next;
    const t = prev;
    prev = cur;
    cur = t;
  }
  if (lo > B) return leastError(errors, bytes, e, C, u, choice);
  // The least bytes; among equals the fewest buckets (np.argmin's first index, line 583).
  const best = prev[B]!;
  let b = lo;
  while (prev[b]! !== best) b++;
  const used = b - 1;
  for (let l = L - 1; l >= 0; l--) {
    const c = back[l * W + b]!;
    choice[l] = c;
    b -= e[l * C + c]!;
  }
  return { ...totals(errors, bytes, choice), feasible: true, usedBuckets: used, bucketSize: u };
}

function totals(
  errors: readonly (readonly number[])[],
  bytes: readonly (readonly number[])[],
  choice: readonly number[],
): { choice: number[]; bytes: number; error: number } {
  let err = 0, size = 0;
  for (let l = 0; l < choice.length; l++) {
    err += errors[l]![choice[l]!]!;
    size += bytes[l]![choice[l]!]!;
  }
  return { choice: [...choice], bytes: size, error: err };
}

/** Per layer: least error, then fewest bytes, then the lower index. */
function argLeast(er: readonly number[], br: readonly number[], exact: boolean): number {
  let k = -1;
  for (let c = 0; c < er.length; c++) {
    if (exact && er[c] !== 0) continue;
    if (k < 0 || er[c]! < er[k]! || (er[c] === er[k] && br[c]! < br[k]!)) k = c;
  }
  return k;
}

function leastError(
  errors: readonly (readonly number[])[],
  bytes: readonly (readonly number[])[],
  e: Int32Array,
  C: number,
  u: number,
  choice: number[],
): LgrecoSolution {
  let used = 0;
  for (let l = 0; l < choice.length; l++) {
    choice[l] = argLeast(errors[l]!, bytes[l]!, false);
    used += e[l * C + choice[l]!]!;
  }
  return { ...totals(errors, bytes, choice), feasible: false, usedBuckets: used, bucketSize: u };
}

/** Budget 0: only zero-error candidates are admissible, and the layers separate. */
function zeroBudget(
  errors: readonly (readonly number[])[],
  bytes: readonly (readonly number[])[],
  choice: number[],
): LgrecoSolution {
  let feasible = true;
  for (let l = 0; l < choice.length; l++) {
    const k = argLeast(errors[l]!, bytes[l]!, true);
    if (k < 0) feasible = false;
    choice[l] = k;
  }
  if (!feasible) {
    for (let l = 0; l < choice.length; l++) choice[l] = argLeast(errors[l]!, bytes[l]!, false);
  }
  return { ...totals(errors, bytes, choice), feasible, usedBuckets: 0, bucketSize: 0 };
}

/**
 * The error budget `α × Σ_l errors[l][uniform[l]]`: α times the total error of the uniform
 * setting (the authors: every layer at the default rank r0, α = 1 by default; lines 541–542).
 * `uniform` is one candidate index for every layer, or one per layer.
 *
 * @example
 * ```ts
 * import { uniformBudget } from "./lgreco.ts";
 * const errors = [[9, 4, 1], [3, 2, 1.5]];
 * if (uniformBudget(errors, 1) !== 6 || uniformBudget(errors, [0, 2], 0.5) !== 5.25) {
 *   throw new Error();
 * }
 * ```
 */
export function uniformBudget(
  errors: readonly (readonly number[])[],
  uniform: number | readonly number[],
  alpha = 1,
): number {
  const call = "uniformBudget";
  const C = checkTable(call, "errors", errors, undefined, ERROR_OK, ERROR_EXPECTED);
  const idx = checkUniform(call, uniform, errors.length, C);
  if (typeof alpha !== "number" || !(alpha >= 0 && alpha < Infinity)) {
    fail(call, "alpha", alpha, "a finite number ≥ 0");
  }
  let sum = 0;
  for (let l = 0; l < errors.length; l++) sum += errors[l]![idx[l]!]!;
  if (sum === Infinity) {
    throw new RangeError(`${call}: the uniform setting's total error is Infinity, expected finite`);
  }
  return alpha * sum;
}

function checkUniform(
  call: string,
  uniform: unknown,
  L: number,
  C: number,
  name = "uniform",
): number[] {
  if (L === 0) return [];
  const isIndex = (x: unknown) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x < C;
  if (Array.isArray(uniform)) {
    if (uniform.length !== L) {
      throw new ShapeError(`${call}: ${name} has ${uniform.length} entries, expected ${L} layers`);
    }
    uniform.forEach((x, l) => {
      if (!isIndex(x)) fail(call, `${name}[${l}]`, x, `a candidate index 0 … ${C - 1}`);
    });
    return uniform as number[];
  }
  if (!isIndex(uniform)) fail(call, name, uniform, `a candidate index 0 … ${C - 1}`);
  return new Array<number>(L).fill(uniform as number);
}

/** The schedule's settings, named as the authors' `PowerSGDState` fields; defaults are theirs. */
export interface LgrecoScheduleOptions {
  /**
   * The uniform setting whose total error, times `alpha`, is the budget: a candidate index for
   * every layer or one per layer (the authors: the default rank r0). Also the choice in force
   * until the first solve (the authors start every layer at r0, line 484) unless `initial` is set.
   */
  uniform: number | readonly number[];
  /** Uncompressed steps first (the authors' `start_powerSGD_iter`, default 1000). */
  warmup?: number;
  /** Steps per adjustment window (`adjust_freq`, default 100). */
  adjustFreq?: number;
  /** Steps at the end of each window whose gradients are accumulated (`acc_iter`, 10). */
  accIter?: number;
  /** Budget factor over the uniform setting's error (`adjust_alpha`, default 1). */
  alpha?: number;
  /** DP buckets (`DPBUCKETS`, default 10,000). */
  buckets?: number;
  /** The choice in force before the first solve (default: `uniform`). */
  initial?: readonly number[];
}

/** What one step does under the schedule ({@linkcode lgrecoPlan}). */
export interface LgrecoStepPlan {
  /** The step, counted from 0 over all training steps (warm-up included). */
  step: number;
  /** False during warm-up: a plain (uncompressed) all-reduce. */
  compressed: boolean;
  /** The adjustment window of a compressed step (`floor((step − warmup) / adjustFreq)`), else -1. */
  window: number;
  /**
   * Rank 0 solves at the start of this step, before compressing, on the gradients accumulated in
   * the window just ended; every rank compresses this step with the new choice. (The authors'
   * hook solves while reducing DDP bucket 0, the last of a step, so there the other buckets take
   * the new ranks a step later; it also re-draws the resized Q factors, lines 609–630.)
   */
  solve: boolean;
  /** Rank 0 hands this step's per-layer gradients in (after the solve when both hold). */
  accumulate: boolean;
}

/** A settled schedule: every option present and checked. */
export type LgrecoScheduleSettings = Required<Omit<LgrecoScheduleOptions, "initial">>;

function scheduleSettings(call: string, o: LgrecoScheduleOptions): LgrecoScheduleSettings {
  const s = {
    uniform: o.uniform,
    warmup: o.warmup ?? 1000,
    adjustFreq: o.adjustFreq ?? 100,
    accIter: o.accIter ?? 10,
    alpha: o.alpha ?? 1,
    buckets: o.buckets ?? LGRECO_BUCKETS,
  };
  const int = (x: number) => Number.isSafeInteger(x);
  if (!int(s.warmup) || s.warmup < 0) fail(call, "warmup", s.warmup, "an integer ≥ 0");
  if (!int(s.adjustFreq) || s.adjustFreq < 1) {
    fail(call, "adjustFreq", s.adjustFreq, "an integer ≥ 1");
  }
  if (!int(s.accIter) || s.accIter < 1 || s.accIter > s.adjustFreq) {
    fail(call, "accIter", s.accIter, `an integer 1 … adjustFreq (${s.adjustFreq})`);
  }
  if (typeof s.alpha !== "number" || !(s.alpha >= 0 && s.alpha < Infinity)) {
    fail(call, "alpha", s.alpha, "a finite number ≥ 0");
  }
  if (!int(s.buckets) || s.buckets < 1) fail(call, "buckets", s.buckets, "an integer ≥ 1");
  return s;
}

/**
 * What step `step` does under the authors' schedule (lgreco_hook.py lines 364, 453–463, 500):
 * with k = step − warmup, steps k < 0 are uncompressed; compressed steps accumulate when
 * `k mod adjustFreq ≥ adjustFreq − accIter` (the last accIter steps of each window) and solve
 * when k > 0 and `k mod adjustFreq = 0` (the first step of every window but the first).
 *
 * @example
 * ```ts
 * import { lgrecoPlan } from "./lgreco.ts";
 * const o = { uniform: 0, warmup: 1000, adjustFreq: 100, accIter: 10 };
 * const p = lgrecoPlan(1090, o), q = lgrecoPlan(1100, o);
 * if (!p.accumulate || p.solve || !q.solve || q.accumulate || lgrecoPlan(999, o).compressed) {
 *   throw new Error();
 * }
 * ```
 */
export function lgrecoPlan(step: number, options: LgrecoScheduleOptions): LgrecoStepPlan {
  const s = scheduleSettings("lgrecoPlan", options);
  if (!Number.isSafeInteger(step) || step < 0) fail("lgrecoPlan", "step", step, "an integer ≥ 0");
  return planOf(step, s);
}

function planOf(step: number, s: LgrecoScheduleSettings): LgrecoStepPlan {
  const k = step - s.warmup;
  if (k < 0) return { step, compressed: false, window: -1, solve: false, accumulate: false };
  const r = k % s.adjustFreq;
  return {
    step,
    compressed: true,
    window: Math.floor(k / s.adjustFreq),
    solve: k > 0 && r === 0,
    accumulate: r >= s.adjustFreq - s.accIter,
  };
}

/** Candidate `candidate`'s error and compressed size on a layer's accumulated gradient. */
export type LgrecoMeasure = (
  layer: number,
  candidate: number,
  accumulated: Float64Array,
) => { error: number; bytes: number };

/** What {@linkcode LgrecoSchedule.solve} found and did. */
export interface LgrecoAdjustment {
  /** The step it ran at. */
  step: number;
  /** α × the uniform setting's total error on the accumulated gradients. */
  budget: number;
  /** The measured tables, layers × candidates. */
  errors: number[][];
  /** The measured sizes, layers × candidates. */
  bytes: number[][];
  /** The DP's answer. */
  solution: LgrecoSolution;
  /** The choice now in force: the solution's when feasible, else the previous one. */
  choice: number[];
}

/**
 * The authors' L-GreCo schedule as an explicit state machine over training steps (no
 * communication). Every rank keeps one to know what each step does ({@linkcode plan}); rank 0
 * alone hands in gradients ({@linkcode accumulate}) and solves ({@linkcode solve}), then the
 * caller broadcasts the new choice (the authors' `broadcast_object_list` from rank 0, line 607)
 * and the other ranks adopt it with {@linkcode adopt}. Then {@linkcode advance} to the next step.
 *
 * Per step k = step − warmup: k < 0, plain all-reduce; else compress with {@linkcode choice};
 * when `k mod adjustFreq ≥ adjustFreq − accIter`, rank 0 adds each layer's gradient — what it is
 * about to compress, its local gradient with the error-feedback memory added, as the authors'
 * hook does — into a per-layer float64 sum; when k > 0 and `k mod adjustFreq = 0`, before
 * compressing, rank 0 measures every candidate on every layer's sum, solves with the budget α ×
 * the uniform setting's error, keeps the new choice when the DP found one (else the previous one,
 * as the authors' guard intends) and clears the sums. The authors scale each accumulated
 * gradient by δ/acc_iter (δ = 0.01); a common factor scales every error and the budget alike, so
 * the choice does not depend on it, and the sum here is unscaled.
 *
 * @example Two layers, candidates 0 (coarse) and 1 (fine), a window of 4 steps
 * ```ts
 * import { LgrecoSchedule } from "./lgreco.ts";
 * const o = { uniform: 1, warmup: 2, adjustFreq: 4, accIter: 2, alpha: 2 };
 * const s = new LgrecoSchedule(2, 2, o);
 * const solvedAt: number[] = [];
 * for (let t = 0; t < 8; t++) {
 *   const plan = s.plan();
 *   if (plan.solve) {
 *     solvedAt.push(t);
 *     // the coarse level halves layer 0's gradient and zeroes layer 1's; bytes = level + 1
 *     s.solve((layer, c, g) => {
 *       const n = Math.hypot(...g); // g: the sum of steps 4 and 5
 *       return { error: c === 1 ? 0.1 * n : layer === 0 ? 0.25 * n : n, bytes: c + 1 };
 *     });
 *   }
 *   if (plan.accumulate) for (let l = 0; l < 2; l++) s.accumulate(l, [1, 1]);
 *   s.advance();
 * }
 * // budget α·(0.1 + 0.1)·|g| = 0.4·|g| with α = 2: layer 0 goes coarse (0.25 + 0.1), layer 1 not
 * if (solvedAt.join() !== "6" || s.choice.join() !== "0,1") throw new Error();
 * ```
 */
export class LgrecoSchedule {
  /** Layers. */
  readonly layers: number;
  /** Candidate levels per layer. */
  readonly candidates: number;
  /** The settled options. */
  readonly settings: Readonly<LgrecoScheduleSettings>;
  #uniform: number[];
  #choice: number[];
  #step = 0;
  #sums: (Float64Array | undefined)[];
  #handed: Float64Array; // last step each layer was handed in (-1: none)
  #solvedAt = -1;

  /**
   * Creates the schedule at step 0.
   * @param layers Compressed layers (L ≥ 1).
   * @param candidates Candidate levels per layer (C ≥ 1), as the measure callback knows them.
   * @param options The uniform setting and the authors' schedule parameters.
   */
  constructor(layers: number, candidates: number, options: LgrecoScheduleOptions) {
    const call = "LgrecoSchedule";
    if (!Number.isSafeInteger(layers) || layers < 1) fail(call, "layers", layers, "an integer ≥ 1");
    if (!Number.isSafeInteger(candidates) || candidates < 1) {
      fail(call, "candidates", candidates, "an integer ≥ 1");
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError(`${call}: options is ${quoteValue(options)}, expected an object`);
    }
    this.layers = layers;
    this.candidates = candidates;
    this.settings = Object.freeze(scheduleSettings(call, options));
    this.#uniform = [...checkUniform(call, options.uniform, layers, candidates)];
    if (options.initial !== undefined) {
      if (!Array.isArray(options.initial)) {
        fail(call, "initial", options.initial, `an array of ${layers} candidate indices`);
      }
      this.#choice = [...checkUniform(call, options.initial, layers, candidates, "initial")];
    } else this.#choice = [...this.#uniform];
    this.#sums = new Array(layers).fill(undefined);
    this.#handed = new Float64Array(layers).fill(-1);
  }

  /** The current step (0-based over all training steps). */
  get step(): number {
    return this.#step;
  }

  /** The candidate index per layer in force (a copy). */
  get choice(): number[] {
    return [...this.#choice];
  }

  /** What the current step does. */
  plan(): LgrecoStepPlan {
    return planOf(this.#step, this.settings);
  }

  /**
   * Adds layer `layer`'s gradient of this step into its sum (rank 0; an accumulation step only,
   * once per layer and step, the same length every time within a window).
   */
  accumulate(layer: number, gradient: ArrayLike<number>): void {
    const call = "LgrecoSchedule.accumulate";
    this.#checkLayer(call, layer);
    if (!this.plan().accumulate) {
      throw new RangeError(
        `${call}: step ${this.#step} is not an accumulation step (the last ${this.settings.accIter} of each ${this.settings.adjustFreq}-step window after ${this.settings.warmup} warm-up steps)`,
      );
    }
    if (this.plan().solve && this.#solvedAt !== this.#step) {
      throw new RangeError(
        `${call}: step ${this.#step} solves first (on the window just ended); call solve() before accumulate()`,
      );
    }
    if (this.#handed[layer] === this.#step) {
      throw new RangeError(`${call}: layer ${layer} was already handed in at step ${this.#step}`);
    }
    if (gradient === null || typeof gradient !== "object" || typeof gradient.length !== "number") {
      throw new TypeError(`${call}: gradient is ${quoteValue(gradient)}, expected an array`);
    }
    let sum = this.#sums[layer];
    if (sum === undefined) sum = this.#sums[layer] = new Float64Array(gradient.length);
    if (sum.length !== gradient.length) {
      throw new ShapeError(
        `${call}: layer ${layer}'s gradient has ${gradient.length} elements, expected ${sum.length} as before in this window`,
      );
    }
    for (let i = 0; i < sum.length; i++) sum[i]! += gradient[i]!;
    this.#handed[layer] = this.#step;
  }

  /** Layer `layer`'s sum so far in this window (a copy), or undefined before its first hand-in. */
  accumulated(layer: number): Float64Array | undefined {
    this.#checkLayer("LgrecoSchedule.accumulated", layer);
    return this.#sums[layer]?.slice();
  }

  /**
   * Measures every candidate on every layer's sum, solves and clears the sums (rank 0, at a solve
   * step, once). Broadcast the returned `choice` to the other ranks.
   */
  solve(measure: LgrecoMeasure): LgrecoAdjustment {
    const call = "LgrecoSchedule.solve";
    if (!this.plan().solve) {
      throw new RangeError(
        `${call}: step ${this.#step} is not a solve step (the first of each ${this.settings.adjustFreq}-step window after the first, from step ${this.settings.warmup})`,
      );
    }
    if (this.#solvedAt === this.#step) {
      throw new RangeError(`${call}: step ${this.#step} was already solved`);
    }
    if (typeof measure !== "function") {
      throw new TypeError(`${call}: measure is ${quoteValue(measure)}, expected a function`);
    }
    const errors: number[][] = [], bytes: number[][] = [];
    for (let l = 0; l < this.layers; l++) {
      const sum = this.#sums[l];
      if (sum === undefined) {
        throw new RangeError(`${call}: layer ${l} had no gradient handed in during the window`);
      }
      const er: number[] = [], br: number[] = [];
      for (let c = 0; c < this.candidates; c++) {
        const m = measure(l, c, sum);
        const where = `measure(${l}, ${c})`;
        if (m === null || typeof m !== "object") fail(call, where, m, "{ error, bytes }");
        if (typeof m.error !== "number" || !ERROR_OK(m.error)) {
          fail(call, `${where}.error`, m.error, ERROR_EXPECTED);
        }
        if (typeof m.bytes !== "number" || !BYTES_OK(m.bytes)) {
          fail(call, `${where}.bytes`, m.bytes, BYTES_EXPECTED);
        }
        er.push(m.error);
        br.push(m.bytes);
      }
      errors.push(er);
      bytes.push(br);
    }
    const budget = uniformBudget(errors, this.#uniform, this.settings.alpha);
    const solution = solveLgreco(errors, bytes, budget, { buckets: this.settings.buckets });
    if (solution.feasible) this.#choice = [...solution.choice];
    this.#sums.fill(undefined);
    this.#solvedAt = this.#step;
    return { step: this.#step, budget, errors, bytes, solution, choice: this.choice };
  }

  /** Sets the choice in force (the other ranks, with the choice rank 0 broadcast). */
  adopt(choice: readonly number[]): void {
    const call = "LgrecoSchedule.adopt";
    if (!Array.isArray(choice)) fail(call, "choice", choice, `an array of ${this.layers} indices`);
    this.#choice = [...checkUniform(call, choice, this.layers, this.candidates, "choice")];
  }

  /** Moves to the next step. */
  advance(): void {
    this.#step++;
  }

  #checkLayer(call: string, layer: number): void {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.layers) {
      fail(call, "layer", layer, `a layer index 0 … ${this.layers - 1}`);
    }
  }
}
