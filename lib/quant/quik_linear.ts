/**
 * The QUIK layer in a model: each call quantizes its input per token (or takes the quantized
 * input a sibling projection already made) and runs the integer product with f32 outliers.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
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
 * On `ts` it is the simulated layer; `cuda` runs the cpu kernels for now.
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

  /**
   * @param weight The layer's weight (checked; its level sums are recomputed and must match).
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
    const backend = this.backend === "ts" ? "ts" : "cpu", w = this.weight;
    const q = this.#cache
      ? this.#cache.get(x, w.outliers, w.bits, backend)
      : quikQuantize(x, w.outliers, w.bits, { backend });
    return quikMatmul(q, w, { backend });
  }
}
