/**
 * Wasserstein neurons (Sparse Expansion, ICLR 2025): each neuron's pre-activation outputs over
 * calibration tokens, z-scored with the population standard deviation, and their W1 distance to
 * N(0,1). Neurons far from Gaussian are "entangled" and suffer most from pruning.
 *
 * @module
 */
import type { Matrix } from "../core/matrix.ts";
import { runCalibration } from "../model/calibration.ts";
import type { LinearName, LlamaModel } from "../model/llama.ts";
import { percentile, w1ToNormal, wasserstein1, zscore } from "./distance.ts";

/** One projection's neurons. */
export interface LayerNeurons {
  /** Block index. */
  layer: number;
  /** Projection whose outputs were measured. */
  name: LinearName;
  /** Tokens measured. */
  tokens: number;
  /** W1 to N(0,1) of each neuron (NaN for zero-variance neurons). */
  w1: Float64Array;
  /** Neurons with zero variance over the calibration tokens (no W1). */
  zeroVariance: number[];
  /** z-scored outputs of the most and least Gaussian neurons (for histograms). */
  extremes: {
    most: { neuron: number; values: Float64Array };
    least: { neuron: number; values: Float64Array };
  };
}

/** Options of {@linkcode neuronWasserstein}. */
export interface NeuronOptions {
  /** Projections to measure (default gate_proj and up_proj). */
  names?: readonly LinearName[];
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/**
 * Measures every neuron of the chosen projections, block by block: one block's outputs over all
 * sequences are held at a time (tokens × neurons), then reduced to one W1 per neuron.
 */
export async function neuronWasserstein(
  model: LlamaModel,
  sequences: readonly (readonly number[])[],
  options: NeuronOptions = {},
): Promise<LayerNeurons[]> {
  const names = options.names ?? ["gate_proj", "up_proj"];
  const result: LayerNeurons[] = [];
  let outputs = new Map<LinearName, Matrix[]>();
  await runCalibration(model, sequences, {
    names,
    readOnly: true,
    add(_layer, name, _inputs, out) {
      const list = outputs.get(name) ?? [];
      list.push(out);
      outputs.set(name, list);
    },
    finishBlock(layer) {
      for (const name of names) {
        const parts = outputs.get(name) ?? [];
        result.push(reduceLayer(layer, name, parts));
      }
      outputs = new Map();
    },
  }, options.progress === undefined ? {} : { progress: options.progress });
  return result;
}

function reduceLayer(layer: number, name: LinearName, parts: Matrix[]): LayerNeurons {
  const neurons = parts[0]?.cols ?? 0, tokens = parts.reduce((a, p) => a + p.rows, 0);
  const w1 = new Float64Array(neurons).fill(NaN), zeroVariance: number[] = [];
  const col = new Float64Array(tokens);
  type Extreme = { neuron: number; values: Float64Array<ArrayBufferLike> };
  let most: Extreme = { neuron: -1, values: new Float64Array(0) };
  let least: Extreme = { neuron: -1, values: new Float64Array(0) };
  for (let j = 0; j < neurons; j++) {
    let t = 0;
    for (const p of parts) {
      for (let r = 0; r < p.rows; r++) col[t++] = p.data[r * neurons + j] as number;
    }
    const z = zscore(col);
    if (!z) {
      zeroVariance.push(j);
      continue;
    }
    const d = w1ToNormal(z);
    w1[j] = d;
    if (most.neuron < 0 || d > (w1[most.neuron] as number)) most = { neuron: j, values: z };
    if (least.neuron < 0 || d < (w1[least.neuron] as number)) least = { neuron: j, values: z };
  }
  return { layer, name, tokens, w1, zeroVariance, extremes: { most, least } };
}

/**
 * Neurons whose W1 is strictly above the layer's (100 − p)th percentile (numpy's linear
 * interpolation), p = 3 by default. Zero-variance neurons are never selected.
 *
 * @example
 * ```ts
 * import { selectWassersteinNeurons } from "./neurons.ts";
 * const w1 = Float64Array.from({ length: 100 }, (_, i) => i);
 * if (selectWassersteinNeurons(w1, 3).join() !== "97,98,99") throw new Error("wrong selection");
 * ```
 */
export function selectWassersteinNeurons(w1: Float64Array, p = 3): number[] {
  if (!(p > 0 && p < 100)) throw new RangeError(`Percent ${p} is outside (0, 100)`);
  const finite = Array.from(w1).filter(Number.isFinite);
  if (finite.length === 0) return [];
  const t = percentile(finite, 100 - p);
  const out: number[] = [];
  w1.forEach((v, i) => {
    if (v > t) out.push(i);
  });
  return out;
}

/**
 * For chosen neurons, W1 between their outputs in a reference model and in a compressed model
 * over the same sequences (each model fed end to end): how far compression moved each neuron's
 * output distribution. Returns one Float64Array per layer, aligned with `neurons.get(layer)`.
 */
export function neuronOutputShift(
  reference: LlamaModel,
  compressed: LlamaModel,
  sequences: readonly (readonly number[])[],
  neurons: ReadonlyMap<number, readonly number[]>,
  name: LinearName = "gate_proj",
): Map<number, Float64Array> {
  const collect = (m: LlamaModel) => {
    const out = new Map<number, number[][]>();
    for (const [l, js] of neurons) out.set(l, js.map(() => []));
    for (const s of sequences) {
      m.forward(s, {
        lastOnly: true,
        hooks: {
          linear: (e) => {
            const js = neurons.get(e.layer);
            if (e.name !== name || !js) return;
            const cols = out.get(e.layer)!;
            for (let t = 0; t < e.output.rows; t++) {
              js.forEach((j, i) => cols[i]!.push(e.output.data[t * e.output.cols + j] as number));
            }
          },
        },
      });
    }
    return out;
  };
  const a = collect(reference), b = collect(compressed);
  const shift = new Map<number, Float64Array>();
  for (const [l, js] of neurons) {
    shift.set(l, Float64Array.from(js, (_, i) => wasserstein1(a.get(l)![i]!, b.get(l)![i]!)));
  }
  return shift;
}
