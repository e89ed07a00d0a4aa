/**
 * Gram accumulation H ← β·H + α·XᵀX over streamed batches of rows: the layer Hessian of
 * SparseGPT and GPTQ (H = 2/N·Σ xxᵀ). f32 input; H in f32 or f64.
 *
 * @module
 */
import { check, cpu, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix, type MatrixData } from "../core/matrix.ts";
import { type Backend, type KernelOptions, resolve } from "./_backend.ts";

/** Options of {@linkcode gramAccumulate}. */
export interface GramOptions extends KernelOptions {
  /** Scale of XᵀX (default 1). */
  alpha?: number;
  /** Scale of the old H (default 1). */
  beta?: number;
}

function checkShapes(h: Matrix<MatrixData>, x: Matrix): void {
  if (h.rows !== x.cols || h.cols !== x.cols) {
    throw new ShapeError(
      `Cannot accumulate XᵀX of a ${x.rows}×${x.cols} X into a ${h.rows}×${h.cols} H: expected H to be ${x.cols}×${x.cols}`,
    );
  }
}

/**
 * In place: H ← β·H + α·XᵀX. H keeps its element type (f32 or f64 accumulation).
 *
 * @example
 * ```ts
 * import { gramAccumulate } from "./gram.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const h = Matrix.zeros64(2, 2);
 * gramAccumulate(h, Matrix.from([[1, 2], [3, 4]]), { backend: "ts" });
 * assertEquals(Array.from(h.data), [10, 14, 14, 20]);
 * ```
 */
export function gramAccumulate<T extends MatrixData>(
  h: Matrix<T>,
  x: Matrix,
  options: GramOptions = {},
): Matrix<T> {
  checkShapes(h, x);
  const { alpha = 1, beta = 1 } = options;
  if (!Number.isFinite(alpha) || !Number.isFinite(beta)) {
    throw new RangeError(`Cannot scale by alpha=${alpha}, beta=${beta}: expected finite numbers`);
  }
  const backend = resolve(options);
  if (backend === "ts") {
    gramRef(h, x, alpha, beta);
    return h;
  }
  const n = x.cols, f64 = h.data instanceof Float64Array;
  if (backend === "cpu") {
    const lib = cpu();
    const fn = f64 ? lib.lk_cpu_gram_f64 : lib.lk_cpu_gram_f32;
    check(lib, fn(x.data, x.data.length, x.rows, n, h.data, h.data.length, alpha, beta));
    return h;
  }
  using dh = DeviceBuffer.from(h.data);
  cudaGram(dh, x, alpha, beta);
  dh.download(h.data);
  return h;
}

function cudaGram(dh: DeviceBuffer, x: Matrix, alpha: number, beta: number): void {
  const lib = cuda();
  using dx = DeviceBuffer.from(x.data);
  const fn = dh.dtype === "f64" ? lib.lk_cuda_gram_f64 : lib.lk_cuda_gram_f32;
  check(lib, fn(dx.handle, x.rows, x.cols, dh.handle, alpha, beta));
}

/** The TypeScript reference (f64 arithmetic, written into H's element type). */
export function gramRef(h: Matrix<MatrixData>, x: Matrix, alpha = 1, beta = 1): void {
  checkShapes(h, x);
  const n = x.cols, X = x.data, H = h.data;
  const acc = new Float64Array(n * n);
  for (let r = 0; r < x.rows; r++) {
    const off = r * n;
    for (let i = 0; i < n; i++) {
      const xi = X[off + i] as number;
      if (xi === 0) continue;
      const row = i * n;
      for (let j = 0; j <= i; j++) acc[row + j]! += xi * (X[off + j] as number);
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      const old = beta === 0 ? 0 : beta * (H[i * n + j] as number);
      const v = old + alpha * (acc[i * n + j] as number);
      H[i * n + j] = v;
      H[j * n + i] = v;
    }
  }
}

/** Options of {@linkcode HessianAccumulator}. */
export interface HessianOptions extends KernelOptions {
  /**
   * Element type H is accumulated in: `"f64"` (default; exact to rounding for any number of
   * tokens) or `"f32"`, as the authors' PyTorch code does (twice as fast on the cpu: ssyrk).
   */
  precision?: "f64" | "f32";
  /**
   * cpu: batches are gathered into blocks of up to this many entries (rows × n) before each
   * Gram call (default 2^24, 64 MB; never more than n², the size of H), so that small batches
   * do not each pay the call's fixed work.
   */
  gatherEntries?: number;
}

/**
 * The layer Hessian of SparseGPT/GPTQ, H = 2/N·Σ xxᵀ, accumulated batch by batch as
 * IST-DASLab/sparsegpt does (H ← H·N/(N+b) + 2/(N+b)·XᵀX). On the cuda backend H stays on the
 * device until {@linkcode HessianAccumulator.result} is called.
 *
 * @example
 * ```ts
 * import { HessianAccumulator } from "./gram.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const acc = new HessianAccumulator(2, { backend: "ts" });
 * acc.add(Matrix.from([[1, 0]]));
 * acc.add(Matrix.from([[0, 1]]));
 * assertEquals(Array.from(acc.result().data), [1, 0, 0, 1]);
 * ```
 */
export class HessianAccumulator {
  /** Number of rows (tokens) seen. */
  samples = 0;
  readonly #h: Matrix<Float32Array> | Matrix<Float64Array>;
  readonly #backend: Backend;
  #dev: DeviceBuffer | undefined;
  // cpu: rows are gathered into blocks of up to #gatherRows rows before each Gram call, so that
  // small batches do not pay the per-call work (syrk start-up, mirroring H) every time; the
  // buffer is allocated by the first batch that is gathered
  readonly #gatherRows: number;
  #pending: Float32Array | undefined;
  #pendingRows = 0;

  /**
   * Creates an empty accumulator.
   * @param n Number of columns (input features) of the layer.
   * @param options Backend and precision.
   */
  constructor(n: number, options: HessianOptions = {}) {
    const precision = options.precision ?? "f64";
    if (precision !== "f64" && precision !== "f32") {
      throw new RangeError(`Unknown Hessian precision '${precision}': expected f64 or f32`);
    }
    this.#h = precision === "f64" ? Matrix.zeros64(n, n) : Matrix.zeros(n, n);
    this.#backend = resolve(options);
    if (this.#backend === "cuda") this.#dev = DeviceBuffer.from(this.#h.data);
    const entries = Math.min(options.gatherEntries ?? 2 ** 24, n * n);
    this.#gatherRows = this.#backend === "cpu" && n > 0 ? Math.max(1, Math.floor(entries / n)) : 0;
  }

  /** Adds a batch of rows (tokens × features). */
  add(x: Matrix): void {
    checkShapes(this.#h, x);
    if (x.rows === 0) return;
    const n = x.cols;
    if (x.data instanceof Float32Array && x.rows <= this.#gatherRows) {
      if (this.#pendingRows + x.rows > this.#gatherRows) this.#flush();
      this.#pending ??= new Float32Array(this.#gatherRows * n);
      this.#pending.set(x.data, this.#pendingRows * n);
      this.#pendingRows += x.rows;
      this.samples += x.rows;
      return;
    }
    this.#flush();
    this.#gram(x, this.samples);
    this.samples += x.rows;
  }

  /** H ← H·N/(N+b) + 2/(N+b)·XᵀX for the b rows of x, N = rows before them. */
  #gram(x: Matrix, before: number): void {
    const total = before + x.rows, beta = before / total, alpha = 2 / total;
    if (this.#dev) cudaGram(this.#dev, x, alpha, beta);
    else gramAccumulate(this.#h as Matrix<MatrixData>, x, { alpha, beta, backend: this.#backend });
  }

  #flush(): void {
    if (!this.#pendingRows) return;
    const n = this.#h.cols;
    const x = new Matrix(this.#pendingRows, n, this.#pending!.subarray(0, this.#pendingRows * n));
    this.#gram(x, this.samples - this.#pendingRows);
    this.#pendingRows = 0;
  }

  /** H as an f64 matrix (copied back from the device on cuda; widened when kept in f32). */
  result(): Matrix<Float64Array> {
    this.#flush();
    if (this.#dev) this.#dev.download(this.#h.data);
    const h = this.#h;
    return h.data instanceof Float64Array
      ? h as Matrix<Float64Array>
      : new Matrix(h.rows, h.cols, Float64Array.from(h.data));
  }

  /** Frees device memory (cuda); a no-op elsewhere. */
  [Symbol.dispose](): void {
    this.#dev?.dispose();
    this.#dev = undefined;
  }
}
