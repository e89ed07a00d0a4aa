/**
 * Sparse Expansion experts stored compressed: the same router as {@linkcode ExpertLinear}, each
 * expert's pruned weight in a compressed form (bitmap or block-sparse by density, see
 * `lib/kernels/sparse_weight.ts`), and a forward that groups tokens by cluster, runs each
 * expert's sparse product and scatters the rows back.
 *
 * @module
 */
import type { Backend } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import type { Linear } from "../model/linear.ts";
import {
  type CompressOptions,
  compressWeight,
  sparseMatmulT,
  type SparseWeight,
  sparseWeightBytes,
} from "../kernels/sparse_weight.ts";
import type { ExpertLinear } from "./expansion.ts";
import { routedForward, type Router } from "./router.ts";
import { CudaRoutedExperts } from "./sparse_expert_cuda.ts";

/** A routed layer of compressed experts. */
export class SparseExpertLinear implements Linear {
  /** The router. */
  readonly router: Router;
  /** One compressed out × in weight per cluster. */
  readonly experts: SparseWeight[];
  readonly #backend: Backend | undefined;
  #gpu: CudaRoutedExperts | undefined;

  /** Creates the layer from a router and compressed experts of equal shape. */
  constructor(router: Router, experts: SparseWeight[], backend?: Backend) {
    if (experts.length !== router.k) {
      throw new ShapeError(`${experts.length} experts for a router of ${router.k} clusters`);
    }
    const [a] = experts;
    if (
      !a || experts.some((e) => e.matrix.rows !== a.matrix.rows || e.matrix.cols !== a.matrix.cols)
    ) {
      throw new ShapeError("Experts must all have the same shape");
    }
    if (a.matrix.cols !== router.dim) {
      throw new ShapeError(`Experts take ${a.matrix.cols} inputs, the router ${router.dim}`);
    }
    this.router = router;
    this.experts = experts;
    this.#backend = backend;
  }

  /** The compressed form of a dense-expert layer (its zeros dropped), each expert by `options`. */
  static fromExpertLinear(
    layer: ExpertLinear,
    options: CompressOptions & { backend?: Backend } = {},
  ): SparseExpertLinear {
    return new SparseExpertLinear(
      layer.router,
      layer.experts.map((w) => compressWeight(w, options)),
      options.backend,
    );
  }

  /** Input width. */
  get inFeatures(): number {
    return this.experts[0]!.matrix.cols;
  }

  /** Output width. */
  get outFeatures(): number {
    return this.experts[0]!.matrix.rows;
  }

  /** Bytes of all experts' compressed arrays (the router not included). */
  get bytes(): number {
    return this.experts.reduce((s, e) => s + sparseWeightBytes(e), 0);
  }

  /**
   * Routes each row, runs each expert's sparse product on its rows, scatters the results back.
   * On the cuda backend the whole layer runs on the GPU in bf16 (`CudaRoutedExperts`: 2:4
   * experts on the sparse tensor cores, others as bitmaps unpacked per expert before a cuBLAS
   * product), its device copies made on the first call.
   */
  forward(x: Matrix): Matrix {
    if (this.#backend === "cuda") {
      this.#gpu ??= new CudaRoutedExperts(this.router, this.experts);
      return this.#gpu.forward(x).y;
    }
    const opts = this.#backend ? { backend: this.#backend } : {};
    return routedForward(
      this.router,
      x,
      this.outFeatures,
      (c, g) => sparseMatmulT(g, this.experts[c]!, opts),
    );
  }

  /**
   * Frees the GPU copies made by a forward on the cuda backend (a no-op otherwise); the model's
   * `dispose()` calls it for every layer.
   */
  dispose(): void {
    this.#gpu?.[Symbol.dispose]();
    this.#gpu = undefined;
  }

  /** For `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}
