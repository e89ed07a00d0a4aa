/**
 * The general f32 product C = op(A)·op(B) + β·C with either operand transposed: the three
 * products of a linear layer's forward and backward (Y = X·Wᵀ, dX = dY·W, dW += dYᵀ·X).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** Options of {@linkcode gemm}. */
export interface GemmOptions extends KernelOptions {
  /** Use Aᵀ: A is k×m (default false). */
  transA?: boolean;
  /** Use Bᵀ: B is n×k (default false). */
  transB?: boolean;
  /** Accumulate into this m×n matrix (β = 1) instead of returning a new one. */
  accumulate?: Matrix;
}

/**
 * op(A)·op(B), or op(A)·op(B) added to `options.accumulate` (which is returned).
 *
 * @example
 * ```ts
 * import { gemm } from "./gemm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 * const dy = Matrix.from([[1, 2]]), x = Matrix.from([[3, 4, 5]]);
 * const dw = Matrix.from([[1, 1, 1], [0, 0, 0]]);
 * gemm(dy, x, { transA: true, accumulate: dw, backend: "ts" }); // dW += dYᵀ·X
 * assertEquals(Array.from(dw.data), [4, 5, 6, 6, 8, 10]);
 * ```
 */
export function gemm(a: Matrix, b: Matrix, options: GemmOptions = {}): Matrix {
  const ta = options.transA ?? false, tb = options.transB ?? false;
  const [m, ka] = ta ? [a.cols, a.rows] : [a.rows, a.cols];
  const [kb, n] = tb ? [b.cols, b.rows] : [b.rows, b.cols];
  if (ka !== kb) {
    throw new ShapeError(
      `Cannot multiply ${a.rows}×${a.cols}${ta ? "ᵀ" : ""} by ${b.rows}×${b.cols}${
        tb ? "ᵀ" : ""
      }: inner dimensions ${ka} and ${kb} differ`,
    );
  }
  const acc = options.accumulate;
  if (acc && (acc.rows !== m || acc.cols !== n)) {
    throw new ShapeError(`Cannot accumulate a ${m}×${n} product into ${acc.rows}×${acc.cols}`);
  }
  const c = acc ?? Matrix.zeros(m, n), beta = acc ? 1 : 0, k = ka;
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_gemm_f32(
        a.data,
        a.data.length,
        b.data,
        b.data.length,
        c.data,
        c.data.length,
        m,
        k,
        n,
        ta ? 1 : 0,
        tb ? 1 : 0,
        beta,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [a.data, b.data, c.data],
      [2],
      (lib, [ha, hb, hc]) =>
        lib.lk_cuda_gemm_f32(ha!, hb!, hc!, m, k, n, ta ? 1 : 0, tb ? 1 : 0, beta),
    );
  } else gemmRef(a.data, b.data, c.data, [m, k, n], ta, tb, beta);
  return c;
}

/** The TypeScript reference: f64 sums, C = op(A)·op(B) + beta·C. */
export function gemmRef(
  a: Float32Array,
  b: Float32Array,
  c: Float32Array,
  [m, k, n]: [number, number, number],
  transA: boolean,
  transB: boolean,
  beta: number,
): void {
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = transA ? a[p * m + i]! : a[i * k + p]!;
      if (transB) { for (let j = 0; j < n; j++) row[j]! += aip * b[j * k + p]!; }
      else for (let j = 0, o = p * n; j < n; j++) row[j]! += aip * b[o + j]!;
    }
    for (let j = 0; j < n; j++) c[i * n + j] = row[j]! + (beta ? c[i * n + j]! : 0);
  }
}
