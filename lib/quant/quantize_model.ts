/**
 * Quantizes a whole model block by block on calibration sequences, as IST-DASLab/gptq's
 * `llama_sequential` does: each block's Hessians come from inputs that went through the already
 * quantized blocks before it, and with `trueSequential` (the default) the block's projections are
 * quantized in four stages, [k, v, q] → [o] → [up, gate] → [down], each stage seeing the quantized
 * ones before it. The model's dense weights are replaced by the dequantized ones (a simulated
 * quantized model); the levels, scales and zeros are returned for saving.
 *
 * @module
 */
import { HessianAccumulator } from "../kernels/gram.ts";
import { runCalibration } from "../model/calibration.ts";
import { DenseLinear } from "../model/linear.ts";
import { LINEAR_NAMES, type LinearName, type LlamaModel } from "../model/llama.ts";
import { sparseGpt } from "../sparse/sparsegpt.ts";
import { gptq, outputError, type QuantResult, rtn } from "./gptq.ts";
import { type QuantizedWeight, type QuantSpec, resolveSpec } from "./quantizer.ts";

/** One-shot weight quantization methods. */
export type QuantMethod = "rtn" | "gptq";

/** GPTQ's true-sequential stages inside a block. */
export const TRUE_SEQUENTIAL: readonly (readonly LinearName[])[] = Object.freeze([
  ["k_proj", "v_proj", "q_proj"],
  ["o_proj"],
  ["up_proj", "gate_proj"],
  ["down_proj"],
]);

/** Options of {@linkcode quantizeModel}. */
export interface QuantizeModelOptions extends QuantSpec {
  /** "gptq" (default) or "rtn". */
  method?: QuantMethod;
  /** Sweep columns by descending diag H (GPTQ's desc_act; default false). */
  actOrder?: boolean;
  /** Group parameters from the unquantized weights (default false). */
  staticGroups?: boolean;
  /** Quantize the stages of a block one after another (default true). */
  trueSequential?: boolean;
  /** Relative damping (default 0.01). */
  percdamp?: number;
  /** GPTQ's lazy block (default 128). */
  blockSize?: number;
  /** Prune to N:M with SparseGPT first, then quantize the rest (joint sparsity, e.g. [2, 4]). */
  nm?: [number, number];
  /** Projections to quantize (default all seven). */
  names?: readonly LinearName[];
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/** One quantized projection. */
export interface QuantizedLayer {
  /** Block index. */
  layer: number;
  /** Projection. */
  name: LinearName;
  /** Levels, scales, zeros, group index. */
  quantized: QuantizedWeight;
  /** ‖(W − Ŵ)X‖² / N over the calibration tokens = ½·tr(ΔHΔᵀ) (GPTQ only). */
  error?: number;
}

/**
 * Quantizes `model` in place (its DenseLinear weights become the dequantized ones) and returns
 * every quantized projection. RTN needs no calibration (`calibration` may be empty).
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { quantizeModel } from "./quantize_model.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "cpu" });
 * const layers = await quantizeModel(model, [[256, 72, 105, 32, 116, 104, 101, 114, 101]], {
 *   bits: 4, groupSize: 64, names: ["down_proj"], progress: false,
 * });
 * if (layers.length !== model.config.numLayers) throw new Error("one entry per block");
 * ```
 */
export async function quantizeModel(
  model: LlamaModel,
  calibration: readonly (readonly number[])[],
  options: QuantizeModelOptions,
): Promise<QuantizedLayer[]> {
  const method = options.method ?? "gptq";
  if (method !== "gptq" && method !== "rtn") {
    throw new RangeError(`Unknown quantization method '${method}': expected gptq or rtn`);
  }
  resolveSpec(options); // bad bits or groups fail before any work
  const names = options.names ?? LINEAR_NAMES;
  for (const n of names) {
    if (!(LINEAR_NAMES as readonly string[]).includes(n)) {
      throw new RangeError(`Unknown projection '${n}': expected one of ${LINEAR_NAMES.join(", ")}`);
    }
  }
  const backend = model.backend === "ts" ? "ts" : "cpu";
  const out: QuantizedLayer[] = [];
  const dense = (layer: number, name: LinearName) => {
    const lin = model.blocks[layer]!.linears[name];
    if (!(lin instanceof DenseLinear)) {
      throw new TypeError(`Block ${layer} ${name} is not a dense layer: it was already replaced`);
    }
    return lin;
  };
  if (method === "rtn") {
    for (let l = 0; l < model.config.numLayers; l++) {
      for (const name of names) {
        const lin = dense(l, name), r = rtn(lin.weight, options);
        lin.setWeight(r.weight);
        out.push({ layer: l, name, quantized: r.quantized });
      }
    }
    return out;
  }
  if (calibration.length === 0) {
    throw new RangeError("GPTQ needs at least one calibration sequence");
  }
  const acc = new Map<LinearName, HessianAccumulator>();
  const quantize = (layer: number, stage: readonly LinearName[]) => {
    for (const name of stage) {
      if (!names.includes(name)) continue;
      const lin = dense(layer, name), h = acc.get(name)!.result();
      acc.delete(name);
      const mask = options.nm
        ? sparseGpt(lin.weight, h, { nm: options.nm, backend }).mask
        : undefined;
      const r: QuantResult = gptq(lin.weight, h, {
        ...options,
        ...(mask ? { mask } : {}),
        backend,
      });
      const error = outputError(lin.weight, r.weight, h);
      lin.setWeight(r.weight);
      out.push({ layer, name, quantized: r.quantized, error });
    }
  };
  const trueSeq = options.trueSequential ?? true;
  await runCalibration(model, calibration, {
    names,
    // stages without a chosen projection would run the block for nothing
    ...(trueSeq
      ? {
        stages: TRUE_SEQUENTIAL.filter((st) => st.some((n) => names.includes(n))),
        finishStage: quantize,
      }
      : {
        finishBlock: (layer: number) => quantize(layer, LINEAR_NAMES),
      }),
    add(_layer, name, x) {
      if (!names.includes(name)) return;
      let a = acc.get(name);
      if (!a) acc.set(name, a = new HessianAccumulator(x.cols, { backend }));
      a.add(x);
    },
  }, options.progress === undefined ? {} : { progress: options.progress });
  return out;
}
