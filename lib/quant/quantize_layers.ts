/**
 * Quantizes one projection or a named set of them in one call: the selection by HF module name
 * (`model.layers.0.mlp.down_proj`, `*` patterns, bare projection names or a regular expression),
 * round-to-nearest or GPTQ, and for GPTQ the same sequential (by default true-sequential)
 * calibration as `quantizeModel`: on the same projections of every block the result is
 * `quantizeModel`'s, level for level.
 *
 * @module
 */
import { quoteValue } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { denseOf, type LayerError, layerPass } from "../model/_layer_pass.ts";
import { type LayerSelector, type SelectedLinear, selectLinears } from "../model/layer_names.ts";
import type { LlamaModel } from "../model/llama.ts";
import { sparseGpt } from "../sparse/sparsegpt.ts";
import { gptq, type QuantResult, rtn } from "./gptq.ts";
import { type QuantizedWeight, type QuantSpec, resolveSpec } from "./quantizer.ts";
import { type QuantizeModelOptions, TRUE_SEQUENTIAL } from "./quantize_model.ts";

/**
 * Options of {@linkcode quantizeLayers}: a {@linkcode QuantSpec} (bits, groupSize, sym, mse…),
 * GPTQ's settings as in {@linkcode QuantizeModelOptions}, and the layers.
 */
export interface QuantizeLayersOptions extends
  QuantSpec,
  Pick<
    QuantizeModelOptions,
    "method" | "actOrder" | "staticGroups" | "trueSequential" | "percdamp" | "blockSize" | "nm"
  > {
  /** Which projections (see {@linkcode LayerSelector}). */
  layers: LayerSelector;
  /**
   * Calibration token sequences (e.g. `calibrationWindows(await bundledDocuments(), tokenizer)`):
   * required by GPTQ; with RTN they only serve to measure each layer's output error.
   */
  calibration?: readonly (readonly number[])[];
  /** Progress bar of the calibration pass (default: when output is a terminal). */
  progress?: boolean;
}

/** What {@linkcode quantizeLayers} did to one projection. */
export interface QuantizedLayerStats extends SelectedLinear, LayerError {
  /** Levels, scales, zeros and group index, for packing or saving. */
  quantized: QuantizedWeight;
}

/**
 * Quantizes the projections of `model` that `options.layers` names, in place (their dense weights
 * become the dequantized ones: a simulated quantized model), and returns for each its levels and
 * errors: the relative weight change and, with calibration, the mean squared output error
 * ½·tr(ΔHΔᵀ) (GPTQ's figure) and its ratio to the output's energy. Blocks after the last selected
 * one are not run. Bad input (an unknown layer, bits outside 2–8, GPTQ without calibration) fails
 * before any work.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { quantizeLayers } from "./quantize_layers.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "cpu" });
 * const calibration = [[256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100, 33, 257]];
 * const layers = await quantizeLayers(model, {
 *   layers: ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.down_proj"],
 *   method: "gptq", bits: 4, groupSize: 64, calibration, progress: false,
 * });
 * if (layers.length !== 2 || layers.some((l) => !(l.relativeOutputError! < 0.1))) {
 *   throw new Error(JSON.stringify(layers.map((l) => l.relativeOutputError)));
 * }
 * ```
 */
export async function quantizeLayers(
  model: LlamaModel,
  options: QuantizeLayersOptions,
): Promise<QuantizedLayerStats[]> {
  const method = options.method ?? "gptq";
  if (method !== "gptq" && method !== "rtn") {
    throw new RangeError(`Unknown quantization method ${quoteValue(method)}: expected gptq or rtn`);
  }
  const selected = selectLinears(model, options.layers);
  for (const s of selected) {
    try {
      resolveSpec(options, denseOf(model, s).inFeatures);
    } catch (e) {
      (e as Error).message = `Layer '${s.module}': ${(e as Error).message}`;
      throw e;
    }
  }
  const calibration = options.calibration ?? [];
  if (method === "gptq" && calibration.length === 0) {
    throw new RangeError(
      'GPTQ needs calibration token sequences (options.calibration), e.g. calibrationWindows(await bundledDocuments(), tokenizer); method "rtn" needs none',
    );
  }
  if (method === "rtn" && options.nm) {
    throw new RangeError(
      `Joint N:M sparsity ${options.nm.join(":")} needs method "gptq", not "rtn"`,
    );
  }
  const backend = model.backend === "ts" ? "ts" : "cpu";
  const levels = new Map<string, QuantizedWeight>();
  const stats = await layerPass(model, selected, {
    calibration,
    ...(method === "gptq" && (options.trueSequential ?? true) ? { stages: TRUE_SEQUENTIAL } : {}),
    ...(options.progress === undefined ? {} : { progress: options.progress }),
    compress(sel, weight: Matrix, h) {
      let r: QuantResult;
      if (method === "rtn") r = rtn(weight, options);
      else {
        const mask = options.nm
          ? sparseGpt(weight, h!, { nm: options.nm, backend }).mask
          : undefined;
        // the options as quantizeModel hands them to gptq (it ignores the ones it does not know)
        r = gptq(weight, h!, { ...options, ...(mask ? { mask } : {}), backend });
      }
      levels.set(sel.module, r.quantized);
      return r.weight;
    },
  });
  return stats.map((s) => ({ ...s, quantized: levels.get(s.module)! }));
}
