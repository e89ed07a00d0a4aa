/**
 * SparseGPT (Frantar & Alistarh 2023) as IST-DASLab/sparsegpt runs it: the layer Hessian
 * H = 2/N·Σxxᵀ with 1% damping, U the upper Cholesky factor of H⁻¹, columns in lazy blocks of
 * 128, a mask per block (unstructured: w²/U_ii² ≤ the block's ⌊n·s⌋-th smallest value, which
 * like upstream prunes one weight more than n·s per block; N:M: the N smallest of every
 * M inputs, chosen when the group's first column is reached) and OBS error compensation of the
 * remaining columns.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { check, cpu, cpuLibrary, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { type KernelOptions, obsPrepare, obsPrepareDevice, selectBackend } from "../kernels/mod.ts";
import { checkFinite, checkPattern, type PatternOptions } from "./_pattern.ts";

/** Options of {@linkcode sparseGpt}. */
export interface SparseGptOptions extends PatternOptions, KernelOptions {
  /**
   * Lazy-update block width (default 128). For N:M it is rounded down to a multiple of M (at
   * least M), so that every group lies in one block and is chosen from fully updated weights: the
   * N:M result does not depend on the block size, only the unstructured one does (one threshold
   * per block).
   */
  blockSize?: number;
  /** Relative damping of H (default 0.01); grows tenfold per retry when H is ill-conditioned. */
  percdamp?: number;
}

/** A pruned weight and its mask. */
export interface PruneResult {
  /** The new weight (rows × cols, f32). */
  weight: Matrix;
  /** 1 where a weight was set to zero. */
  mask: Uint8Array;
  /** The damping that succeeded (SparseGPT only). */
  percdamp?: number;
}

/**
 * Prunes `weight` (out × in) given the layer Hessian `hessian` (in × in, e.g. from
 * {@linkcode HessianAccumulator}). Returns a new weight; the input is not modified. The column
 * sweep runs in C on the cpu backend, on the device on cuda (blocks of at most 128 columns; wider
 * blocks fall back to the C sweep), in TypeScript on ts.
 *
 * @example
 * ```ts
 * import { sparseGpt } from "./sparsegpt.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[1, -2, 3, 0.5]]);
 * const h = new Matrix(4, 4, Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)));
 * const { weight, mask } = sparseGpt(w, h, { nm: [2, 4], backend: "ts" });
 * if (mask.reduce((a, b) => a + b) !== 2 || weight.get(0, 2) !== 3) throw new Error("wrong 2:4 mask");
 * ```
 */
export function sparseGpt(
  weight: Matrix,
  hessian: Matrix<Float64Array>,
  options: SparseGptOptions = {},
): PruneResult {
  const rows = weight.rows, cols = weight.cols;
  if (hessian.rows !== cols || hessian.cols !== cols) {
    throw new ShapeError(
      `A ${rows}×${cols} weight needs a ${cols}×${cols} Hessian, got ${hessian.rows}×${hessian.cols}`,
    );
  }
  const p = checkPattern(rows, cols, options);
  checkFinite(weight.data, "Weight", cols); // the Hessian is checked by the OBS preparation
  const B0 = options.blockSize ?? 128;
  if (!Number.isInteger(B0) || B0 < 1) {
    throw new RangeError(`Block size ${B0} is not a positive integer`);
  }
  const B = p.n > 0 ? Math.max(p.m, B0 - B0 % p.m) : B0;
  const W = Float64Array.from(weight.data);
  for (let j = 0; j < cols; j++) {
    if (hessian.data[j * cols + j] !== 0) continue;
    for (let r = 0; r < rows; r++) W[r * cols + j] = 0; // a dead input
  }
  const obs = { percdamp: options.percdamp ?? 0.01, maxTries: 6 };
  const mask = new Uint8Array(rows * cols);
  const backend = selectBackend(options.backend);
  if (backend === "cuda" && B <= 128) {
    // U stays on the device between the preparation and the sweep
    const lib = cuda(), prep = obsPrepareDevice(hessian, obs);
    using du = prep.u, dw = DeviceBuffer.from(W), dp = DeviceBuffer.from(p.rows);
    using dm = DeviceBuffer.alloc("u8", rows * cols);
    check(
      lib,
      lib.lk_cuda_sparsegpt_f64(
        dw.handle,
        du.handle,
        rows,
        cols,
        p.sparsity,
        p.n,
        p.m,
        dp.handle,
        B,
        dm.handle,
      ),
    );
    dw.download(W);
    dm.download(mask);
    return { weight: new Matrix(rows, cols, Float32Array.from(W)), mask, percdamp: prep.percdamp };
  }
  const prep = obsPrepare(hessian, { ...obs, backend });
  const U = prep.u.data;
  if (backend !== "ts" && cpuLibrary().lib) {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_sparsegpt_f64(
        W,
        W.length,
        U,
        U.length,
        rows,
        cols,
        p.sparsity,
        p.n,
        p.m,
        p.rows,
        p.rows.length,
        B,
        mask,
        mask.length,
      ),
    );
    return { weight: new Matrix(rows, cols, Float32Array.from(W)), mask, percdamp: prep.percdamp };
  }
  const err = new Float64Array(rows * B);
  const tmp: number[] = [];
  for (let i1 = 0; i1 < cols; i1 += B) {
    const i2 = Math.min(i1 + B, cols), count = i2 - i1;
    if (p.n === 0) {
      // unstructured: threshold at the sparsity quantile of w²/U_ii² over the block's prunable rows
      tmp.length = 0;
      for (let r = 0; r < rows; r++) {
        if (!p.rows[r]) continue;
        for (let j = i1; j < i2; j++) {
          tmp.push((W[r * cols + j] as number) ** 2 / (U[j * cols + j] as number) ** 2);
        }
      }
      if (tmp.length > 0) {
        const sorted = Float64Array.from(tmp).sort();
        const thresh = sorted[Math.floor(sorted.length * p.sparsity)] as number;
        for (let r = 0; r < rows; r++) {
          if (!p.rows[r]) continue;
          for (let j = i1; j < i2; j++) {
            if ((W[r * cols + j] as number) ** 2 / (U[j * cols + j] as number) ** 2 <= thresh) {
              mask[r * cols + j] = 1;
            }
          }
        }
      }
    }
    for (let i = 0; i < count; i++) {
      const c = i1 + i, d = U[c * cols + c] as number;
      if (p.n !== 0 && c % p.m === 0) nmMask(W, U, mask, p.rows, rows, cols, c, p.n, p.m);
      for (let r = 0; r < rows; r++) {
        const w = W[r * cols + c] as number;
        const q = mask[r * cols + c] ? 0 : w;
        const e = (w - q) / d;
        err[r * B + i] = e;
        W[r * cols + c] = q;
        if (e !== 0) {
          // compensate the rest of the block now, later blocks lazily below
          for (let j = c + 1; j < i2; j++) W[r * cols + j]! -= e * (U[c * cols + j] as number);
        }
      }
    }
    if (i2 < cols) {
      // W[:, i2:] -= Err1 · U[i1:i2, i2:]
      for (let r = 0; r < rows; r++) {
        for (let i = 0; i < count; i++) {
          const e = err[r * B + i] as number;
          if (e === 0) continue;
          const urow = (i1 + i) * cols;
          for (let j = i2; j < cols; j++) W[r * cols + j]! -= e * (U[urow + j] as number);
        }
      }
    }
  }
  return { weight: new Matrix(rows, cols, Float32Array.from(W)), mask, percdamp: prep.percdamp };
}

/** N:M mask of the group starting at column c: the N smallest w²/U_jj² of each prunable row. */
function nmMask(
  W: Float64Array,
  U: Float64Array,
  mask: Uint8Array,
  prunable: Uint8Array,
  rows: number,
  cols: number,
  c: number,
  n: number,
  m: number,
): void {
  const score = new Array<[number, number]>(m);
  for (let r = 0; r < rows; r++) {
    if (!prunable[r]) continue;
    for (let k = 0; k < m; k++) {
      const j = c + k;
      score[k] = [(W[r * cols + j] as number) ** 2 / (U[j * cols + j] as number) ** 2, k];
    }
    score.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (let k = 0; k < n; k++) mask[r * cols + c + (score[k] as [number, number])[1]] = 1;
  }
}

/** ‖W·Xᵀ − Ŵ·Xᵀ‖² over the rows of `x` (tokens × in): the layer reconstruction loss. */
export function layerLoss(original: Matrix, pruned: Matrix, x: Matrix): number {
  const rows = original.rows, cols = original.cols;
  let loss = 0;
  for (let t = 0; t < x.rows; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < cols; j++) {
        s += ((original.data[r * cols + j] as number) - (pruned.data[r * cols + j] as number)) *
          (x.data[t * cols + j] as number);
      }
      loss += s * s;
    }
  }
  return loss;
}
