/**
 * Prunes one projection or a named set of them in one call: the selection by HF module name
 * (`model.layers.0.mlp.down_proj`, `*` patterns, bare projection names or a regular expression),
 * the method (magnitude, Wanda, SparseGPT) and, for the methods that fit to data, the same
 * sequential calibration as `pruneModel`: on the same projections of every block the
 * result is `pruneModel`'s, weight for weight.
 *
 * @module
 */
import { quoteValue } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { denseOf, type LayerError, layerPass } from "../model/_layer_pass.ts";
import { type LayerSelector, type SelectedLinear, selectLinears } from "../model/layer_names.ts";
import type { LlamaModel } from "../model/llama.ts";
import { checkPattern, type PatternOptions } from "./_pattern.ts";
import { magnitudePrune, wandaPrune } from "./baselines.ts";
import type { PruneMethod } from "./prune_model.ts";
import { type PruneResult, sparseGpt } from "./sparsegpt.ts";

/** Options of {@linkcode pruneLayers}. */
export interface PruneLayersOptions {
  /** Which projections (see {@linkcode LayerSelector}). */
  layers: LayerSelector;
  /** "magnitude", "wanda" or "sparsegpt". */
  method: PruneMethod;
  /** Unstructured fraction of each layer's weights to zero, in (0, 1) (or give `nm`). */
  sparsity?: number;
  /** N:M pattern, e.g. [2, 4]: N zeros in every M consecutive inputs of a row. */
  nm?: [number, number];
  /**
   * Calibration token sequences (e.g. `calibrationWindows(await bundledDocuments(), tokenizer)`):
   * required by Wanda and SparseGPT; with magnitude pruning they only serve to measure each
   * layer's output error.
   */
  calibration?: readonly (readonly number[])[];
  /** Element type of the layer Hessians (default "f64"; "f32" as the authors' PyTorch code). */
  hessian?: "f64" | "f32";
  /** Progress bar of the calibration pass (default: when output is a terminal). */
  progress?: boolean;
}

/** What {@linkcode pruneLayers} did to one projection. */
export interface PrunedLayerStats extends SelectedLinear, LayerError {
  /** Fraction of its weights pruned (set to zero by the mask), as `pruneModel` counts. */
  sparsity: number;
}

const METHODS: readonly PruneMethod[] = ["magnitude", "wanda", "sparsegpt"];

/**
 * Prunes the projections of `model` that `options.layers` names, in place (their weights are
 * replaced), and returns for each its achieved sparsity and errors: the relative weight change
 * and, with calibration, the mean squared output error ½·tr(ΔHΔᵀ) and its ratio to the output's
 * energy. Blocks after the last selected one are not run. Bad input (an unknown layer, a sparsity
 * outside (0, 1), Wanda or SparseGPT without calibration) fails before any work.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { pruneLayers } from "./prune_layers.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "cpu" });
 * const calibration = [[256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 257]];
 * const [down] = await pruneLayers(model, {
 *   layers: "model.layers.0.mlp.down_proj", method: "sparsegpt", sparsity: 0.5, calibration,
 *   progress: false,
 * });
 * if (Math.abs(down!.sparsity - 0.5) > 0.01 || !(down!.relativeOutputError! < 1)) {
 *   throw new Error(JSON.stringify(down));
 * }
 * ```
 */
export async function pruneLayers(
  model: LlamaModel,
  options: PruneLayersOptions,
): Promise<PrunedLayerStats[]> {
  const { method } = options;
  if (!METHODS.includes(method)) {
    throw new RangeError(
      `Unknown pruning method ${quoteValue(method)}: expected magnitude, wanda or sparsegpt`,
    );
  }
  const selected = selectLinears(model, options.layers);
  if (options.nm === undefined && options.sparsity === undefined) {
    throw new RangeError("pruneLayers needs a sparsity in (0, 1) or an N:M pattern such as [2, 4]");
  }
  if (options.nm === undefined && !(Number(options.sparsity) > 0 && Number(options.sparsity) < 1)) {
    throw new RangeError(`Sparsity ${quoteValue(options.sparsity)} is outside (0, 1)`);
  }
  const pattern: PatternOptions = options.nm
    ? { nm: options.nm }
    : { sparsity: options.sparsity as number };
  for (const s of selected) {
    const lin = denseOf(model, s);
    try {
      checkPattern(lin.outFeatures, lin.inFeatures, pattern);
    } catch (e) {
      (e as Error).message = `Layer '${s.module}': ${(e as Error).message}`;
      throw e;
    }
  }
  const calibration = options.calibration ?? [];
  if (method !== "magnitude" && calibration.length === 0) {
    throw new RangeError(
      `Pruning with ${method} needs calibration token sequences (options.calibration), e.g. calibrationWindows(await bundledDocuments(), tokenizer)`,
    );
  }
  const backend = model.backend === "ts" ? "ts" : "cpu";
  const masks = new Map<string, Uint8Array>();
  const stats = await layerPass(model, selected, {
    calibration,
    ...(options.hessian ? { hessian: options.hessian } : {}),
    ...(options.progress === undefined ? {} : { progress: options.progress }),
    compress(sel, weight: Matrix, h) {
      let r: PruneResult;
      if (method === "magnitude") r = magnitudePrune(weight, pattern);
      else if (method === "wanda") {
        const n = weight.cols;
        const norms = Float64Array.from({ length: n }, (_, j) => Math.sqrt(h!.data[j * n + j]!));
        r = wandaPrune(weight, norms, pattern);
      } else r = sparseGpt(weight, h!, { ...pattern, backend });
      masks.set(sel.module, r.mask);
      return r.weight;
    },
  });
  return stats.map((s) => {
    const mask = masks.get(s.module)!;
    return { ...s, sparsity: mask.reduce((a, b) => a + b, 0) / mask.length };
  });
}
