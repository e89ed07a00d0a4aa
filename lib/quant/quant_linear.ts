/**
 * A weight-only quantized projection (W4A16 / W8A16 on the CPU: 4-bit levels two to a byte, 5–8
 * bits one to a byte, f32 scales and zeros per group, any group order): the form a loaded GPTQ or
 * compressed-tensors checkpoint runs in, never expanded to an f32 matrix.
 *
 * @module
 */
import { check, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type Backend, selectBackend } from "../kernels/mod.ts";
import { type PackedQuantWeight, quantMatmul } from "../kernels/quant_matmul.ts";
import type { Linear } from "../model/linear.ts";
import type { QuantizedWeight } from "./quantizer.ts";

/** Packs levels into the row-packed form of {@linkcode PackedQuantWeight}. */
export function packQuantized(q: QuantizedWeight): PackedQuantWeight {
  const { rows, cols, groups } = q;
  const nibble = q.spec.bits <= 4, rowBytes = nibble ? Math.ceil(cols / 2) : cols;
  const packed = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const v = q.levels[r * cols + j] as number;
      if (nibble) packed[r * rowBytes + (j >> 1)]! |= j & 1 ? v << 4 : v;
      else packed[r * rowBytes + j] = v;
    }
  }
  // groups × rows → rows × groups
  const scales = new Float32Array(rows * groups), zeros = new Float32Array(rows * groups);
  for (let g = 0; g < groups; g++) {
    for (let r = 0; r < rows; r++) {
      scales[r * groups + g] = q.scales[g * rows + r] as number;
      zeros[r * groups + g] = q.zeros[g * rows + r] as number;
    }
  }
  return { rows, cols, nibble, packed, scales, zeros, gIdx: q.gIdx, groups };
}

/**
 * A {@linkcode Linear} over a quantized weight. On cuda the packed levels, scales, zeros and group
 * index are uploaded once and stay on the device (free them with `dispose`); only the tokens and
 * the outputs move per call.
 *
 * @example
 * ```ts
 * import { QuantLinear } from "./quant_linear.ts";
 * import { rtn } from "./gptq.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0.5, -1, 0.25], [1, 0, -0.5]]);
 * const lin = new QuantLinear(rtn(w, { bits: 8, sym: true }).quantized, { backend: "ts" });
 * const y = lin.forward(Matrix.from([[1, 1, 1]]));
 * if (Math.abs(y.get(0, 0) + 0.25) > 0.02) throw new Error("8-bit product should be close");
 * ```
 */
export class QuantLinear implements Linear {
  /** The packed weight the kernels read. */
  readonly weight: PackedQuantWeight;
  /** Bits per weight. */
  readonly bits: number;
  /** The backend this layer runs on. */
  readonly backend: Backend;
  #dev: DeviceBuffer[] | undefined;

  /**
   * Packs a quantized weight.
   * @param q Levels, scales, zeros and group index.
   * @param options Backend (default: the best available).
   */
  constructor(q: QuantizedWeight, options: { backend?: Backend } = {}) {
    this.weight = packQuantized(q);
    this.bits = q.spec.bits;
    this.backend = selectBackend(options.backend);
    if (this.backend === "cuda") {
      const w = this.weight;
      this.#dev = DeviceBuffer.fromAll([w.packed, w.scales, w.zeros, w.gIdx]);
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

  /** Bytes of levels, scales, zeros and group index as held. */
  get bytes(): number {
    const w = this.weight;
    return w.packed.byteLength + w.scales.byteLength + w.zeros.byteLength + w.gIdx.byteLength;
  }

  /** See {@linkcode Linear.forward}. */
  forward(x: Matrix): Matrix {
    if (x.cols !== this.inFeatures) {
      throw new ShapeError(`Cannot apply a ${this.inFeatures}-input layer to rows of ${x.cols}`);
    }
    if (!this.#dev || !(x.data instanceof Float32Array)) {
      return quantMatmul(x, this.weight, {
        backend: this.backend === "cuda" ? "cpu" : this.backend,
      });
    }
    const w = this.weight, lib = cuda(), y = Matrix.zeros(x.rows, w.rows);
    using dx = DeviceBuffer.from(x.data);
    using dy = DeviceBuffer.alloc("f32", y.data.length);
    const [p, s, z, g] = this.#dev.map((d) => d.handle) as [number, number, number, number];
    check(
      lib,
      lib.lk_cuda_quant_matmul_f32(
        dx.handle,
        p,
        s,
        z,
        g,
        dy.handle,
        x.rows,
        w.cols,
        w.rows,
        w.groups,
        w.nibble ? 1 : 0,
      ),
    );
    dy.download(y.data);
    return y;
  }

  /** Frees the device copy (cuda). */
  dispose(): void {
    for (const d of this.#dev ?? []) d.dispose();
    this.#dev = undefined;
  }
}
