/**
 * The QUIK layer in a model: each call quantizes its input per token (or takes the quantized
 * input a sibling projection already made) and runs the integer product with f32 outliers.
 *
 * @module
 */
import { check, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type Backend, selectBackend } from "../kernels/mod.ts";
import {
  checkQuikWeight,
  type QuikInput,
  quikLevelSums,
  quikMatmul,
  quikQuantize,
  type QuikWeight,
} from "../kernels/quik_matmul.ts";
import type { Linear } from "../model/linear.ts";

/**
 * The last input a group of projections quantized (q/k/v, gate/up read one input): the next
 * projection of the group given the same `Matrix` object takes it instead of quantizing again.
 * The input must not be edited between the projections' calls (the model does not).
 */
export class QuikInputCache {
  #x: Matrix | undefined;
  #q: QuikInput | undefined;
  /** How many calls were served from the cache. */
  hits = 0;

  /** The quantized `x`, made or reused. */
  get(x: Matrix, outliers: Int32Array, bits: number, backend: Backend): QuikInput {
    const q = this.#q;
    if (this.#x === x && q && q.bits === bits && q.outliers === outliers) {
      this.hits++;
      return q;
    }
    this.#q = quikQuantize(x, outliers, bits, { backend });
    this.#x = x;
    return this.#q;
  }
}

/**
 * A {@linkcode Linear} over a {@linkcode QuikWeight}: W4A4 or W8A8 with f32 outlier columns.
 * On `ts` it is the simulated layer. On cuda the weight is uploaded once and stays on the device
 * (free it with `dispose`); the tokens are quantized on the device and only they and the outputs
 * move per call.
 *
 * @example
 * ```ts
 * import { QuikLinear } from "./quik_linear.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // 1 output; integer column 0 at level 7 (stored 15), scale 0.5; column 1 an outlier of weight 2
 * const lin = new QuikLinear({
 *   rows: 1, cols: 2, bits: 4, outliers: Int32Array.of(1), levels: Uint8Array.of(15),
 *   scales: Float32Array.of(0.5), sums: Int32Array.of(7), outlierWeight: Float32Array.of(2),
 * }, { backend: "ts" });
 * const y = lin.forward(Matrix.from([[4, 10]]));
 * if (Math.abs(y.get(0, 0) - 34) > 1e-4) throw new Error(`got ${y.get(0, 0)}`);
 * ```
 */
export class QuikLinear implements Linear {
  /** The weight the kernels read. */
  readonly weight: QuikWeight;
  /** The backend this layer runs on. */
  readonly backend: Backend;
  readonly #cache: QuikInputCache | undefined;
  #dev: DeviceBuffer[] | undefined;

  /**
   * Checks the weight (its level sums are recomputed and must match) and, on cuda, uploads it.
   * @param weight The layer's weight.
   * @param options Backend (default: the best available); a cache shared with sibling projections.
   */
  constructor(weight: QuikWeight, options: { backend?: Backend; cache?: QuikInputCache } = {}) {
    checkQuikWeight(weight);
    const sums = quikLevelSums(
      weight.levels,
      weight.rows,
      weight.cols - weight.outliers.length,
      weight.bits,
    );
    const bad = sums.findIndex((v, r) => v !== weight.sums[r]);
    if (bad >= 0) {
      throw new RangeError(
        `Row ${bad}'s level sum is ${sums[bad]}, but the weight says ${weight.sums[bad]}`,
      );
    }
    this.weight = weight;
    this.backend = selectBackend(options.backend);
    this.#cache = options.cache;
    if (this.backend === "cuda") {
      this.#dev = DeviceBuffer.fromAll([
        weight.levels,
        weight.scales,
        weight.sums,
        weight.outlierWeight,
      ]);
    }
  }

  /** Input width. */
  get inFeatures(): number {
    return this.weight.cols;
  }

  /** Output width. */
  get outFeatures(): number {
    return this.weight.rows;
  }

  /** Bytes of levels, scales, sums, outlier indices and outlier weights as held. */
  get bytes(): number {
    const w = this.weight;
    return w.levels.byteLength + w.scales.byteLength + w.sums.byteLength +
      w.outliers.byteLength + w.outlierWeight.byteLength;
  }

  /** See {@linkcode Linear.forward}. */
  forward(x: Matrix): Matrix {
    if (x.cols !== this.inFeatures) {
      throw new ShapeError(`Cannot apply a ${this.inFeatures}-input layer to rows of ${x.cols}`);
    }
    const backend = this.#dev || this.backend === "ts" ? this.backend : "cpu", w = this.weight;
    const q = this.#cache
      ? this.#cache.get(x, w.outliers, w.bits, backend)
      : quikQuantize(x, w.outliers, w.bits, { backend });
    if (!this.#dev) return quikMatmul(q, w, { backend });
    const lib = cuda(), y = Matrix.zeros(x.rows, w.rows);
    if (x.rows === 0 || w.rows === 0) return y;
    using xq = DeviceBuffer.from(
      new Uint8Array(q.levels.buffer, q.levels.byteOffset, q.levels.length),
    );
    using xs = DeviceBuffer.from(q.scales);
    using xz = DeviceBuffer.from(q.zeros);
    using xo = DeviceBuffer.from(q.outlierValues);
    using dy = DeviceBuffer.alloc("f32", y.data.length);
    const [wq, ws, wsum, wo] = this.#dev.map((d) => d.handle) as [number, number, number, number];
    const no = w.outliers.length;
    check(
      lib,
      lib.lk_cuda_quik_matmul_f32(
        xq.handle,
        xs.handle,
        xz.handle,
        xo.handle,
        wq,
        ws,
        wsum,
        wo,
        dy.handle,
        -1,
        x.rows,
        w.cols - no,
        no,
        w.rows,
        w.bits,
        0,
      ),
    );
    dy.download(y.data as Float32Array);
    return y;
  }

  /** Frees the device copy (cuda). */
  dispose(): void {
    for (const d of this.#dev ?? []) d.dispose();
    this.#dev = undefined;
  }
}
