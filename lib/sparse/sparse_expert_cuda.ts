/**
 * The routed expert layer on the GPU: tokens in bf16 on the device, the router's projection
 * through cuBLAS (f32 accumulation), the nearest centroid, tokens grouped by cluster, one product
 * per expert and a scatter back, all in one call of the CUDA library (`lk_cuda_routed_bf16`).
 * Experts that are all 2:4 run on the sparse tensor cores through cuSPARSELt; any other experts
 * run as dense bf16 matrices through cuBLAS (the authors' way, a gather per cluster).
 *
 * Results are bf16 products of bf16 inputs (about 3 significant digits), and a token whose two
 * nearest centroids are almost equally far may be routed differently from the f64 router of the
 * cpu path.
 *
 * @module
 */
import { check, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type SparseWeight, sparseWeightToDense } from "../kernels/sparse_weight.ts";
import { nmPatternOf } from "../kernels/spmm_nm.ts";
import type { Router } from "./router.ts";

/** Uploads f32 values and converts them to a new bf16 device buffer. */
export function toDeviceBf16(data: Float32Array): DeviceBuffer {
  using f = DeviceBuffer.from(data);
  const b = DeviceBuffer.alloc("bf16", data.length);
  try {
    check(cuda(), cuda().lk_cuda_convert(f.handle, b.handle));
  } catch (e) {
    b.dispose();
    throw e;
  }
  return b;
}

/** The values of a bf16 device buffer, widened to f32 on the device and downloaded. */
export function bf16ToHost(b: DeviceBuffer): Float32Array {
  using f = DeviceBuffer.alloc("f32", b.length);
  check(cuda(), cuda().lk_cuda_convert(b.handle, f.handle));
  return f.download(new Float32Array(b.length));
}

const TWO_FOUR = [{ n: 2, m: 4 }];

/**
 * Whether every group of 4 columns of `w` holds at most 2 nonzeros, read from the stored form
 * where it tells (packed N:M, bitmap) without a dense copy.
 */
function is24(w: Matrix | SparseWeight): boolean {
  if (w instanceof Matrix) return nmPatternOf(w, TWO_FOUR) !== undefined;
  if (w.format === "nm" && w.matrix.m % 4 === 0 && w.matrix.n <= 2) return true;
  const form = w.format === "bitmap" ? w.matrix : sparseWeightToDense(w);
  return nmPatternOf(form, TWO_FOUR) !== undefined;
}

/** Device copies of a router and its experts, and the routed product on them. */
export class CudaRoutedExperts {
  /** Whether the experts run as 2:4 sparse weights (else dense bf16). */
  readonly sparse: boolean;
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  readonly #router: Router;
  readonly #comp: DeviceBuffer;
  readonly #zoff: DeviceBuffer;
  readonly #cent: DeviceBuffer;
  readonly #experts: Int32Array;
  readonly #owned: DeviceBuffer[] = [];
  #freed = false;

  /**
   * Uploads `router` and `experts` (dense f32 out × in matrices or compressed weights). With
   * `sparse` unset, 2:4 experts (n and in multiples of 32) go to the sparse tensor cores.
   */
  constructor(
    router: Router,
    experts: readonly (Matrix | SparseWeight)[],
    options: { sparse?: boolean } = {},
  ) {
    // shapes and the 2:4 test from the stored forms; each expert is densified only for its upload
    const shape = (e: Matrix | SparseWeight) => e instanceof Matrix ? e : e.matrix;
    const a = experts[0] && shape(experts[0]);
    if (!a || experts.length !== router.k) {
      throw new ShapeError(`${experts.length} experts for a router of ${router.k} clusters`);
    }
    if (
      a.cols !== router.dim ||
      experts.some((e) => shape(e).rows !== a.rows || shape(e).cols !== a.cols)
    ) {
      throw new ShapeError(`Experts must all be ${a.rows}×${router.dim}`);
    }
    const fits = a.rows % 32 === 0 && a.cols % 32 === 0;
    this.sparse = options.sparse ?? (fits && experts.every(is24));
    this.inFeatures = a.cols;
    this.outFeatures = a.rows;
    this.#router = router;
    const lib = cuda(), { dim, rank, k } = router;
    // z = (x − mean)·Cᵀ = x·Cᵀ − mean·Cᵀ: the second term once, in f64
    const zoff = new Float32Array(rank);
    for (let j = 0; j < rank; j++) {
      let s = 0;
      for (let i = 0; i < dim; i++) s += router.mean[i]! * router.components[j * dim + i]!;
      zoff[j] = s;
    }
    this.#comp = toDeviceBf16(Float32Array.from(router.components));
    this.#zoff = DeviceBuffer.from(zoff);
    this.#cent = DeviceBuffer.from(Float32Array.from(router.centroids.subarray(0, k * rank)));
    this.#experts = new Int32Array(k);
    try {
      experts.forEach((e, c) => {
        const w = e instanceof Matrix ? e : sparseWeightToDense(e);
        const b = toDeviceBf16(w.data as Float32Array);
        if (!this.sparse) {
          this.#owned.push(b);
          this.#experts[c] = b.handle;
          return;
        }
        try {
          const id = new Int32Array(1);
          check(lib, lib.lk_cuda_sp24_create(b.handle, w.rows, w.cols, id, 1));
          this.#experts[c] = id[0]!;
        } finally {
          b.dispose();
        }
      });
    } catch (e) {
      this[Symbol.dispose]();
      throw e;
    }
  }

  /**
   * The routed product on device buffers: `x` bf16 m × in, `y` bf16 m × out, `labels` i32 m
   * (each token's cluster).
   */
  forwardDevice(x: DeviceBuffer, m: number, y: DeviceBuffer, labels: DeviceBuffer): void {
    if (this.#freed) throw new RangeError("The device copies of this layer were freed");
    const lib = cuda(), r = this.#router;
    check(
      lib,
      lib.lk_cuda_routed_bf16(
        x.handle,
        m,
        this.inFeatures,
        this.#comp.handle,
        r.rank,
        this.#zoff.handle,
        this.#cent.handle,
        r.k,
        this.#experts,
        this.#experts.length,
        this.sparse ? 1 : 0,
        this.outFeatures,
        y.handle,
        labels.handle,
      ),
    );
  }

  /** `Y` for host rows `x` (uploaded, converted to bf16, and the result brought back in f32). */
  forward(x: Matrix): { y: Matrix; labels: Int32Array } {
    if (x.cols !== this.inFeatures) {
      throw new ShapeError(
        `Cannot route ${x.rows}×${x.cols} inputs through a layer of ${this.inFeatures} inputs`,
      );
    }
    const m = x.rows, n = this.outFeatures;
    if (m === 0) return { y: new Matrix(0, n, new Float32Array(0)), labels: new Int32Array(0) };
    using dx = toDeviceBf16(Float32Array.from(x.data));
    using dy = DeviceBuffer.alloc("bf16", m * n), dl = DeviceBuffer.alloc("i32", m);
    this.forwardDevice(dx, m, dy, dl);
    return { y: new Matrix(m, n, bf16ToHost(dy)), labels: dl.download(new Int32Array(m)) };
  }

  /** Frees the device copies. */
  [Symbol.dispose](): void {
    if (this.#freed) return;
    this.#freed = true;
    const lib = cuda();
    if (this.sparse) { for (const id of this.#experts) if (id > 0) lib.lk_cuda_sp24_free(id); }
    for (const b of [...this.#owned, this.#comp, this.#zoff, this.#cent]) b.dispose();
  }
}
