// The training kernels of the C library (ffi/cpu/train.c) against their ts references, on fresh
// seeded random inputs of awkward shapes (1, odd primes, sizes that are no multiple of the vector
// width or of the GEMM tiles, grouped-query heads), and their refusals of bad shapes: in the
// TypeScript wrappers (errors naming the argument) and in the C entry points themselves (status
// code and lk_last_error message, called directly so that the wrappers' checks are bypassed).
// Every test is ignored where the cpu library is not built. Replay a failure with LMKIT_SEED.
//
// Each comparison bounds two errors of got against want (in f64):
//   rel = ‖got − want‖₂ / ‖ref‖₂   and   max = ‖got − want‖∞ / ‖ref‖∞,
// where ref is want, or, for sums that cancel (GEMM), the sizes of the terms (|A|·|B|). The worst
// of each per op is printed at the end of its test.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { check, cpu, cpuLibrary, libraryInfo, Status } from "../../ffi/mod.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { gemm, gemmRef } from "../../lib/kernels/gemm.ts";
import { rmsNormBackward, rmsNormForward } from "../../lib/kernels/rmsnorm.ts";
import { applyRope } from "../../lib/kernels/rope.ts";
import { attentionBackward } from "../../lib/kernels/attention.ts";
import { swigluBackward } from "../../lib/kernels/activation.ts";
import { embeddingBackward } from "../../lib/kernels/embedding.ts";
import { crossEntropy, IGNORE_TARGET } from "../../lib/kernels/cross_entropy.ts";
import { type AdamWStep, adamwStep } from "../../lib/kernels/adamw.ts";
import { freshSeed, randn } from "../_util.ts";

const loaded = cpuLibrary();
const ignore = loaded.lib === null;
if (ignore) console.warn(`train_ops_test.ts: cpu tests ignored: ${loaded.reason}`);
const blas = !ignore && libraryInfo(loaded.lib!).blas !== null;
const CPU = { backend: "cpu" } as const, TS = { backend: "ts" } as const;

type Num = ArrayLike<number>;

/** Tolerances of {@linkcode close}: bounds on rel and max (see the top of the file). */
interface Tol {
  rel: number;
  max: number;
}

const worst = new Map<string, { rel: number; max: number; abs: number }>();

/** Asserts rel ≤ tol.rel and max ≤ tol.max for got against want (ref: the norms' reference). */
function close(op: string, got: Num, want: Num, tol: Tol, at: string, ref: Num = want): void {
  assertEquals(got.length, want.length, `${at}: length`);
  let d2 = 0, r2 = 0, dmax = 0, rmax = 0, worstAt = -1;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!, r = Math.abs(ref[i]!);
    if (Number.isNaN(g) || Number.isNaN(w)) {
      throw new Error(`${op} ${at}: NaN at ${i}: got ${g}, want ${w}`);
    }
    const d = Math.abs(g - w);
    d2 += d * d;
    r2 += r * r;
    if (d > dmax) [dmax, worstAt] = [d, i];
    if (r > rmax) rmax = r;
  }
  const rel = r2 > 0 ? Math.sqrt(d2 / r2) : d2 > 0 ? Infinity : 0;
  const max = rmax > 0 ? dmax / rmax : dmax > 0 ? Infinity : 0;
  const w = worst.get(op) ?? { rel: 0, max: 0, abs: 0 };
  worst.set(op, {
    rel: Math.max(w.rel, rel),
    max: Math.max(w.max, max),
    abs: Math.max(w.abs, dmax),
  });
  if (!(rel <= tol.rel) || !(max <= tol.max)) {
    throw new Error(
      `${op} ${at}: relative L2 error ${rel.toExponential(2)} (tolerance ${tol.rel}), max-abs ` +
        `${dmax.toExponential(2)} = ${max.toExponential(2)} of the largest reference (tolerance ` +
        `${tol.max}); worst element ${worstAt}: got ${got[worstAt]}, want ${want[worstAt]}`,
    );
  }
}

/** Prints the worst errors measured for each op whose name starts with `prefix`. */
function report(prefix: string): void {
  for (const [op, w] of worst) {
    if (!op.startsWith(prefix)) continue;
    console.log(
      `  ${op}: worst relative L2 ${w.rel.toExponential(2)}, worst max-abs ${
        w.abs.toExponential(2)
      } (${w.max.toExponential(2)} of the largest reference)`,
    );
  }
}

const abs = (a: Float32Array): Float32Array => a.map(Math.abs);
const copy = (m: Matrix): Matrix => new Matrix(m.rows, m.cols, m.data.slice());

// ---- gemm ----------------------------------------------------------------------------------

/** f32 sums over k of up to ~2000 terms against f64 ones, relative to the terms' sizes. */
const GEMM_TOL: Tol = { rel: 1e-6, max: 2e-6 };

/** One gemm case in the four transpose combinations, overwriting and accumulating. */
function gemmCase(rng: Rng, seed: number, m: number, k: number, n: number): void {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const at = `seed ${seed} m=${m} k=${k} n=${n} transA=${transA} transB=${transB}`;
      const a = transA ? randn(rng, k, m) : randn(rng, m, k);
      const b = transB ? randn(rng, n, k) : randn(rng, k, n);
      const want = new Float32Array(m * n), mag = new Float32Array(m * n);
      gemmRef(a.data, b.data, want, [m, k, n], transA, transB, 0);
      gemmRef(abs(a.data), abs(b.data), mag, [m, k, n], transA, transB, 0);
      const got = gemm(a, b, { ...CPU, transA, transB });
      assertEquals([got.rows, got.cols], [m, n], at);
      close("gemm", got.data, want, GEMM_TOL, `${at} beta=0`, mag);
      // β = 1: added to an existing C (dW += dYᵀ·X), which is returned
      const c0 = randn(rng, m, n), acc = copy(c0), wantAcc = c0.data.slice();
      gemmRef(a.data, b.data, wantAcc, [m, k, n], transA, transB, 1);
      const back = gemm(a, b, { ...CPU, transA, transB, accumulate: acc });
      assert(back === acc, `${at}: accumulate returns its matrix`);
      const magAcc = mag.map((x, i) => x + Math.abs(c0.data[i]!));
      close("gemm", acc.data, wantAcc, GEMM_TOL, `${at} beta=1`, magAcc);
    }
  }
}

Deno.test({
  name: "gemm cpu matches ts in all four transpose combinations, overwriting and accumulating",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    // tiles: MR 8 (6 without AVX-512) rows, NR 32 (16) columns, KC 256, MC 128, NC 2048
    const shapes = [
      [1, 1, 1],
      [1, 7, 1],
      [1, 13, 37],
      [37, 1, 13],
      [7, 13, 37],
      [13, 37, 7],
      [37, 257, 13], // k crosses a KC block
      [17, 521, 19], // two KC blocks and a remainder
      [131, 37, 33], // m crosses MC, n crosses NR
      [9, 19, 2053], // n crosses NC
      [3, 0, 5], // k = 0: C = 0 (β = 0) or unchanged (β = 1)
      [0, 5, 3],
      [5, 3, 0],
    ];
    for (const [m, k, n] of shapes as [number, number, number][]) gemmCase(rng, seed, m, k, n);
    report("gemm");
  },
});

Deno.test({
  name: "gemm cpu with β = 0 overwrites every element of C (C starts as NaN)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cpu();
    for (const [m, k, n] of [[1, 1, 1], [7, 13, 37], [37, 0, 13], [131, 257, 33]] as const) {
      for (const [ta, tb] of [[0, 0], [1, 0], [0, 1], [1, 1]] as const) {
        const at = `seed ${seed} m=${m} k=${k} n=${n} trans_a=${ta} trans_b=${tb}`;
        const a = rng.normalArray(m * k), b = rng.normalArray(k * n);
        const c = new Float32Array(m * n).fill(NaN);
        check(lib, lib.lk_cpu_gemm_f32(a, a.length, b, b.length, c, c.length, m, k, n, ta, tb, 0));
        const want = new Float32Array(m * n), mag = new Float32Array(m * n);
        gemmRef(a, b, want, [m, k, n], ta === 1, tb === 1, 0);
        gemmRef(abs(a), abs(b), mag, [m, k, n], ta === 1, tb === 1, 0);
        close("gemm", c, want, GEMM_TOL, at, mag);
      }
    }
  },
});

/** op(A)·op(B) at (i, j) in f64, and the sizes of its terms Σ|a|·|b|. */
function gemmAt(
  a: Float32Array,
  b: Float32Array,
  [m, k, n]: [number, number, number],
  ta: boolean,
  tb: boolean,
  i: number,
  j: number,
): [number, number] {
  let s = 0, mag = 0;
  for (let p = 0; p < k; p++) {
    const t = (ta ? a[p * m + i]! : a[i * k + p]!) * (tb ? b[j * k + p]! : b[p * n + j]!);
    s += t;
    mag += Math.abs(t);
  }
  return [s, mag];
}

Deno.test({
  name: "gemm cpu through OpenBLAS (2^27 multiply-adds or more) matches ts and the own kernel",
  ignore: ignore || !blas,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cpu();
    const [m, k, n] = [9, 3643, 4099]; // 9·3643·4099 ≥ 2^27 and m ≥ 8: the BLAS path
    // the f64 reference at 400 sampled elements (the corners included): the whole product in
    // TypeScript would take seconds
    const idx = [0, n - 1, (m - 1) * n, m * n - 1];
    while (idx.length < 400) idx.push(rng.int(m * n));
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const at = `seed ${seed} m=${m} k=${k} n=${n} transA=${transA} transB=${transB}`;
        const a = transA ? randn(rng, k, m) : randn(rng, m, k);
        const b = transB ? randn(rng, n, k) : randn(rng, k, n);
        const c0 = randn(rng, m, n);
        const ref = idx.map((e) =>
          gemmAt(a.data, b.data, [m, k, n], transA, transB, (e / n) | 0, e % n)
        );
        const got = gemm(a, b, { ...CPU, transA, transB });
        const acc = gemm(a, b, { ...CPU, transA, transB, accumulate: copy(c0) });
        close(
          "gemm (OpenBLAS)",
          idx.map((e) => got.data[e]!),
          ref.map((r) => r[0]),
          GEMM_TOL,
          `${at} beta=0`,
          ref.map((r) => r[1]),
        );
        close(
          "gemm (OpenBLAS)",
          idx.map((e) => acc.data[e]!),
          ref.map((r, i) => r[0] + c0.data[idx[i]!]!),
          GEMM_TOL,
          `${at} beta=1`,
          ref.map((r, i) => r[1] + Math.abs(c0.data[idx[i]!]!)),
        );
        // every element against the project's own kernel (itself checked against ts above)
        lib.lk_cpu_set_blas(0);
        let own: Matrix;
        try {
          own = gemm(a, b, { ...CPU, transA, transB });
        } finally {
          lib.lk_cpu_set_blas(1);
        }
        close("gemm (OpenBLAS vs own kernel)", got.data, own.data, { rel: 3e-6, max: 5e-6 }, at);
      }
    }
    report("gemm (");
  },
});

// ---- rmsnorm -------------------------------------------------------------------------------

/** cpu: f64 sum of squares, f32 elsewhere (mean of g∘x̂ rounded to f32); ts: f64 throughout. */
const RMS_TOL: Tol = { rel: 1e-6, max: 2e-6 };

/**
 * The sizes of the terms of rmsNorm's backward: dx = rstd·(g − x̂·mean(g∘x̂)) cancels where x̂² ≈ 1
 * (cols = 1), so dx is compared relative to rstd·(|g| + |x̂|·mean|g∘x̂|); dw's terms are |dy∘x̂|.
 */
function rmsMag(
  dy: Matrix,
  x: Matrix,
  w: Float32Array,
  rstd: Float32Array,
): { dx: Float64Array; dw: Float64Array } {
  const { rows, cols } = x, dx = new Float64Array(rows * cols), dw = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols, s = rstd[r]!;
    let sum = 0;
    for (let i = 0; i < cols; i++) sum += Math.abs(dy.data[o + i]! * w[i]! * x.data[o + i]! * s);
    for (let i = 0; i < cols; i++) {
      const xh = Math.abs(x.data[o + i]! * s);
      dx[o + i] = s * (Math.abs(dy.data[o + i]! * w[i]!) + xh * sum / cols);
      dw[i]! += Math.abs(dy.data[o + i]!) * xh;
    }
  }
  return { dx, dw };
}

Deno.test({
  name: "rmsNorm backward cpu matches ts (dx overwritten, dw accumulated over rows and calls)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const shapes = [];
    for (const rows of [1, 7, 13, 37]) {
      for (const cols of [1, 7, 13, 37, 129, 301]) {
        shapes.push([rows, cols]);
      }
    }
    shapes.push([0, 5], [259, 257]); // no rows; more than 65536 elements: threads' partial dw
    for (const [rows, cols] of shapes as [number, number][]) {
      const at = `seed ${seed} ${rows}×${cols}`;
      const x = new Matrix(rows, cols, rng.normalArray(rows * cols, 1 + rng.int(4)));
      const w = rng.normalArray(cols), eps = 1e-5;
      if (rows > 2) x.data.fill(0, cols, 2 * cols); // an all-zero row: rstd = 1/√eps
      const fw = rmsNormForward(x, w, eps, TS), fc = rmsNormForward(x, w, eps, CPU);
      close("rmsnorm forward rstd", fc.rstd, fw.rstd, RMS_TOL, at);
      close("rmsnorm forward y", fc.y.data, fw.y.data, RMS_TOL, at);
      const dw0 = rng.normalArray(cols), dwWant = dw0.slice(), dwGot = dw0.slice();
      const dwMag = Float64Array.from(dw0, Math.abs);
      for (let call = 0; call < 2; call++) {
        const dy = randn(rng, rows, cols);
        const dxWant = rmsNormBackward(dy, x, w, fw.rstd, dwWant, TS);
        const dxGot = rmsNormBackward(dy, x, w, fw.rstd, dwGot, CPU);
        const { dx: dxMag, dw: dwTerms } = rmsMag(dy, x, w, fw.rstd);
        dwTerms.forEach((t, i) => dwMag[i]! += t);
        const c = `${at} call ${call}`;
        close("rmsnorm backward dx", dxGot.data, dxWant.data, RMS_TOL, c, dxMag);
        close("rmsnorm backward dw", dwGot, dwWant, RMS_TOL, c, dwMag);
      }
    }
    report("rmsnorm");
  },
});

// ---- rope ----------------------------------------------------------------------------------

/** Two f32 products and a sum per element on each side. */
const ROPE_TOL: Tol = { rel: 1e-6, max: 1e-6 };

function dot(a: Num, b: Num): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

Deno.test({
  name: "applyRope cpu matches ts forward and backward; the backward is the forward's transpose",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const cases = [];
    for (const T of [1, 7, 37]) {
      for (const hd of [[1, 2], [3, 14], [5, 26], [2, 74], [7, 2]]) cases.push([T, ...hd]);
    }
    cases.push([0, 3, 14], [131, 7, 74]); // no rows; more than 65536 elements (threads)
    for (const [T, heads, d] of cases as [number, number, number][]) {
      const half = d / 2, at = `seed ${seed} T=${T} heads=${heads} d=${d}`;
      const ang = rng.uniformArray(T * half, -20, 20);
      const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
      const x = randn(rng, T, heads * d), y = randn(rng, T, heads * d);
      for (const dir of [1, -1] as const) {
        const want = applyRope(copy(x), cos, sin, d, { ...TS, dir });
        const xc = copy(x), got = applyRope(xc, cos, sin, d, { ...CPU, dir });
        assert(got === xc, `${at}: applyRope works in place`);
        close(`rope ${dir === 1 ? "forward" : "backward"}`, got.data, want.data, ROPE_TOL, at);
      }
      // ⟨R x, y⟩ = ⟨x, Rᵀ y⟩ on cpu, and Rᵀ R x = x
      const rx = applyRope(copy(x), cos, sin, d, CPU);
      const rty = applyRope(copy(y), cos, sin, d, { ...CPU, dir: -1 });
      const lhs = dot(rx.data, y.data), rhs = dot(x.data, rty.data);
      const scale = Math.sqrt(dot(x.data, x.data) * dot(y.data, y.data));
      assert(Math.abs(lhs - rhs) <= 1e-6 * scale, `${at}: ⟨Rx, y⟩ ${lhs} vs ⟨x, Rᵀy⟩ ${rhs}`);
      const round = applyRope(rx, cos, sin, d, { ...CPU, dir: -1 });
      close("rope round trip", round.data, x.data, ROPE_TOL, at);
    }
    report("rope");
  },
});

// ---- embedding -----------------------------------------------------------------------------

Deno.test({
  name: "embeddingBackward cpu matches ts exactly with repeated ids, adding into an existing table",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const cases = [[1, 1, 1], [7, 3, 13], [37, 5, 7], [13, 37, 1], [131, 13, 37], [0, 7, 5], [
      300,
      7,
      1031, // more than 262144 elements: 64-column blocks in parallel
    ]];
    for (const [T, vocab, d] of cases as [number, number, number][]) {
      const at = `seed ${seed} T=${T} vocab=${vocab} d=${d}`;
      const table = rng.normalArray(vocab * d), want = table.slice(), got = table.slice();
      for (let call = 0; call < 2; call++) {
        const ids = Int32Array.from({ length: T }, () => rng.int(vocab));
        if (T > 2) ids[T - 1] = ids[1] = ids[0]!; // three rows onto one id at least
        const dh = new Matrix(T, d, rng.normalArray(T * d, 1 + call));
        embeddingBackward(ids, dh, want, TS);
        embeddingBackward(ids, dh, got, CPU);
        // both add the rows in order, one f32 rounding per add: the same bits
        close("embedding backward", got, want, { rel: 0, max: 0 }, `${at} call ${call}`);
      }
      if (T === 0) assertEquals(got, table, `${at}: no rows leave the table as it was`);
    }
    report("embedding");
  },
});

// ---- cross-entropy -------------------------------------------------------------------------

/**
 * f64 sums on both sides; results rounded to f32. dlogits are compared relative to the sizes of
 * their terms, |scale|·(p_i + [i = target]): see the ignored test below for the target element.
 */
const CE_TOL: Tol = { rel: 1e-6, max: 1e-6 };

/** |scale|·(p_i + [i = target]) per element, from the reference dlogits = scale·(p − onehot). */
function ceMag(dlogits: Matrix, targets: Int32Array, scale: number): Float64Array {
  const mag = Float64Array.from(dlogits.data, Math.abs), vocab = dlogits.cols;
  targets.forEach((t, r) => {
    if (t !== IGNORE_TARGET) {
      const o = r * vocab + t;
      mag[o] = Math.abs(dlogits.data[o]! + scale) + Math.abs(scale);
    }
  });
  return mag;
}

Deno.test({
  name: "crossEntropy cpu matches ts (loss and dlogits) with ignored targets and far-off logits",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const cases = [];
    for (const rows of [1, 7, 13, 67]) {
      for (const vocab of [1, 2, 7, 37, 1031]) cases.push([rows, vocab]);
    }
    cases.push([0, 5]);
    for (const [rows, vocab] of cases as [number, number][]) {
      for (const variant of ["plain", "offset", "all ignored"] as const) {
        const at = `seed ${seed} ${rows}×${vocab} ${variant}`;
        const logits = new Matrix(rows, vocab, rng.normalArray(rows * vocab, 1 + rng.int(8)));
        if (variant === "offset") { // a shift of ±300 per row: exp overflows without the max
          for (let r = 0; r < rows; r++) {
            const off = rng.uniform() < 0.5 ? 300 : -300;
            for (let i = 0; i < vocab; i++) logits.data[r * vocab + i]! += off;
          }
        }
        const targets = Int32Array.from(
          { length: rows },
          (_, r) =>
            variant === "all ignored" || (r % 3 === 1 && rng.uniform() < 0.7)
              ? IGNORE_TARGET
              : rng.int(vocab),
        );
        const scale = rows ? (0.5 + rng.uniform()) / rows : 1;
        const want = crossEntropy(logits, targets, scale, TS);
        const got = crossEntropy(logits, targets, scale, CPU);
        close("cross-entropy loss", got.loss, want.loss, CE_TOL, at);
        const mag = ceMag(want.dlogits, targets, scale);
        close("cross-entropy dlogits", got.dlogits.data, want.dlogits.data, CE_TOL, at, mag);
        for (let r = 0; r < rows; r++) {
          if (targets[r] !== IGNORE_TARGET) continue;
          assertEquals(got.loss[r], 0, `${at}: loss of ignored row ${r}`);
          assert(got.dlogits.row(r).every((v) => v === 0), `${at}: dlogits of ignored row ${r}`);
        }
      }
    }
    report("cross-entropy");
  },
});

// Regression test: the cpu kernel once formed the target's element as (float)(scale·p_target) −
// (float)scale, which cancels to a few ulp of scale where p_target → 1; it now uses expm1.

Deno.test({
  name:
    "crossEntropy cpu: dlogits of a confident row (p_target near 1) keep f32 relative precision",
  ignore,
  fn() {
    // p = (1 − δ, δ) with δ = 1/(1 + e^10) ≈ 4.5e-5: dlogits = (−δ, δ)
    // (at gap 20 the cpu's target element is 0: p_target rounds to 1 before the subtraction)
    for (const [gap, scale] of [[10, 1], [12, 0.25], [7, 1 / 3], [20, 1]]) {
      const logits = Matrix.from([[gap!, 0], [0, gap!]]), targets = Int32Array.of(0, 1);
      const want = crossEntropy(logits, targets, scale!, TS);
      const got = crossEntropy(logits, targets, scale!, CPU);
      close(
        "cross-entropy dlogits (confident)",
        got.dlogits.data,
        want.dlogits.data,
        CE_TOL,
        `gap ${gap} scale ${scale}`,
      );
    }
  },
});

// ---- adamw ---------------------------------------------------------------------------------

/** cpu: f32 arithmetic; ts: f64 per element, stored in f32; errors carry over the steps. */
const ADAM_TOL: Tol = { rel: 1e-6, max: 2e-6 };

Deno.test({
  name: "adamwStep cpu matches ts over several steps (weight decay, bias correction, step jumps)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const n of [1, 7, 13, 37, 1031, 70001]) { // 70001: threads
      // parameters of O(1), or of O(lr) so that p is mostly the updates (f32 storage of a large p
      // would hide errors in them)
      const p0 = rng.normalArray(n, n % 2 ? 1 : 1e-3), pc = p0.slice(), pt = p0.slice();
      const mc = new Float32Array(n), mt = new Float32Array(n);
      const vc = new Float32Array(n), vt = new Float32Array(n);
      const beta1 = n % 2 ? 0.9 : 0.8, beta2 = n % 2 ? 0.999 : 0.95;
      // the sizes of the terms behind each m and p, carried over the steps as their errors are
      // (m = β1·m + (1 − β1)·g cancels where g changes sign)
      const magM = new Float64Array(n), magP = Float64Array.from(p0, Math.abs);
      for (const step of [1, 2, 3, 4, 5, 100, 10000]) {
        const h: AdamWStep = {
          lr: step % 2 ? 1e-2 : 3e-3,
          beta1,
          beta2,
          eps: step === 3 ? 0 : 1e-8,
          weightDecay: step % 2 ? 0.1 : 0,
          step,
        };
        const g = rng.normalArray(n, step === 4 ? 1e-3 : 1);
        const bc1 = 1 - beta1 ** step, bc2 = 1 - beta2 ** step;
        for (let i = 0; i < n; i++) {
          const vi = beta2 * vt[i]! + (1 - beta2) * g[i]! ** 2;
          const den = Math.sqrt(vi / bc2) + h.eps;
          magM[i] = beta1 * (magM[i]! + Math.abs(mt[i]!)) + (1 - beta1) * Math.abs(g[i]!);
          magP[i] = magP[i]! + Math.abs(pt[i]!) + (h.lr / bc1) * magM[i]! / den;
        }
        adamwStep(pt, g, mt, vt, h, TS);
        adamwStep(pc, g, mc, vc, h, CPU);
        const at = `seed ${seed} n=${n} step ${step}`;
        close("adamw m", mc, mt, ADAM_TOL, at, magM);
        close("adamw v", vc, vt, ADAM_TOL, at);
        close("adamw p", pc, pt, ADAM_TOL, at, magP);
      }
    }
    report("adamw");
  },
});

Deno.test({
  name: "adamwStep cpu: the first bias-corrected step moves p by lr·sign(g) after the decay",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), n = 37;
    const p = rng.normalArray(n), p0 = p.slice(), g = rng.normalArray(n);
    const m = new Float32Array(n), v = new Float32Array(n);
    const lr = 0.05, weightDecay = 0.2;
    adamwStep(p, g, m, v, { lr, beta1: 0.9, beta2: 0.99, eps: 0, weightDecay, step: 1 }, CPU);
    const want = p0.map((x, i) => x * (1 - lr * weightDecay) - lr * Math.sign(g[i]!));
    close("adamw first step", p, want, { rel: 1e-6, max: 1e-6 }, `seed ${seed}`);
  },
});

// ---- attention backward --------------------------------------------------------------------

/**
 * cpu: f32 dot products and sums, an exp within ~2 ulp; ts: f64 throughout. Relative to the
 * sizes of the terms (see attentionMag): dS = P∘(dP − rowsum(P∘dP)) cancels where the softmax is
 * sharp, and f32 resolves dP only to its terms.
 */
const ATT_TOL: Tol = { rel: 2e-6, max: 3e-6 };

/**
 * The sizes of the terms behind each gradient element: with p the softmax (f64), |dP|_j =
 * Σ_e |dout_e·v_je| and |dS|_j = p_j·(|dP|_j + Σ_l p_l·|dP|_l)/√d, dq gets Σ_j |dS|_j·|k_j|, dk
 * Σ |dS|_j·|q| and dv Σ p_j·|dout| (summed over the group as the gradients are).
 */
function attentionMag(
  q: Matrix,
  k: Float32Array,
  v: Float32Array,
  dout: Matrix,
  { heads, kvHeads, headDim: d }: { heads: number; kvHeads: number; headDim: number },
): { dq: Float64Array; dk: Float64Array; dv: Float64Array } {
  const T = q.rows, group = heads / kvHeads, scale = 1 / Math.sqrt(d);
  const dq = new Float64Array(T * heads * d), dk = new Float64Array(kvHeads * T * d);
  const dv = new Float64Array(kvHeads * T * d), p = new Float64Array(T), adp = new Float64Array(T);
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const kb = Math.floor(h / group) * T * d, qo = (t * heads + h) * d;
      let max = -Infinity, sum = 0, dot = 0;
      for (let j = 0; j <= t; j++) {
        let s = 0;
        for (let e = 0; e < d; e++) s += q.data[qo + e]! * k[kb + j * d + e]!;
        p[j] = s * scale;
        max = Math.max(max, p[j]!);
      }
      for (let j = 0; j <= t; j++) sum += p[j] = Math.exp(p[j]! - max);
      for (let j = 0; j <= t; j++) {
        p[j] = p[j]! / sum;
        let s = 0;
        for (let e = 0; e < d; e++) s += Math.abs(dout.data[qo + e]! * v[kb + j * d + e]!);
        adp[j] = s;
        dot += p[j]! * s;
      }
      for (let j = 0; j <= t; j++) {
        const ds = p[j]! * (adp[j]! + dot) * scale;
        for (let e = 0; e < d; e++) {
          dq[qo + e]! += ds * Math.abs(k[kb + j * d + e]!);
          dk[kb + j * d + e]! += ds * Math.abs(q.data[qo + e]!);
          dv[kb + j * d + e]! += p[j]! * Math.abs(dout.data[qo + e]!);
        }
      }
    }
  }
  return { dq, dk, dv };
}

Deno.test({
  name: "attentionBackward cpu matches ts (causal, GQA groups 1, 2, 3, 4, 6, odd head widths)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const cases = [ // T, heads, kvHeads, d
      [1, 1, 1, 1],
      [2, 2, 1, 3],
      [7, 3, 1, 13],
      [13, 6, 2, 7],
      [37, 4, 4, 5],
      [37, 6, 3, 37],
      [13, 6, 1, 1],
      [67, 8, 2, 17], // enough work for threads; crosses a 64-row block of the products
      [129, 4, 2, 5], // three row blocks
      [65, 3, 3, 33],
      [5, 2, 1, 129],
      [0, 4, 2, 8],
      // register tiles of 8 (6 on AVX2) rows and 16 (8) keys: widths 6/32/64/80 (padded to
      // whole vectors where not a multiple), groups 1/2/4, T off the tile and block sizes
      [256, 8, 4, 32], // the training shape of tinyllama-bytes
      [9, 4, 1, 6],
      [70, 4, 4, 64],
      [50, 8, 2, 80],
      [100, 2, 2, 32],
      [17, 4, 1, 16],
    ];
    for (const [T, heads, kvHeads, d] of cases as [number, number, number, number][]) {
      const at = `seed ${seed} T=${T} heads=${heads} kvHeads=${kvHeads} d=${d}`;
      const s = 1 + rng.int(3); // scores of a few units: sharp and flat softmaxes
      const q = new Matrix(T, heads * d, rng.normalArray(T * heads * d, s));
      const dout = randn(rng, T, heads * d);
      const k = rng.normalArray(kvHeads * T * d, s), v = rng.normalArray(kvHeads * T * d);
      const shape = { heads, kvHeads, headDim: d };
      const want = attentionBackward(q, k, v, dout, shape, TS);
      const got = attentionBackward(q, k, v, dout, shape, CPU);
      const mag = attentionMag(q, k, v, dout, shape);
      close("attention backward dq", got.dq.data, want.dq.data, ATT_TOL, at, mag.dq);
      close("attention backward dk", got.dk, want.dk, ATT_TOL, at, mag.dk);
      close("attention backward dv", got.dv, want.dv, ATT_TOL, at, mag.dv);
    }
    report("attention");
  },
});

// ---- swiglu backward -----------------------------------------------------------------------

/** cpu: f32 with a vectorised exp within ~2 ulp; ts: f64. */
const SWIGLU_TOL: Tol = { rel: 1e-6, max: 2e-6 };

Deno.test({
  name: "swigluBackward cpu matches ts, saturated gates and the cancelling point included",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const [rows, cols] of [[1, 1], [1, 7], [7, 13], [37, 37], [131, 503]] as const) {
      const n = rows * cols, at = `seed ${seed} ${rows}×${cols}`;
      const gate = new Matrix(rows, cols, rng.normalArray(n, 4));
      for (let i = 3; i < n; i += 11) gate.data[i] = [-100, -30, -1.2785, 30, 100][i % 5]!;
      const up = randn(rng, rows, cols), dout = randn(rng, rows, cols);
      const want = swigluBackward(gate, up, dout, TS), got = swigluBackward(gate, up, dout, CPU);
      close("swiglu backward dgate", got.dgate.data, want.dgate.data, SWIGLU_TOL, at);
      close("swiglu backward dup", got.dup.data, want.dup.data, SWIGLU_TOL, at);
    }
    report("swiglu");
  },
});

// ---- outputs overwritten -------------------------------------------------------------------

Deno.test({
  name: "C training kernels overwrite every element of their outputs (buffers start as NaN)",
  ignore,
  fn() {
    const l = cpu(), seed = freshSeed(), rng = new Rng(seed), at = `seed ${seed}`;
    const nan = (n: number) => new Float32Array(n).fill(NaN);
    // rmsnorm forward and backward (dw accumulates: it starts from zeros)
    const [rows, cols] = [13, 37], x = randn(rng, rows, cols), w = rng.normalArray(cols);
    const f = rmsNormForward(x, w, 1e-6, TS), y = nan(rows * cols), rstd = nan(rows);
    check(
      l,
      l.lk_cpu_rmsnorm_f32(
        x.data,
        x.data.length,
        w,
        cols,
        y,
        y.length,
        rstd,
        rows,
        rows,
        cols,
        1e-6,
      ),
    );
    close("rmsnorm forward y", y, f.y.data, RMS_TOL, `${at} NaN-filled`);
    close("rmsnorm forward rstd", rstd, f.rstd, RMS_TOL, `${at} NaN-filled`);
    const dy = randn(rng, rows, cols), dwWant = new Float32Array(cols);
    const dxWant = rmsNormBackward(dy, x, w, f.rstd, dwWant, TS);
    const dx = nan(rows * cols), dw = new Float32Array(cols), n = rows * cols;
    check(
      l,
      l.lk_cpu_rmsnorm_bwd_f32(
        dy.data,
        n,
        x.data,
        n,
        w,
        cols,
        f.rstd,
        rows,
        dx,
        n,
        dw,
        cols,
        rows,
        cols,
      ),
    );
    const rm = rmsMag(dy, x, w, f.rstd);
    close("rmsnorm backward dx", dx, dxWant.data, RMS_TOL, `${at} NaN-filled`, rm.dx);
    close("rmsnorm backward dw", dw, dwWant, RMS_TOL, `${at} NaN-filled dx`, rm.dw);
    // attention backward
    const [T, heads, kv, d] = [13, 6, 2, 7], qn = T * heads * d, kn = kv * T * d;
    const q = randn(rng, T, heads * d), dout = randn(rng, T, heads * d);
    const k = rng.normalArray(kn),
      v = rng.normalArray(kn),
      shape = { heads, kvHeads: kv, headDim: d };
    const g = attentionBackward(q, k, v, dout, shape, TS), mag = attentionMag(q, k, v, dout, shape);
    const [dq, dk, dv] = [nan(qn), nan(kn), nan(kn)];
    check(
      l,
      l.lk_cpu_attention_bwd_f32(
        q.data,
        qn,
        k,
        kn,
        v,
        kn,
        dout.data,
        qn,
        dq,
        qn,
        dk,
        kn,
        dv,
        kn,
        T,
        heads,
        kv,
        d,
      ),
    );
    close("attention backward dq", dq, g.dq.data, ATT_TOL, `${at} NaN-filled`, mag.dq);
    close("attention backward dk", dk, g.dk, ATT_TOL, `${at} NaN-filled`, mag.dk);
    close("attention backward dv", dv, g.dv, ATT_TOL, `${at} NaN-filled`, mag.dv);
    // swiglu backward
    const gate = randn(rng, 7, 13), up = randn(rng, 7, 13), ds = randn(rng, 7, 13);
    const sw = swigluBackward(gate, up, ds, TS), [dgate, dup] = [nan(91), nan(91)];
    check(
      l,
      l.lk_cpu_swiglu_bwd_f32(gate.data, 91, up.data, 91, ds.data, 91, dgate, 91, dup, 91, 91),
    );
    close("swiglu backward dgate", dgate, sw.dgate.data, SWIGLU_TOL, `${at} NaN-filled`);
    close("swiglu backward dup", dup, sw.dup.data, SWIGLU_TOL, `${at} NaN-filled`);
    // cross-entropy, ignored rows included
    const [cr, vocab] = [6, 37], logits = randn(rng, cr, vocab);
    const targets = Int32Array.of(3, IGNORE_TARGET, 0, IGNORE_TARGET, 36, 7);
    const ce = crossEntropy(logits, targets, 0.5, TS), [loss, dl] = [nan(cr), nan(cr * vocab)];
    check(
      l,
      l.lk_cpu_cross_entropy_f32(
        logits.data,
        cr * vocab,
        targets,
        cr,
        loss,
        cr,
        dl,
        cr * vocab,
        cr,
        vocab,
        0.5,
      ),
    );
    close("cross-entropy loss", loss, ce.loss, CE_TOL, `${at} NaN-filled`);
    close(
      "cross-entropy dlogits",
      dl,
      ce.dlogits.data,
      CE_TOL,
      `${at} NaN-filled`,
      ceMag(ce.dlogits, targets, 0.5),
    );
  },
});

// ---- bad shapes through the TypeScript wrappers --------------------------------------------

Deno.test({
  name: "training kernels on cpu refuse bad shapes in TypeScript, naming the argument",
  ignore,
  fn() {
    const z = (r: number, c: number) => Matrix.zeros(r, c);
    // gemm
    assertThrows(() => gemm(z(3, 4), z(5, 2), CPU), ShapeError, "inner dimensions 4 and 5 differ");
    assertThrows(
      () => gemm(z(3, 4), z(3, 2), { ...CPU, transA: false, transB: true }),
      ShapeError,
      "inner dimensions 4 and 2 differ",
    );
    assertThrows(
      () => gemm(z(4, 3), z(4, 2), { ...CPU, transA: true, accumulate: z(2, 3) }),
      ShapeError,
      "Cannot accumulate a 3×2 product into 2×3",
    );
    // rmsnorm
    const x = z(3, 5), w5 = new Float32Array(5);
    assertThrows(
      () => rmsNormForward(x, new Float32Array(4), 1e-5, CPU),
      ShapeError,
      "the weight has 4 elements, expected 5",
    );
    assertThrows(() => rmsNormForward(x, w5, -1, CPU), RangeError, "eps -1");
    assertThrows(() => rmsNormForward(x, w5, NaN, CPU), RangeError, "eps NaN");
    const r3 = new Float32Array(3);
    assertThrows(
      () => rmsNormBackward(z(2, 5), x, w5, r3, new Float32Array(5), CPU),
      ShapeError,
      "dy is 2×5, expected 3×5",
    );
    assertThrows(
      () => rmsNormBackward(z(3, 5), x, w5, new Float32Array(2), new Float32Array(5), CPU),
      ShapeError,
      "rstd has 2 elements, expected 3",
    );
    assertThrows(
      () => rmsNormBackward(z(3, 5), x, w5, r3, new Float32Array(4), CPU),
      ShapeError,
      "dw has 4 elements, expected 5",
    );
    // rope
    const c6 = new Float32Array(6), xr = new Matrix(3, 8, new Float32Array(24).fill(1));
    for (const d of [3, 0, -2, 6, 2.5]) {
      assertThrows(() => applyRope(xr, c6, c6, d, CPU), ShapeError, `head width ${d} is not even`);
    }
    assertThrows(
      () => applyRope(xr, new Float32Array(5), c6, 4, CPU),
      ShapeError,
      "cos has 5 elements, expected 6",
    );
    assertThrows(
      () => applyRope(xr, c6, new Float32Array(7), 4, CPU),
      ShapeError,
      "sin has 7 elements, expected 6",
    );
    assertThrows(
      () => applyRope(xr, c6, c6, 4, { ...CPU, dir: 0 as 1 }),
      RangeError,
      "dir 0, expected 1 or -1",
    );
    assert(xr.data.every((v) => v === 1), "a refused rope leaves x as it was");
    // embedding
    const table = Float32Array.from({ length: 15 }, (_, i) => i), kept = table.slice();
    assertThrows(
      () => embeddingBackward(Int32Array.of(0, 1), z(3, 3), table, CPU),
      ShapeError,
      "ids has 2 elements, expected 3",
    );
    assertThrows(
      () => embeddingBackward(Int32Array.of(0, 1), z(2, 4), table, CPU),
      ShapeError,
      "a table of 15 values has no rows of width 4",
    );
    assertThrows(
      () => embeddingBackward(Int32Array.of(0, 1), z(2, 0), table, CPU),
      ShapeError,
      "no rows of width 0",
    );
    for (const [id, row] of [[5, 2], [-1, 1]]) {
      const ids = Int32Array.of(0, 4, 0);
      ids[row!] = id!;
      assertThrows(
        () => embeddingBackward(ids, new Matrix(3, 3, new Float32Array(9).fill(1)), table, CPU),
        RangeError,
        `token id ${id} at row ${row} is outside the vocabulary [0, 5)`,
      );
    }
    assertEquals(table, kept, "a refused embedding backward leaves the table as it was");
    // cross-entropy
    const lg = z(3, 4);
    assertThrows(
      () => crossEntropy(lg, Int32Array.of(0, 1), 1, CPU),
      ShapeError,
      "targets has 2 elements, expected 3",
    );
    for (const t of [4, -2]) {
      assertThrows(
        () => crossEntropy(lg, Int32Array.of(0, t, 1), 1, CPU),
        RangeError,
        `target ${t} of row 1 is outside the vocabulary [0, 4) and is not -1`,
      );
    }
    assertThrows(
      () => crossEntropy(lg, Int32Array.of(0, 1, 2), Infinity, CPU),
      RangeError,
      "scale Infinity is not finite",
    );
    // adamw
    const p = Float32Array.of(1, 2, 3), f3 = () => new Float32Array(3);
    const h: AdamWStep = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
    };
    for (const [name, args] of [["g", [2, 3, 3]], ["m", [3, 4, 3]], ["v", [3, 3, 1]]] as const) {
      assertThrows(
        () =>
          adamwStep(
            p,
            new Float32Array(args[0]),
            new Float32Array(args[1]),
            new Float32Array(args[2]),
            h,
            CPU,
          ),
        ShapeError,
        `${name} has ${name === "g" ? 2 : name === "m" ? 4 : 1} elements, expected 3`,
      );
    }
    for (const step of [0, 1.5, -1]) {
      assertThrows(
        () => adamwStep(p, f3(), f3(), f3(), { ...h, step }, CPU),
        RangeError,
        `step ${step} is not an integer ≥ 1`,
      );
    }
    assertThrows(() => adamwStep(p, f3(), f3(), f3(), { ...h, lr: -1 }, CPU), RangeError, "lr -1");
    assertThrows(
      () => adamwStep(p, f3(), f3(), f3(), { ...h, beta1: NaN }, CPU),
      RangeError,
      "beta1 NaN",
    );
    assertThrows(
      () => adamwStep(p, f3(), f3(), f3(), { ...h, weightDecay: Infinity }, CPU),
      RangeError,
      "weightDecay Infinity",
    );
    assertEquals(p, Float32Array.of(1, 2, 3), "a refused AdamW step leaves p as it was");
    // attention
    const T = 2, d = 4, kv = (n: number) => new Float32Array(n * T * d);
    const att = (heads: number, kvHeads: number, q = z(T, heads * d), k = kv(kvHeads)) =>
      attentionBackward(q, k, k, q, { heads, kvHeads, headDim: d }, CPU);
    assertThrows(() => att(4, 3), ShapeError, "heads 4 is not a multiple of kvHeads 3");
    assertThrows(() => att(4, 0), ShapeError, "heads 4 is not a multiple of kvHeads 0");
    assertThrows(
      () => att(4, -2, z(T, 16), kv(2)),
      ShapeError,
      "heads 4 is not a multiple of kvHeads -2",
    );
    assertThrows(() => att(4, 2, z(T, 12)), ShapeError, "q is 2×12 and dout 2×12");
    assertThrows(
      () => att(4, 2, z(T, 16), kv(1)),
      ShapeError,
      "k and v hold 8/8 values, expected kvHeads·T·d = 16",
    );
    assertThrows(
      () =>
        attentionBackward(
          z(T, 8),
          kv(1),
          kv(1),
          z(T + 1, 8),
          { heads: 2, kvHeads: 1, headDim: 4 },
          CPU,
        ),
      ShapeError,
      "q is 2×8 and dout 3×8",
    );
    // swiglu
    assertThrows(
      () => swigluBackward(z(3, 2), z(2, 3), z(3, 2), CPU),
      ShapeError,
      "up is 2×3, expected the gate's 3×2",
    );
    assertThrows(
      () => swigluBackward(z(3, 2), z(3, 2), z(3, 3), CPU),
      ShapeError,
      "dout is 3×3, expected the gate's 3×2",
    );
  },
});

Deno.test({
  name: "training kernels on cpu: shapes the TypeScript wrappers pass on are refused by C, cleanly",
  ignore,
  fn() {
    // zero-width rows: the wrappers' checks hold, the C side refuses
    assertThrows(
      () => rmsNormForward(Matrix.zeros(3, 0), new Float32Array(0), 1e-5, CPU),
      ShapeError,
      "lk_cpu_rmsnorm_f32: rows=3 cols=0, expected rows >= 0 and cols >= 1",
    );
    assertThrows(
      () =>
        rmsNormBackward(
          Matrix.zeros(2, 0),
          Matrix.zeros(2, 0),
          new Float32Array(0),
          new Float32Array(2),
          new Float32Array(0),
          CPU,
        ),
      ShapeError,
      "lk_cpu_rmsnorm_bwd_f32: rows=2 cols=0",
    );
    assertThrows(
      () => crossEntropy(Matrix.zeros(2, 0), Int32Array.of(-1, -1), 1, CPU),
      ShapeError,
      "lk_cpu_cross_entropy_f32: rows=2 vocab=0, expected rows >= 0 and vocab >= 1",
    );
    const q0 = Matrix.zeros(2, 0), k4 = new Float32Array(4);
    assertThrows(
      () => attentionBackward(q0, k4, k4, q0, { heads: 0, kvHeads: 1, headDim: 2 }, CPU),
      ShapeError,
      "lk_cpu_attention_bwd_f32: t=2 heads=0 kv_heads=1 d=2",
    );
    assertThrows(
      () =>
        attentionBackward(q0, new Float32Array(0), new Float32Array(0), q0, {
          heads: 3,
          kvHeads: 1,
          headDim: 0,
        }, CPU),
      ShapeError,
      "lk_cpu_attention_bwd_f32: t=2 heads=3 kv_heads=1 d=0",
    );
    // β1 = 1 or β2 = 1 (no bias correction possible) passes the wrapper's range checks
    const p = Float32Array.of(1, 2), f2 = () => new Float32Array(2);
    const h: AdamWStep = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0, step: 1 };
    assertThrows(
      () => adamwStep(p, f2(), f2(), f2(), { ...h, beta1: 1 }, CPU),
      RangeError,
      "lk_cpu_adamw_f32: lr=0.001 b1=1 b2=0.999 eps=0 wd=0 bc1=0 bc2=0.001 out of range",
    );
    assertThrows(
      () => adamwStep(p, f2(), f2(), f2(), { ...h, beta2: 1.5 }, CPU),
      RangeError,
      "b2=1.5",
    );
    assertEquals(p, Float32Array.of(1, 2));
    // NaN or ±Inf in a used row (an ignored row may hold anything)
    const rng = new Rng(freshSeed()), logits = randn(rng, 5, 40);
    const targets = Int32Array.of(3, IGNORE_TARGET, 0, 7, 39);
    logits.set(1, 4, NaN);
    logits.set(1, 5, Infinity);
    crossEntropy(logits, targets, 1, CPU);
    logits.set(4, 11, -Infinity);
    logits.set(3, 2, NaN);
    assertThrows(
      () => crossEntropy(logits, targets, 1, CPU),
      NumericalError,
      "lk_cpu_cross_entropy_f32: row 3 of the logits holds NaN or Inf",
    );
    logits.set(3, 2, 0);
    assertThrows(
      () => crossEntropy(logits, targets, 1, CPU),
      NumericalError,
      "row 4 of the logits",
    );
    // a head count that is no integer cannot reach C (the FFI layer takes i32 only); the wrapper
    // does not name it, but the call fails instead of reading past k
    const q = Matrix.zeros(2, 6), k6 = new Float32Array(6);
    assertThrows(() =>
      attentionBackward(q, k6, k6, q, { heads: 3, kvHeads: 1.5, headDim: 2 }, CPU)
    );
  },
});

// ---- bad shapes straight into the C entry points -------------------------------------------

const decoder = new TextDecoder();

function lastError(): string {
  const buf = new Uint8Array(512);
  cpu().lk_last_error(buf, buf.length);
  return decoder.decode(buf.subarray(0, buf.indexOf(0)));
}

/**
 * Asserts that `call` returns `code` with a message including `msg`, and that it left every
 * buffer in `bufs` as it was (the C side checks before it touches memory).
 */
function refuses(
  bufs: (Float32Array | Int32Array)[],
  call: () => number,
  code: number,
  msg: string,
): void {
  const before = bufs.map((b) => b.slice());
  const status = call(), err = lastError();
  assertEquals(status, code, `expected status ${code} (${msg}), got ${status}: ${err}`);
  assert(err.includes(msg), `expected the message to include "${msg}", got "${err}"`);
  bufs.forEach((b, i) => assertEquals(b, before[i], `buffer ${i} was written by "${msg}"`));
}

Deno.test({
  name: "C training entry points refuse bad dims, lengths and scalars before touching memory",
  ignore,
  fn() {
    const l = cpu(), { ESHAPE, EARG, ENUMERICAL } = Status;
    const f = (n: number) => new Float32Array(n).fill(7);
    const none = new Float32Array(0);

    // gemm: 2×3 by 3×4
    {
      const a = f(6), b = f(12), c = f(8), B = [a, b, c];
      const g = (al: number, bl: number, cl: number, m = 2, k = 3, n = 4, ta = 0, tb = 0, be = 0) =>
        l.lk_cpu_gemm_f32(a, al, b, bl, c, cl, m, k, n, ta, tb, be);
      refuses(B, () => g(6, 12, 8, -1), ESHAPE, "dimensions must be >= 0, got m=-1 k=3 n=4");
      refuses(B, () => g(6, 12, 8, 2, -3), ESHAPE, "got m=2 k=-3 n=4");
      refuses(B, () => g(6, 12, 8, 2, 3, -4), ESHAPE, "got m=2 k=3 n=-4");
      refuses(B, () => g(6, 12, 8, 2, 3, 4, 2), EARG, "trans_a=2 trans_b=0, expected 0 or 1");
      refuses(B, () => g(6, 12, 8, 2, 3, 4, 0, -1), EARG, "trans_a=0 trans_b=-1");
      refuses(B, () => g(6, 12, 8, 2, 3, 4, 0, 0, 0.5), EARG, "beta=0.5, expected 0 or 1");
      refuses(B, () => g(6, 12, 8, 2, 3, 4, 0, 0, NaN), EARG, "beta=nan");
      refuses(
        B,
        () => g(5, 12, 8),
        ESHAPE,
        "lk_cpu_gemm_f32: buffer a holds 5 elements, expected at least 6",
      );
      refuses(B, () => g(6, 11, 8), ESHAPE, "buffer b holds 11 elements, expected at least 12");
      refuses(B, () => g(6, 12, 7), ESHAPE, "buffer c holds 7 elements, expected at least 8");
      refuses(B, () => g(6, 12, 7, 2, 3, 4, 1, 1, 1), ESHAPE, "buffer c holds 7 elements");
      refuses(B, () => g(5.5, 12, 8), ESHAPE, "buffer a length 5.5 is not a whole number");
      refuses(B, () => g(6, -12, 8), ESHAPE, "buffer b length -12 is not a whole number");
      refuses(B, () => g(6, 12, NaN), ESHAPE, "buffer c length nan is not a whole number");
      // huge dimensions against empty buffers: refused, not read
      refuses(
        [],
        () => l.lk_cpu_gemm_f32(none, 0, none, 0, none, 0, 46341, 46341, 46341, 0, 0, 0),
        ESHAPE,
        "buffer a holds 0 elements, expected at least 2147488281",
      );
      assertEquals(g(6, 12, 8), Status.OK);
    }

    // rmsnorm forward and backward: 3×5
    {
      const x = f(15), w = f(5), y = f(15), r = f(3), B = [x, w, y, r];
      const fw = (xl: number, wl: number, yl: number, rl: number, rows = 3, cols = 5, eps = 1e-5) =>
        l.lk_cpu_rmsnorm_f32(x, xl, w, wl, y, yl, r, rl, rows, cols, eps);
      refuses(B, () => fw(15, 5, 15, 3, -1), ESHAPE, "lk_cpu_rmsnorm_f32: rows=-1 cols=5");
      refuses(
        B,
        () => fw(15, 5, 15, 3, 3, 0),
        ESHAPE,
        "rows=3 cols=0, expected rows >= 0 and cols >= 1",
      );
      refuses(B, () => fw(15, 5, 15, 3, 3, 5, -1), EARG, "eps=-1, expected finite >= 0");
      refuses(B, () => fw(15, 5, 15, 3, 3, 5, Infinity), EARG, "eps=inf");
      refuses(
        B,
        () => fw(14, 5, 15, 3),
        ESHAPE,
        "buffer x holds 14 elements, expected at least 15",
      );
      refuses(B, () => fw(15, 4, 15, 3), ESHAPE, "buffer w holds 4 elements, expected at least 5");
      refuses(B, () => fw(15, 5, 14, 3), ESHAPE, "buffer y holds 14 elements");
      refuses(
        B,
        () => fw(15, 5, 15, 2),
        ESHAPE,
        "buffer rstd holds 2 elements, expected at least 3",
      );
      const dy = f(15), dx = f(15), dw = f(5), BB = [dy, x, w, r, dx, dw];
      const names = ["dy", "x", "w", "rstd", "dx", "dw"], full = [15, 15, 5, 3, 15, 5];
      const bw = (len: number[], rows = 3, cols = 5) =>
        l.lk_cpu_rmsnorm_bwd_f32(
          dy,
          len[0]!,
          x,
          len[1]!,
          w,
          len[2]!,
          r,
          len[3]!,
          dx,
          len[4]!,
          dw,
          len[5]!,
          rows,
          cols,
        );
      refuses(BB, () => bw(full, -1), ESHAPE, "lk_cpu_rmsnorm_bwd_f32: rows=-1 cols=5");
      refuses(BB, () => bw(full, 3, 0), ESHAPE, "rows=3 cols=0");
      for (let i = 0; i < names.length; i++) {
        const len = full.slice();
        len[i]! -= 1;
        refuses(
          BB,
          () => bw(len),
          ESHAPE,
          `buffer ${names[i]} holds ${len[i]} elements, expected at least ${full[i]}`,
        );
      }
    }

    // rope: T=3, heads=2, d=4
    {
      const x = f(24), c = f(6), s = f(6), B = [x, c, s];
      const r = (xl: number, cl: number, sl: number, t = 3, heads = 2, d = 4, dir = 1) =>
        l.lk_cpu_rope_f32(x, xl, c, cl, s, sl, t, heads, d, dir);
      const shape = "expected t >= 0, heads >= 1, d even >= 2";
      refuses(B, () => r(24, 6, 6, -1), ESHAPE, `lk_cpu_rope_f32: t=-1 heads=2 d=4, ${shape}`);
      refuses(B, () => r(24, 6, 6, 3, 0), ESHAPE, "t=3 heads=0 d=4");
      refuses(B, () => r(24, 6, 6, 3, 2, 3), ESHAPE, "t=3 heads=2 d=3");
      refuses(B, () => r(24, 6, 6, 3, 2, 0), ESHAPE, "t=3 heads=2 d=0");
      refuses(B, () => r(24, 6, 6, 3, 2, -4), ESHAPE, "t=3 heads=2 d=-4");
      refuses(B, () => r(24, 6, 6, 3, 2, 4, 0), EARG, "dir=0, expected 1 or -1");
      refuses(B, () => r(24, 6, 6, 3, 2, 4, 2), EARG, "dir=2");
      refuses(B, () => r(23, 6, 6), ESHAPE, "buffer x holds 23 elements, expected at least 24");
      refuses(B, () => r(24, 5, 6), ESHAPE, "buffer cos holds 5 elements, expected at least 6");
      refuses(B, () => r(24, 6, 5), ESHAPE, "buffer sin holds 5 elements, expected at least 6");
      refuses(
        B,
        () => r(24, 6, 6, 3, 3, 4),
        ESHAPE,
        "buffer x holds 24 elements, expected at least 36",
      );
    }

    // attention backward: T=3, heads=4, kv=2, d=2
    {
      const qn = 3 * 4 * 2, kn = 2 * 3 * 2;
      const full = [qn, kn, kn, qn, qn, kn, kn];
      const names = ["q", "k", "v", "dout", "dq", "dk", "dv"];
      const B = full.map(f);
      const at = (len: number[], t = 3, heads = 4, kv = 2, d = 2) =>
        l.lk_cpu_attention_bwd_f32(
          B[0]!,
          len[0]!,
          B[1]!,
          len[1]!,
          B[2]!,
          len[2]!,
          B[3]!,
          len[3]!,
          B[4]!,
          len[4]!,
          B[5]!,
          len[5]!,
          B[6]!,
          len[6]!,
          t,
          heads,
          kv,
          d,
        );
      refuses(
        B,
        () => at(full, 3, 4, 3),
        ESHAPE,
        "lk_cpu_attention_bwd_f32: heads=4 is not a multiple of kv_heads=3",
      );
      refuses(B, () => at(full, 3, 2, 4), ESHAPE, "heads=2 is not a multiple of kv_heads=4");
      const rest = "expected t >= 0 and the rest >= 1";
      refuses(B, () => at(full, 3, 4, 0), ESHAPE, `t=3 heads=4 kv_heads=0 d=2, ${rest}`);
      refuses(B, () => at(full, 3, 4, -2), ESHAPE, "kv_heads=-2");
      refuses(B, () => at(full, 3, 0, 2), ESHAPE, "t=3 heads=0 kv_heads=2");
      refuses(B, () => at(full, 3, -4, -2), ESHAPE, "t=3 heads=-4 kv_heads=-2");
      refuses(B, () => at(full, 3, 4, 2, 0), ESHAPE, "t=3 heads=4 kv_heads=2 d=0");
      refuses(B, () => at(full, -1), ESHAPE, "t=-1 heads=4");
      for (let i = 0; i < names.length; i++) {
        const len = full.slice();
        len[i]! -= 1;
        refuses(
          B,
          () => at(len),
          ESHAPE,
          `buffer ${names[i]} holds ${len[i]} elements, expected at least ${full[i]}`,
        );
      }
      refuses(B, () => at(full, 4), ESHAPE, "buffer q holds 24 elements, expected at least 32");
    }

    // swiglu backward: n = 6
    {
      const B = [f(6), f(6), f(6), f(6), f(6)], names = ["gate", "up", "dout", "dgate", "dup"];
      const sw = (len: number[], n = 6) =>
        l.lk_cpu_swiglu_bwd_f32(
          B[0]!,
          len[0]!,
          B[1]!,
          len[1]!,
          B[2]!,
          len[2]!,
          B[3]!,
          len[3]!,
          B[4]!,
          len[4]!,
          n,
        );
      const full = [6, 6, 6, 6, 6];
      for (const n of [-1, 2.5, NaN, Infinity]) {
        refuses(
          B,
          () => sw(full, n),
          ESHAPE,
          `lk_cpu_swiglu_bwd_f32: n=${
            Number.isNaN(n) ? "nan" : n === Infinity ? "inf" : n
          }, expected a whole number >= 0`,
        );
      }
      for (let i = 0; i < names.length; i++) {
        const len = full.slice();
        len[i] = 5;
        refuses(
          B,
          () => sw(len),
          ESHAPE,
          `buffer ${names[i]} holds 5 elements, expected at least 6`,
        );
      }
    }

    // embedding backward: T=3, vocab=5, d=2
    {
      const ids = Int32Array.of(0, 4, 1), dh = f(6), table = f(10), B = [ids, dh, table];
      const e = (il: number, dl: number, tl: number, t = 3, vocab = 5, d = 2) =>
        l.lk_cpu_embedding_bwd_f32(ids, il, dh, dl, table, tl, t, vocab, d);
      const rest = "expected t >= 0 and the rest >= 1";
      refuses(
        B,
        () => e(3, 6, 10, -1),
        ESHAPE,
        `lk_cpu_embedding_bwd_f32: t=-1 vocab=5 d=2, ${rest}`,
      );
      refuses(B, () => e(3, 6, 10, 3, 0), ESHAPE, "t=3 vocab=0 d=2");
      refuses(B, () => e(3, 6, 10, 3, 5, 0), ESHAPE, "t=3 vocab=5 d=0");
      refuses(B, () => e(3, 6, 10, 3, 5, -2), ESHAPE, "t=3 vocab=5 d=-2");
      refuses(B, () => e(2, 6, 10), ESHAPE, "buffer ids holds 2 elements, expected at least 3");
      refuses(B, () => e(3, 5, 10), ESHAPE, "buffer dh holds 5 elements, expected at least 6");
      refuses(B, () => e(3, 6, 9), ESHAPE, "buffer dtable holds 9 elements, expected at least 10");
      refuses(
        B,
        () => e(3, 6, 10, 3, 6),
        ESHAPE,
        "buffer dtable holds 10 elements, expected at least 12",
      );
      // an id outside the vocabulary, after rows that are fine: nothing is written
      refuses(B, () => e(3, 6, 8, 3, 4), EARG, "token id 4 at row 1 is outside [0, 4)");
      ids[2] = -1;
      refuses(B, () => e(3, 6, 10), EARG, "token id -1 at row 2 is outside [0, 5)");
      ids[2] = 1;
      assertEquals(e(3, 6, 10), Status.OK);
    }

    // cross-entropy: rows=3, vocab=4
    {
      const lg = f(12), t = Int32Array.of(0, -1, 3), loss = f(3), dl = f(12), B = [lg, t, loss, dl];
      const ce = (len: number[], rows = 3, vocab = 4, scale = 1) =>
        l.lk_cpu_cross_entropy_f32(
          lg,
          len[0]!,
          t,
          len[1]!,
          loss,
          len[2]!,
          dl,
          len[3]!,
          rows,
          vocab,
          scale,
        );
      const full = [12, 3, 3, 12], names = ["logits", "targets", "loss", "dlogits"];
      refuses(
        B,
        () => ce(full, -1),
        ESHAPE,
        "lk_cpu_cross_entropy_f32: rows=-1 vocab=4, expected rows >= 0 and vocab >= 1",
      );
      refuses(B, () => ce(full, 3, 0), ESHAPE, "rows=3 vocab=0");
      refuses(B, () => ce(full, 3, -4), ESHAPE, "rows=3 vocab=-4");
      refuses(B, () => ce(full, 3, 4, NaN), EARG, "scale=nan, expected a finite number");
      refuses(B, () => ce(full, 3, 4, -Infinity), EARG, "scale=-inf");
      for (let i = 0; i < names.length; i++) {
        const len = full.slice();
        len[i]! -= 1;
        refuses(
          B,
          () => ce(len),
          ESHAPE,
          `buffer ${names[i]} holds ${len[i]} elements, expected at least ${full[i]}`,
        );
      }
      refuses(B, () => ce(full, 3, 3), EARG, "target 3 of row 2 is outside [0, 3) and is not -1");
      t[1] = -2;
      refuses(B, () => ce(full), EARG, "target -2 of row 1 is outside [0, 4) and is not -1");
      t[1] = -1;
      lg[9] = NaN;
      assertEquals(ce(full), ENUMERICAL, lastError());
      assert(lastError().includes("row 2 of the logits holds NaN or Inf"), lastError());
      lg[9] = 0;
      assertEquals(ce(full), Status.OK);
    }

    // adamw: n = 4
    {
      const B = [f(4), f(4), f(4), f(4)], names = ["p", "g", "m", "v"], full = [4, 4, 4, 4];
      const ad = (
        len: number[],
        o: Partial<Record<"n" | "lr" | "b1" | "b2" | "eps" | "wd" | "bc1" | "bc2", number>> = {},
      ) =>
        l.lk_cpu_adamw_f32(
          B[0]!,
          len[0]!,
          B[1]!,
          len[1]!,
          B[2]!,
          len[2]!,
          B[3]!,
          len[3]!,
          o.n ?? 4,
          o.lr ?? 1e-3,
          o.b1 ?? 0.9,
          o.b2 ?? 0.999,
          o.eps ?? 1e-8,
          o.wd ?? 0,
          o.bc1 ?? 0.1,
          o.bc2 ?? 0.001,
        );
      for (const n of [-1, 0.5, NaN]) {
        refuses(
          B,
          () => ad(full, { n }),
          ESHAPE,
          `lk_cpu_adamw_f32: n=${Number.isNaN(n) ? "nan" : n}, expected a whole number >= 0`,
        );
      }
      for (let i = 0; i < names.length; i++) {
        const len = full.slice();
        len[i] = 3;
        refuses(
          B,
          () => ad(len),
          ESHAPE,
          `buffer ${names[i]} holds 3 elements, expected at least 4`,
        );
      }
      refuses(
        B,
        () => ad(full, { n: 5 }),
        ESHAPE,
        "buffer p holds 4 elements, expected at least 5",
      );
      for (
        const [o, msg] of [
          [{ lr: -1e-3 }, "lr=-0.001"],
          [{ lr: Infinity }, "lr=inf"],
          [{ b1: 1 }, "b1=1"],
          [{ b1: -0.1 }, "b1=-0.1"],
          [{ b2: NaN }, "b2=nan"],
          [{ eps: -1 }, "eps=-1"],
          [{ wd: Infinity }, "wd=inf"],
          [{ wd: -0.1 }, "wd=-0.1"],
          [{ bc1: 0 }, "bc1=0"],
          [{ bc2: 1.5 }, "bc2=1.5"],
          [{ bc2: NaN }, "bc2=nan"],
        ] as const
      ) refuses(B, () => ad(full, o), EARG, `${msg}`);
      assertEquals(ad(full), Status.OK);
    }
  },
});
