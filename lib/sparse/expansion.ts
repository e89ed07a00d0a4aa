/**
 * Sparse Expansion (Sawmya et al., ICLR 2025): each MLP projection becomes k sparse experts, one
 * SparseGPT-pruned copy of the weight per cluster of its input tokens, with hard top-1 routing by
 * PCA + k-means. gate_proj and up_proj share one router; down_proj has its own, fitted on its
 * inputs after gate/up were expanded. Attention stays dense.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { progress } from "../core/progress.ts";
import { HessianAccumulator } from "../kernels/gram.ts";
import { type Backend, matmul } from "../kernels/mod.ts";
import { DenseLinear, type Linear } from "../model/linear.ts";
import { KVCache, type LinearName, type LlamaModel } from "../model/llama.ts";
import { checkClusters, fitRouter, routedForward, type Router, routeTokens } from "./router.ts";
import { checkModelPattern } from "./_pattern.ts";
import { sparseGpt } from "./sparsegpt.ts";

/**
 * A routed expert layer: each token's row goes through the expert of its cluster. Experts are
 * stored as dense matrices with zeros for now (their count of nonzeros is what FLOPs count).
 */
export class ExpertLinear implements Linear {
  /** The router (shared with sibling layers when they see the same inputs). */
  readonly router: Router;
  /** One out × in weight per cluster. */
  readonly experts: Matrix[];
  readonly #backend: Backend;

  /**
   * Creates the layer.
   * @param router Fitted router over this layer's inputs.
   * @param experts One weight per cluster, all of the same shape.
   * @param backend Backend of the expert products.
   */
  constructor(router: Router, experts: Matrix[], backend: Backend) {
    if (experts.length !== router.k) {
      throw new ShapeError(`${experts.length} experts for a router of ${router.k} clusters`);
    }
    this.router = router;
    this.experts = experts;
    this.#backend = backend;
  }

  /** Input width. */
  get inFeatures(): number {
    return this.experts[0]!.cols;
  }

  /** Output width. */
  get outFeatures(): number {
    return this.experts[0]!.rows;
  }

  /** Routes each row, runs each expert on its rows (gathered), scatters the results back. */
  forward(x: Matrix): Matrix {
    return routedForward(
      this.router,
      x,
      this.outFeatures,
      (c, g) => matmul(g, this.experts[c]!, { transB: true, backend: this.#backend }),
    );
  }
}

/** Options of {@linkcode sparseExpand}. */
export interface ExpansionOptions {
  /** Experts per projection. */
  experts: number;
  /** Unstructured sparsity of every expert (ignored with `nm`). */
  sparsity?: number;
  /** N:M pattern of every expert. */
  nm?: [number, number];
  /** PCA reduction factor: rank = d / factor (default 32). */
  pcaFactor?: number;
  /** k-means restarts (default 10). */
  restarts?: number;
  /** Seed (default 0). */
  seed?: number;
  /** Element type of the layer Hessians (default "f64"; "f32" as the authors' PyTorch code). */
  hessian?: "f64" | "f32";
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/**
 * Expands every MLP projection of `model` in place, block after block, on `calibration`
 * sequences; block l is fitted on the outputs of the already-expanded blocks before it.
 */
export async function sparseExpand(
  model: LlamaModel,
  calibration: readonly (readonly number[])[],
  options: ExpansionOptions,
): Promise<void> {
  const L = model.config.numLayers, backend = model.backend === "ts" ? "ts" : "cpu";
  // bad options fail here, before any layer is replaced (the model is expanded in place)
  checkModelPattern(model, ["gate_proj", "up_proj", "down_proj"], pattern(options));
  checkClusters(options.experts, calibration.reduce((a, s) => a + s.length, 0));
  let hidden = calibration.map((s) => model.embedTokens(s));
  const bar = progress(
    "sparse expansion",
    L * 2,
    options.progress === undefined ? {} : { enabled: options.progress },
  );
  const positions = (n: number) => Array.from({ length: n }, (_, i) => i);
  const collect = (layer: number, name: LinearName): Matrix => {
    const parts: Matrix[] = [];
    for (const h of hidden) {
      model.blockForward(layer, h, positions(h.rows), new KVCache(model.config, h.rows), {
        linear: (e) => void (e.name === name && parts.push(e.input)),
      });
    }
    const rows = parts.reduce((a, p) => a + p.rows, 0), x = Matrix.zeros(rows, parts[0]!.cols);
    let off = 0;
    for (const p of parts) {
      x.data.set(p.data, off);
      off += p.data.length;
    }
    return x;
  };
  try {
    for (let l = 0; l < L; l++) {
      await new Promise((r) => setTimeout(r, 0)); // let the progress bar and signals through
      const blk = model.blocks[l]!;
      // gate and up share one router fitted on their common input
      const xg = collect(l, "gate_proj");
      const rg = fitRouter(xg, routerOptions(xg.cols, options, l));
      const lg = routeTokens(rg, xg);
      for (const name of ["gate_proj", "up_proj"] as const) {
        blk.linears[name] = expand(blk.linears[name], rg, xg, lg, options, backend);
      }
      bar.tick();
      const xd = collect(l, "down_proj"); // after gate/up were expanded
      const rd = fitRouter(xd, routerOptions(xd.cols, options, l + 1000));
      blk.linears.down_proj = expand(
        blk.linears.down_proj,
        rd,
        xd,
        routeTokens(rd, xd),
        options,
        backend,
      );
      bar.tick();
      hidden = hidden.map((h) =>
        model.blockForward(l, h, positions(h.rows), new KVCache(model.config, h.rows))
      );
    }
  } finally {
    bar.stop();
  }
}

function routerOptions(d: number, o: ExpansionOptions, salt: number) {
  return {
    k: o.experts,
    rank: Math.max(1, Math.floor(d / (o.pcaFactor ?? 32))),
    restarts: o.restarts ?? 10,
    seed: (o.seed ?? 0) * 7919 + salt,
  };
}

function expand(
  lin: Linear,
  router: Router,
  x: Matrix,
  labels: Int32Array,
  o: ExpansionOptions,
  backend: Backend,
): ExpertLinear {
  if (!(lin instanceof DenseLinear)) {
    throw new TypeError("Sparse Expansion needs a dense layer to expand");
  }
  const d = x.cols;
  const experts: Matrix[] = [];
  for (let c = 0; c < router.k; c++) {
    const acc = new HessianAccumulator(d, { backend, precision: o.hessian ?? "f64" });
    const rows: number[] = [];
    labels.forEach((l, t) => l === c && rows.push(t));
    if (rows.length === 0) {
      // an empty cluster is never routed to; keep a pruned copy for completeness
      experts.push(sparseGpt(lin.weight, identity(d), pattern(o)).weight);
      continue;
    }
    const xc = Matrix.zeros(rows.length, d);
    rows.forEach((t, i) => xc.data.set(x.data.subarray(t * d, (t + 1) * d), i * d));
    acc.add(xc);
    // cluster Hessians from few tokens are ill-conditioned: obsPrepare retries with 10× damping
    experts.push(sparseGpt(lin.weight, acc.result(), { ...pattern(o), backend }).weight);
  }
  return new ExpertLinear(router, experts, backend);
}

function pattern(o: ExpansionOptions): { sparsity: number } | { nm: [number, number] } {
  return o.nm ? { nm: o.nm } : { sparsity: o.sparsity as number };
}

function identity(d: number): Matrix<Float64Array> {
  const m = Matrix.zeros64(d, d);
  for (let i = 0; i < d; i++) m.data[i * d + i] = 1;
  return m;
}

/**
 * FLOPs per token (two per multiply-add) of the model's MLPs and routers, counting only nonzero
 * weights. A router counts as the paper counts it, 2·d·r for the projection and 3·k·r for the k
 * distances, also where `routeTokens` evaluates the same rule as k linear scores (2·d·k; see
 * `routerScores`).
 */
export function mlpFlopsPerToken(
  model: LlamaModel,
): { expert: number; router: number; total: number } {
  let expert = 0, router = 0;
  for (const b of model.blocks) {
    const seen = new Set<Router>();
    for (const name of ["gate_proj", "up_proj", "down_proj"] as const) {
      const lin = b.linears[name];
      if (lin instanceof ExpertLinear) {
        // one expert runs per token: its average nonzero count
        const nnz = lin.experts.reduce((a, e) =>
          a + e.data.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0), 0) / lin.experts.length;
        expert += 2 * nnz;
        if (!seen.has(lin.router)) {
          seen.add(lin.router);
          const { dim, rank, k } = lin.router;
          router += 2 * dim * rank + 3 * k * rank; // projection, then k squared distances
        }
      } else if (lin instanceof DenseLinear) {
        expert += 2 * lin.weight.data.reduce((s, v) => s + (v !== 0 ? 1 : 0), 0);
      }
    }
  }
  return { expert, router, total: expert + router };
}
