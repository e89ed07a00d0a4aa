/**
 * The OBS preparation step of SparseGPT and GPTQ: from a layer Hessian H, the upper Cholesky
 * factor U of (H + λI)⁻¹ with λ = percdamp·mean(diag H).
 *
 * @module
 */
import { check, cpu, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { NumericalError, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve } from "./_backend.ts";

/** Options of {@linkcode obsPrepare}. */
export interface ObsOptions extends KernelOptions {
  /** Relative damping (default 0.01, as in SparseGPT and GPTQ). */
  percdamp?: number;
  /** Tries, each with 10× the damping of the last, before failing (default 4). */
  maxTries?: number;
}

/** Result of {@linkcode obsPrepare}. */
export interface ObsResult {
  /** Upper-triangular U with UᵀU = (H + λI)⁻¹ (zeros below the diagonal). */
  u: Matrix<Float64Array>;
  /** The percdamp that succeeded (≥ the one asked for). */
  percdamp: number;
  /** Columns whose diagonal was 0 and was set to 1 (their weights should be zeroed). */
  dead: number;
}

/**
 * Computes U = chol((H + λI)⁻¹)ᵀ (upper), leaving H unchanged. Zero diagonal entries ("dead"
 * inputs) are set to 1 first, as SparseGPT does. When H + λI is not positive definite the damping
 * grows tenfold per try; after `maxTries` a {@linkcode NumericalError} names the dampings tried.
 *
 * @example
 * ```ts
 * import { obsPrepare } from "./obs.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertAlmostEquals } from "@std/assert";
 *
 * const h = new Matrix(2, 2, new Float64Array([4, 0, 0, 1]));
 * const { u } = obsPrepare(h, { percdamp: 0, backend: "ts" });
 * assertAlmostEquals(u.get(0, 0), 0.5);
 * assertAlmostEquals(u.get(1, 1), 1);
 * ```
 */
export function obsPrepare(h: Matrix<Float64Array>, options: ObsOptions = {}): ObsResult {
  const { percdamp, maxTries } = checkObs(h, options);
  const n = h.rows;
  const backend = resolve(options);
  if (backend === "ts") return obsPrepareRef(h, percdamp, maxTries);
  if (backend === "cuda") {
    const r = obsPrepareDevice(h, options);
    using d = r.u;
    return { ...r, u: new Matrix(n, n, d.download(new Float64Array(n * n))) };
  }
  const u = new Matrix(n, n, Float64Array.from(h.data));
  const info = new Float64Array(2);
  const lib = cpu();
  check(lib, lib.lk_cpu_obs_prepare_f64(u.data, u.data.length, n, percdamp, maxTries, info, 2));
  return { u, percdamp: info[0] as number, dead: info[1] as number };
}

/** Result of {@linkcode obsPrepareDevice}: {@linkcode ObsResult} with U left on the GPU. */
export interface ObsDeviceResult extends Omit<ObsResult, "u"> {
  /** U (n × n, f64, row-major) in device memory; the caller disposes of it. */
  u: DeviceBuffer;
}

/**
 * {@linkcode obsPrepare} on the cuda backend with U left in device memory, for a kernel that reads
 * it next (SparseGPT's sweep): H goes up once and U never comes back to the host. Options as
 * obsPrepare's, less `backend`; throws `BackendUnavailableError` without a GPU.
 *
 * @example Prepare on the GPU and keep U there (where a GPU is present)
 * ```ts ignore
 * import { obsPrepareDevice } from "./obs.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const r = obsPrepareDevice(new Matrix(2, 2, new Float64Array([4, 0, 0, 1])));
 * using u = r.u;
 * console.log(u.download(new Float64Array(4)), r.percdamp);
 * ```
 */
export function obsPrepareDevice(
  h: Matrix<Float64Array>,
  options: Omit<ObsOptions, "backend"> = {},
): ObsDeviceResult {
  const { percdamp, maxTries } = checkObs(h, options);
  const lib = cuda();
  const d = DeviceBuffer.from(h.data); // prepared in place there; h itself is not touched
  const info = new Float64Array(2);
  try {
    check(lib, lib.lk_cuda_obs_prepare_f64(d.handle, h.rows, percdamp, maxTries, info, 2));
  } catch (e) {
    d[Symbol.dispose]();
    throw e;
  }
  return { u: d, percdamp: info[0] as number, dead: info[1] as number };
}

function checkObs(h: Matrix<Float64Array>, options: Omit<ObsOptions, "backend">) {
  const { percdamp = 0.01, maxTries = 4 } = options;
  if (h.cols !== h.rows || h.rows < 1) {
    throw new ShapeError(`Cannot prepare OBS from a ${h.rows}×${h.cols} H: expected square, n ≥ 1`);
  }
  if (!(percdamp >= 0) || !Number.isFinite(percdamp)) {
    throw new RangeError(`Cannot damp with percdamp=${percdamp}: expected a finite number ≥ 0`);
  }
  if (!Number.isInteger(maxTries) || maxTries < 1) {
    throw new RangeError(`Cannot use maxTries=${maxTries}: expected an integer ≥ 1`);
  }
  return { percdamp, maxTries };
}

/** In-place lower Cholesky of a row-major f64 matrix; returns false when not positive definite. */
function cholLower(a: Float64Array, n: number): boolean {
  for (let j = 0; j < n; j++) {
    let d = a[j * n + j] as number;
    for (let p = 0; p < j; p++) d -= (a[j * n + p] as number) ** 2;
    if (!(d > 0) || !Number.isFinite(d)) return false;
    const l = Math.sqrt(d);
    a[j * n + j] = l;
    for (let i = j + 1; i < n; i++) {
      let s = a[i * n + j] as number;
      for (let p = 0; p < j; p++) s -= (a[i * n + p] as number) * (a[j * n + p] as number);
      a[i * n + j] = s / l;
    }
    for (let i = 0; i < j; i++) a[i * n + j] = 0;
  }
  return true;
}

/**
 * The TypeScript reference, written the way IST-DASLab/sparsegpt computes it:
 * L = chol(H + λI); H⁻¹ = (LLᵀ)⁻¹ (cholesky_inverse); U = chol(H⁻¹, upper).
 */
export function obsPrepareRef(h: Matrix<Float64Array>, percdamp = 0.01, maxTries = 4): ObsResult {
  const n = h.rows;
  const base = Float64Array.from(h.data);
  for (let i = 0; i < base.length; i++) {
    if (!Number.isFinite(base[i])) {
      throw new NumericalError(
        `H[${Math.floor(i / n)},${i % n}] is ${base[i]}: expected a finite number`,
      );
    }
  }
  let dead = 0, mean = 0;
  for (let i = 0; i < n; i++) {
    if (base[i * n + i] === 0) {
      base[i * n + i] = 1;
      dead++;
    }
    mean += base[i * n + i] as number;
  }
  mean /= n;
  const tried: number[] = [];
  let damp = percdamp;
  for (let t = 0; t < maxTries; t++, damp *= 10) {
    const a = Float64Array.from(base);
    for (let i = 0; i < n; i++) a[i * n + i]! += damp * mean;
    if (!cholLower(a, n)) {
      tried.push(damp);
      continue;
    }
    // Linv (lower) by forward substitution, then Hinv = Linvᵀ·Linv
    const li = new Float64Array(n * n);
    for (let j = 0; j < n; j++) {
      li[j * n + j] = 1 / (a[j * n + j] as number);
      for (let i = j + 1; i < n; i++) {
        let s = 0;
        for (let p = j; p < i; p++) s += (a[i * n + p] as number) * (li[p * n + j] as number);
        li[i * n + j] = -s / (a[i * n + i] as number);
      }
    }
    const hinv = new Float64Array(n * n);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let s = 0;
        for (let p = i; p < n; p++) s += (li[p * n + i] as number) * (li[p * n + j] as number);
        hinv[i * n + j] = s;
        hinv[j * n + i] = s;
      }
    }
    if (!cholLower(hinv, n)) {
      tried.push(damp);
      continue;
    }
    const u = new Matrix(n, n, hinv).transpose();
    return { u, percdamp: damp, dead };
  }
  throw new NumericalError(
    `H + λI is not positive definite for percdamp ${tried.join(", ")} (λ = percdamp·${mean})`,
  );
}
