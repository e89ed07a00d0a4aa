// Private: the calibration pass behind pruneLayers and quantizeLayers. Runs the model's own
// sequential calibration (runCalibration: block l sees the outputs of the already-compressed
// blocks before it), accumulates the Hessian H = 2/N·Σxxᵀ of each selected projection only, hands
// each selected dense layer with its Hessian to `compress`, writes the new weight back and
// measures its error; the pass stops after the last block that holds a selected projection.
import { Matrix } from "../core/matrix.ts";
import { HessianAccumulator } from "../kernels/gram.ts";
import { outputError } from "../quant/gptq.ts";
import { runCalibration } from "./calibration.ts";
import type { SelectedLinear } from "./layer_names.ts";
import { DenseLinear } from "./linear.ts";
import type { LinearName, LlamaModel } from "./llama.ts";

/** Errors of one compressed projection. */
export interface LayerError {
  /** ‖W − Ŵ‖_F / ‖W‖_F. */
  weightError: number;
  /**
   * ½·tr(ΔHΔᵀ) with Δ = W − Ŵ and H = 2XᵀX/N the layer Hessian over the calibration tokens: the
   * mean squared output error per token (GPTQ's reported error). Only with calibration.
   */
  outputError?: number;
  /** outputError / (½·tr(WHWᵀ)): the output error relative to the output's energy. */
  relativeOutputError?: number;
}

export interface LayerPassOptions {
  /** Calibration sequences; none means no Hessians (and no output errors). */
  calibration?: readonly (readonly number[])[];
  /** Hessian element type (default "f64"). */
  hessian?: "f64" | "f32";
  /** True-sequential stages inside a block (GPTQ), else the whole block at once. */
  stages?: readonly (readonly LinearName[])[];
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
  /** The new weight of a selected layer (the input must not be modified). */
  compress(sel: SelectedLinear, weight: Matrix, hessian: Matrix<Float64Array> | undefined): Matrix;
}

/** Raised after the last selected block to end runCalibration early. */
const DONE = Symbol("last selected block done");

export function denseOf(model: LlamaModel, sel: SelectedLinear): DenseLinear {
  const lin = model.blocks[sel.layer]!.linears[sel.name];
  if (!(lin instanceof DenseLinear)) {
    throw new TypeError(
      `Layer '${sel.module}' is not a dense layer (it is a ${lin.constructor.name}): it was already replaced`,
    );
  }
  return lin;
}

/** Compresses every selected projection in place; returns their errors in the order compressed. */
export async function layerPass(
  model: LlamaModel,
  selected: readonly SelectedLinear[],
  options: LayerPassOptions,
): Promise<(SelectedLinear & LayerError)[]> {
  for (const s of selected) denseOf(model, s); // before any work
  const out: (SelectedLinear & LayerError)[] = [];
  const apply = (sel: SelectedLinear, h: Matrix<Float64Array> | undefined) => {
    const lin = denseOf(model, sel), w = lin.weight;
    const q = options.compress(sel, w, h);
    out.push({ ...sel, ...errors(w, q, h) });
    lin.setWeight(q);
  };
  const calib = options.calibration ?? [];
  if (calib.length === 0) {
    for (const s of selected) apply(s, undefined);
    return out;
  }
  const key = (layer: number, name: string) => `${layer}/${name}`;
  const wanted = new Map(selected.map((s) => [key(s.layer, s.name), s]));
  const names = [...new Set(selected.map((s) => s.name))];
  const last = Math.max(...selected.map((s) => s.layer));
  const backend = model.backend === "ts" ? "ts" : "cpu";
  const acc = new Map<string, HessianAccumulator>();
  const finish = (layer: number, stage: readonly LinearName[]) => {
    for (const name of stage) {
      const sel = wanted.get(key(layer, name));
      if (!sel) continue;
      const h = acc.get(key(layer, name))!.result();
      acc.delete(key(layer, name));
      apply(sel, h);
    }
  };
  const stages = options.stages?.filter((st) => st.some((n) => names.includes(n)));
  try {
    await runCalibration(model, calib, {
      names,
      ...(stages ? { stages, finishStage: finish } : {}),
      add(layer, name, x) {
        const k = key(layer, name);
        if (!wanted.has(k)) return;
        let a = acc.get(k);
        if (!a) {
          acc.set(
            k,
            a = new HessianAccumulator(x.cols, { backend, precision: options.hessian ?? "f64" }),
          );
        }
        a.add(x);
      },
      finishBlock(layer) {
        if (!stages) finish(layer, names);
        if (layer === last) throw DONE;
      },
    }, options.progress === undefined ? {} : { progress: options.progress });
  } catch (e) {
    if (e !== DONE) throw e;
  }
  return out;
}

function errors(w: Matrix, q: Matrix, h: Matrix<Float64Array> | undefined): LayerError {
  let num = 0, den = 0;
  for (let i = 0; i < w.data.length; i++) {
    num += ((w.data[i] as number) - (q.data[i] as number)) ** 2;
    den += (w.data[i] as number) ** 2;
  }
  const weightError = den > 0 ? Math.sqrt(num / den) : 0;
  if (!h) return { weightError };
  const err = outputError(w, q, h);
  const energy = outputError(w, Matrix.zeros(w.rows, w.cols), h);
  return { weightError, outputError: err, relativeOutputError: energy > 0 ? err / energy : 0 };
}
