/**
 * The `Linear` abstraction every projection of the model goes through (q, k, v, o, gate, up,
 * down, lm_head), so that pruned, expert-routed or quantized layers can replace the dense one
 * without touching model code.
 *
 * @module
 */
import { check, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type Backend, matmul, selectBackend } from "../kernels/mod.ts";

/** y = x·Wᵀ for a batch of rows: tokens × in → tokens × out. */
export interface Linear {
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  /** Applies the layer to every row of `x`. */
  forward(x: Matrix): Matrix;
  /** Frees device memory, if any. */
  dispose?(): void;
}

/**
 * A dense layer with an out × in weight (HF layout). On the cuda backend the weight is uploaded
 * once and stays on the device; call {@linkcode DenseLinear.setWeight} after editing it.
 *
 * @example
 * ```ts
 * import { DenseLinear } from "./linear.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 * const l = new DenseLinear(Matrix.from([[1, 0], [1, 1], [0, 2]]), { backend: "ts" });
 * assertEquals(Array.from(l.forward(Matrix.from([[3, 4]])).data), [3, 7, 8]);
 * ```
 */
export class DenseLinear implements Linear {
  /** The weight, out × in. */
  weight: Matrix;
  /** The backend this layer runs on. */
  readonly backend: Backend;
  #dev: DeviceBuffer | undefined;

  /**
   * Wraps a weight.
   * @param weight out × in.
   * @param options Backend (default: the best available).
   */
  constructor(weight: Matrix, options: { backend?: Backend } = {}) {
    this.weight = weight;
    this.backend = selectBackend(options.backend);
    if (this.backend === "cuda") this.#dev = DeviceBuffer.from(weight.data);
  }

  /** Input width. */
  get inFeatures(): number {
    return this.weight.cols;
  }

  /** Output width. */
  get outFeatures(): number {
    return this.weight.rows;
  }

  /** Replaces the weight (same shape), re-uploading it on cuda. */
  setWeight(weight: Matrix): void {
    if (weight.rows !== this.weight.rows || weight.cols !== this.weight.cols) {
      throw new ShapeError(
        `Cannot replace a ${this.weight.rows}×${this.weight.cols} weight by a ${weight.rows}×${weight.cols} one`,
      );
    }
    this.weight = weight;
    this.#dev?.upload(weight.data);
  }

  /** See {@linkcode Linear.forward}. */
  forward(x: Matrix): Matrix {
    if (x.cols !== this.inFeatures) {
      throw new ShapeError(`Cannot apply a ${this.inFeatures}-input layer to rows of ${x.cols}`);
    }
    if (!this.#dev) return matmul(x, this.weight, { transB: true, backend: this.backend });
    const lib = cuda();
    const y = Matrix.zeros(x.rows, this.outFeatures);
    using dx = DeviceBuffer.from(x.data);
    using dy = DeviceBuffer.alloc("f32", y.data.length);
    check(
      lib,
      lib.lk_cuda_matmul_f32(
        dx.handle,
        this.#dev.handle,
        dy.handle,
        x.rows,
        this.inFeatures,
        this.outFeatures,
        1,
      ),
    );
    dy.download(y.data);
    return y;
  }

  /** Frees the device copy (cuda). */
  dispose(): void {
    this.#dev?.dispose();
    this.#dev = undefined;
  }
}
