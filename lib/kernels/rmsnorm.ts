/**
 * RMSNorm forward (keeping the per-row 1/rms that the backward needs) and backward.
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { expectLength, type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** What {@linkcode rmsNormForward} returns. */
export interface RmsNormResult {
  /** rows × cols output. */
  y: Matrix;
  /** 1/sqrt(mean(x²) + eps) per row. */
  rstd: Float32Array;
}

function checkNorm(fn: string, x: Matrix, w: Float32Array): void {
  if (w.length !== x.cols) {
    throw new ShapeError(`${fn}: the weight has ${w.length} elements, expected ${x.cols}`);
  }
}

/**
 * y = (x·rstd)·w per row with rstd = 1/sqrt(mean(x²) + eps), as HF's `LlamaRMSNorm`.
 *
 * @example
 * ```ts
 * import { rmsNormForward } from "./rmsnorm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const { y, rstd } = rmsNormForward(Matrix.from([[3, 4]]), new Float32Array([1, 2]), 0, { backend: "ts" });
 * // rms of (3, 4) is √12.5
 * if (Math.abs(rstd[0]! - 1 / Math.sqrt(12.5)) > 1e-7 || Math.abs(y.get(0, 1) - 8 / Math.sqrt(12.5)) > 1e-6) {
 *   throw new Error("wrong rmsnorm");
 * }
 * ```
 */
export function rmsNormForward(
  x: Matrix,
  w: Float32Array,
  eps: number,
  options: KernelOptions = {},
): RmsNormResult {
  checkNorm("rmsNormForward", x, w);
  if (!(eps >= 0) || !Number.isFinite(eps)) {
    throw new RangeError(`rmsNormForward: eps ${eps} is not a finite number ≥ 0`);
  }
  const y = Matrix.zeros(x.rows, x.cols), rstd = new Float32Array(x.rows);
  const { rows, cols } = x, backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_rmsnorm_f32(
        x.data,
        x.data.length,
        w,
        w.length,
        y.data,
        y.data.length,
        rstd,
        rstd.length,
        rows,
        cols,
        eps,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [x.data, w, y.data, rstd],
      [2, 3],
      (lib, [hx, hw, hy, hr]) => lib.lk_cuda_rmsnorm_f32(hx!, hw!, hy!, hr!, rows, cols, eps),
    );
  } else {
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let ss = 0;
      for (let i = 0; i < cols; i++) ss += x.data[o + i]! ** 2;
      const inv = Math.fround(1 / Math.sqrt(ss / cols + eps));
      rstd[r] = inv;
      for (let i = 0; i < cols; i++) y.data[o + i] = Math.fround(x.data[o + i]! * inv) * w[i]!;
    }
  }
  return { y, rstd };
}

/**
 * The backward of {@linkcode rmsNormForward}: returns dx and adds the weight's gradient to `dw`.
 * With x̂ = x·rstd and g = dy∘w: dx = rstd·(g − x̂·mean(g∘x̂)), dw += Σ_rows dy∘x̂.
 *
 * @example
 * ```ts
 * import { rmsNormBackward, rmsNormForward } from "./rmsnorm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // the gradient of a scale-invariant function: dx is orthogonal to x
 * const x = Matrix.from([[1, -2, 2]]), w = new Float32Array([1, 1, 1]);
 * const { rstd } = rmsNormForward(x, w, 0, { backend: "ts" });
 * const dw = new Float32Array(3);
 * const dx = rmsNormBackward(Matrix.from([[0.5, 1, 3]]), x, w, rstd, dw, { backend: "ts" });
 * const dot = dx.data.reduce((s, v, i) => s + v * x.data[i]!, 0);
 * if (Math.abs(dot) > 1e-6) throw new Error("dx not orthogonal to x");
 * ```
 */
export function rmsNormBackward(
  dy: Matrix,
  x: Matrix,
  w: Float32Array,
  rstd: Float32Array,
  dw: Float32Array,
  options: KernelOptions = {},
): Matrix {
  checkNorm("rmsNormBackward", x, w);
  const { rows, cols } = x;
  if (dy.rows !== rows || dy.cols !== cols) {
    throw new ShapeError(`rmsNormBackward: dy is ${dy.rows}×${dy.cols}, expected ${rows}×${cols}`);
  }
  expectLength("rmsNormBackward", "rstd", rstd, rows);
  expectLength("rmsNormBackward", "dw", dw, cols);
  const dx = Matrix.zeros(rows, cols), backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_rmsnorm_bwd_f32(
        dy.data,
        dy.data.length,
        x.data,
        x.data.length,
        w,
        w.length,
        rstd,
        rstd.length,
        dx.data,
        dx.data.length,
        dw,
        dw.length,
        rows,
        cols,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [dy.data, x.data, w, rstd, dx.data, dw],
      [4, 5],
      (lib, h) => lib.lk_cuda_rmsnorm_bwd_f32(h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, h[5]!, rows, cols),
    );
  } else {
    const acc = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols, s = rstd[r]!;
      let dot = 0;
      for (let i = 0; i < cols; i++) dot += dy.data[o + i]! * w[i]! * x.data[o + i]! * s;
      const mean = dot / cols;
      for (let i = 0; i < cols; i++) {
        const xh = x.data[o + i]! * s;
        dx.data[o + i] = s * (dy.data[o + i]! * w[i]! - xh * mean);
        acc[i]! += dy.data[o + i]! * xh;
      }
    }
    for (let i = 0; i < cols; i++) dw[i] = dw[i]! + acc[i]!;
  }
  return dx;
}
