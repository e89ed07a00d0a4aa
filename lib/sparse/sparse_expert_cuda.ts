/**
 * The routed expert layer on the GPU: tokens in bf16 on the device, the router's projection
 * through cuBLAS (f32 accumulation; with fewer clusters than PCA dimensions, the k linear scores of
 * `routerScores` instead), the nearest centroid, tokens grouped by cluster, one product
 * per expert and a scatter back, all in one call of the CUDA library (`lk_cuda_routed_bf16`).
 * How the experts live on the device ({@linkcode ExpertStorage}): experts that are all 2:4 run on
 * the sparse tensor cores through cuSPARSELt; other experts stay bitmaps (bf16 values, so E experts
 * at sparsity s take about E·(1 − s) dense layers plus an eighth of a bit-per-entry index) and each
 * is unpacked into one dense scratch just before its cuBLAS product; or, the authors' way, every
 * expert is a dense bf16 matrix (E dense copies, no unpacking).
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
import {
  type SparseWeight,
  sparseWeightToBitmap,
  sparseWeightToDense,
} from "../kernels/sparse_weight.ts";
import type { BitmapMatrix } from "../kernels/spmm_bitmap.ts";
import { nmPatternOf } from "../kernels/spmm_nm.ts";
import { projectedMean, type Router, routerScores } from "./router.ts";

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

/**
 * Whether 2:4 products are tuned: with `true`, each new cuSPARSELt plan (one per 2:4 weight and
 * padded token count, made on its first product) times every algorithm cuSPARSELt has for its
 * shape (`cusparseLtMatmulSearch`) and keeps the fastest; with `false` (the default) it takes
 * cuSPARSELt's default algorithm. A search costs a few dozen products once per plan. Affects plans
 * made after the call. A search runs once per problem (weight shape, padded token count): the
 * next weight of the same shape takes its choice. On an H200 (bench/gpu/RESULTS.md) the routed
 * layer at Llama-2-70B shapes with 16 experts and 4,096 tokens ran 1.5–1.65× faster tuned (up:
 * 0.35–0.46× → 0.57–0.70× of dense bf16 over three runs; down: 0.43× → 0.58×), but with a search
 * per expert the first product took about 4 s; whether sharing the choice keeps that speed at a
 * sixteenth of the cost is for the next GPU run (`bench/gpu/check.sh --routed`) to say, so it
 * stays off by default.
 *
 * @example Tune the 2:4 experts' products (where a GPU is present)
 * ```ts ignore
 * import { setSp24Search } from "./sparse_expert_cuda.ts";
 * setSp24Search(true);
 * ```
 */
export function setSp24Search(on: boolean): void {
  check(cuda(), cuda().lk_cuda_sp24_set_search(on ? 1 : 0));
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

/**
 * How routed experts are held on the GPU: `"2:4"` compressed for the sparse tensor cores (every
 * expert 2:4, both sizes multiples of 32), `"bitmap"` (bits, row offsets and bf16 values, unpacked
 * per expert before a dense product) or `"dense"` (bf16 matrices).
 */
export type ExpertStorage = "2:4" | "bitmap" | "dense";

const FORM: Record<ExpertStorage, number> = { "dense": 0, "2:4": 1, "bitmap": 2 };

/**
 * The storage `CudaRoutedExperts` uses for `experts`: `requested` when given (checked: `"2:4"` needs
 * every expert 2:4 with both sizes multiples of 32), else `"2:4"` where that holds and
 * `"bitmap"` otherwise. Reads the stored forms, no device needed.
 *
 * @example
 * ```ts
 * import { expertStorage } from "./sparse_expert_cuda.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = new Matrix(32, 32, new Float32Array(1024).map((_, i) => i % 4 < 2 ? 1 : 0));
 * if (expertStorage([w, w]) !== "2:4") throw new Error("2:4 experts");
 * const dense = new Matrix(32, 32, new Float32Array(1024).fill(1));
 * if (expertStorage([w, dense]) !== "bitmap") throw new Error("mixed");
 * ```
 */
export function expertStorage(
  experts: readonly (Matrix | SparseWeight)[],
  requested?: ExpertStorage,
): ExpertStorage {
  if (requested !== undefined && !Object.hasOwn(FORM, requested)) {
    throw new RangeError(
      `Unknown expert storage '${requested}', expected "2:4", "bitmap" or "dense"`,
    );
  }
  const a = experts[0] && (experts[0] instanceof Matrix ? experts[0] : experts[0].matrix);
  if (!a) throw new ShapeError("No experts given");
  if (requested === "bitmap" || requested === "dense") return requested;
  const fits = a.rows % 32 === 0 && a.cols % 32 === 0;
  if (requested === undefined) return fits && experts.every(is24) ? "2:4" : "bitmap";
  if (!fits) {
    throw new ShapeError(
      `2:4 experts on the sparse tensor cores need both sizes multiples of 32, got ${a.rows}×${a.cols}`,
    );
  }
  const bad = experts.findIndex((e) => !is24(e));
  if (bad >= 0) {
    throw new RangeError(
      `Expert ${bad} is not 2:4 (some group of 4 columns holds more than 2 nonzeros)`,
    );
  }
  return "2:4";
}

/** Device copies of a router and its experts, and the routed product on them. */
export class CudaRoutedExperts {
  /** How the experts are held on the device. */
  readonly storage: ExpertStorage;
  /**
   * Device bytes of the experts' arrays (for 2:4 the kept bf16 values and their 2-bit positions,
   * which cuSPARSELt's own layout may pad).
   */
  readonly expertBytes: number;
  /** Input width. */
  readonly inFeatures: number;
  /** Output width. */
  readonly outFeatures: number;
  readonly #router: Router;
  readonly #comp: DeviceBuffer;
  readonly #zoff: DeviceBuffer;
  /** The centroids, or null when the router runs as k linear scores (k < rank). */
  readonly #cent: DeviceBuffer | null;
  /** Rows of #comp: the PCA rank, or k for the score form. */
  readonly #rows: number;
  readonly #experts: Int32Array;
  readonly #owned: DeviceBuffer[] = [];
  #freed = false;

  /**
   * Uploads `router` and `experts` (dense f32 out × in matrices or compressed weights). With
   * `storage` unset, 2:4 experts (out and in multiples of 32) go to the sparse tensor cores and
   * any others stay bitmaps. An expert object given for several clusters is converted once.
   */
  constructor(
    router: Router,
    experts: readonly (Matrix | SparseWeight)[],
    options: { storage?: ExpertStorage } = {},
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
    this.storage = expertStorage(experts, options.storage);
    this.inFeatures = a.cols;
    this.outFeatures = a.rows;
    this.#router = router;
    const lib = cuda(), { rank, k } = router;
    if (k < rank) {
      // fewer clusters than PCA dimensions: the nearest centroid as the top of k linear scores
      // (routerScores), one k × d product on the device instead of the r × d projection
      const { w, bias } = routerScores(router);
      this.#rows = k;
      this.#comp = toDeviceBf16(w.data as Float32Array);
      this.#zoff = DeviceBuffer.from(Float32Array.from(bias, (b) => -b));
      this.#cent = null;
    } else {
      // z = (x − mean)·Cᵀ = x·Cᵀ − mean·Cᵀ: the second term once, in f64
      this.#rows = rank;
      this.#comp = toDeviceBf16(Float32Array.from(router.components));
      this.#zoff = DeviceBuffer.from(Float32Array.from(projectedMean(router)));
      this.#cent = DeviceBuffer.from(Float32Array.from(router.centroids.subarray(0, k * rank)));
    }
    const per = this.storage === "bitmap" ? 3 : 1;
    this.#experts = new Int32Array(per * k);
    const bitmaps = new Map<Matrix | SparseWeight, BitmapMatrix>();
    let bytes = 0;
    // each buffer is owned (freed on failure) as soon as it exists
    const own = (b: DeviceBuffer) => (this.#owned.push(b), b.handle);
    try {
      experts.forEach((e, c) => {
        if (this.storage === "bitmap") {
          let bm = bitmaps.get(e);
          if (!bm) bitmaps.set(e, bm = sparseWeightToBitmap(e));
          this.#experts.set([
            own(DeviceBuffer.from(bm.bits)),
            own(DeviceBuffer.from(bm.rowPtr)),
            own(toDeviceBf16(bm.val)),
          ], 3 * c);
          bytes += bm.bits.byteLength + bm.rowPtr.byteLength + 2 * bm.val.length;
          return;
        }
        const w = e instanceof Matrix ? e : sparseWeightToDense(e);
        if (this.storage === "dense") {
          this.#experts[c] = own(toDeviceBf16(w.data as Float32Array));
          bytes += 2 * w.data.length;
          return;
        }
        const b = toDeviceBf16(w.data as Float32Array);
        try {
          const id = new Int32Array(1);
          check(lib, lib.lk_cuda_sp24_create(b.handle, w.rows, w.cols, id, 1));
          this.#experts[c] = id[0]!;
          bytes += w.data.length + w.data.length / 8; // half the entries in bf16, 2 bits each
        } finally {
          b.dispose();
        }
      });
    } catch (e) {
      this[Symbol.dispose]();
      throw e;
    }
    this.expertBytes = bytes;
  }

  /** Whether the experts run as 2:4 sparse weights on the sparse tensor cores. */
  get sparse(): boolean {
    return this.storage === "2:4";
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
        this.#rows,
        this.#zoff.handle,
        this.#cent?.handle ?? 0,
        r.k,
        this.#experts,
        this.#experts.length,
        FORM[this.storage],
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
    if (this.storage === "2:4") {
      for (const id of this.#experts) if (id > 0) lib.lk_cuda_sp24_free(id);
    }
    for (const b of [...this.#owned, this.#comp, this.#zoff, this.#cent]) b?.dispose();
  }
}
