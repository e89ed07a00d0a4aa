/**
 * Prunes a whole model layer by layer on calibration sequences: each block's Hessians are
 * accumulated from inputs that already went through the pruned blocks before it (SparseGPT's
 * sequential procedure), then each chosen projection is pruned with the chosen method.
 *
 * @module
 */
import { HessianAccumulator } from "../kernels/gram.ts";
import { runCalibration } from "../model/calibration.ts";
import { DenseLinear } from "../model/linear.ts";
import { LINEAR_NAMES, type LinearName, type LlamaModel } from "../model/llama.ts";
import { checkModelPattern, type PatternOptions } from "./_pattern.ts";
import { magnitudePrune, wandaPrune } from "./baselines.ts";
import { type PruneResult, sparseGpt } from "./sparsegpt.ts";

/** One-shot pruning methods. */
export type PruneMethod = "magnitude" | "wanda" | "sparsegpt";

/** Options of {@linkcode pruneModel}. */
export interface PruneModelOptions {
  /** The method. */
  method: PruneMethod;
  /** Unstructured fraction in (0, 1) (ignored with `nm`). */
  sparsity?: number;
  /** N:M pattern, e.g. [2, 4]. */
  nm?: [number, number];
  /** Projections to prune (default all seven of every block). */
  names?: readonly LinearName[];
  /** Rows to keep dense (1 = prunable) for a projection of a block; default all prunable. */
  prunableRows?: (layer: number, name: LinearName) => Uint8Array | undefined;
  /** Element type of the layer Hessians (default "f64"; "f32" as the authors' PyTorch code). */
  hessian?: "f64" | "f32";
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/** What {@linkcode pruneModel} did to each projection. */
export interface PrunedLayer {
  /** Block index. */
  layer: number;
  /** Projection. */
  name: LinearName;
  /** Fraction of its weights now zero. */
  sparsity: number;
}

/**
 * Prunes `model` in place (its DenseLinear weights are replaced) and returns per-layer sparsity.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { pruneModel } from "./prune_model.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const layers = await pruneModel(model, [[256, 72, 105, 32, 116, 104, 101, 114, 101]], {
 *   method: "magnitude", sparsity: 0.5, names: ["down_proj"], progress: false,
 * });
 * if (layers.length !== model.config.numLayers) throw new Error("one entry per block");
 * ```
 */
export async function pruneModel(
  model: LlamaModel,
  calibration: readonly (readonly number[])[],
  options: PruneModelOptions,
): Promise<PrunedLayer[]> {
  const names = options.names ?? LINEAR_NAMES;
  for (const n of names) {
    if (!(LINEAR_NAMES as readonly string[]).includes(n)) {
      throw new RangeError(
        `Unknown projection '${n}': expected one of ${LINEAR_NAMES.join(", ")}`,
      );
    }
  }
  if (!["magnitude", "wanda", "sparsegpt"].includes(options.method)) {
    throw new RangeError(
      `Unknown pruning method '${options.method}': expected magnitude, wanda or sparsegpt`,
    );
  }
  const pattern: PatternOptions = options.nm
    ? { nm: options.nm }
    : { sparsity: options.sparsity as number };
  checkModelPattern(model, names, pattern);
  const report: PrunedLayer[] = [];
  let acc = new Map<LinearName, HessianAccumulator>();
  const backend = model.backend === "ts" ? "ts" : "cpu";
  await runCalibration(model, calibration, {
    names,
    add(_layer, name, x) {
      if (options.method === "magnitude") return;
      let a = acc.get(name);
      if (!a) {
        acc.set(
          name,
          a = new HessianAccumulator(x.cols, { backend, precision: options.hessian ?? "f64" }),
        );
      }
      a.add(x);
    },
    finishBlock(layer, block) {
      for (const name of names) {
        const lin = block.linears[name];
        if (!(lin instanceof DenseLinear)) {
          throw new TypeError(
            `Block ${layer} ${name} is not a dense layer: it was already replaced`,
          );
        }
        const rows = options.prunableRows?.(layer, name);
        const opts: PatternOptions = rows ? { ...pattern, prunableRows: rows } : pattern;
        const h = acc.get(name)?.result();
        let r: PruneResult;
        if (options.method === "magnitude") r = magnitudePrune(lin.weight, opts);
        else if (options.method === "wanda") {
          const norms = Float64Array.from(
            { length: lin.inFeatures },
            (_, j) => Math.sqrt(h!.data[j * lin.inFeatures + j] as number),
          );
          r = wandaPrune(lin.weight, norms, opts);
        } else r = sparseGpt(lin.weight, h!, { ...opts, backend });
        lin.setWeight(r.weight);
        report.push({ layer, name, sparsity: r.mask.reduce((a, b) => a + b, 0) / r.mask.length });
      }
      acc = new Map();
    },
  }, options.progress === undefined ? {} : { progress: options.progress });
  return report;
}
