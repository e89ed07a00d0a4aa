/**
 * QUIK (Ashkboos et al. 2024; IST-DASLab/QUIK), the method: which input columns of each linear
 * layer stay in floating point, and GPTQ on the rest with the outlier columns swept last.
 *
 * - Outliers: the columns with the largest max |x| over the calibration tokens (the statistic of
 *   the authors' `act_scales`); `k = round(fraction · in_features)` with fraction 1/16 (256 of a
 *   4096-wide input, as the paper; 512 of 8192; 16 of the bundled model's 256), or a fixed count.
 *   q/k/v see the same input and so get the same columns; so do gate/up.
 * - Weights: symmetric per output row, `scale = max|w| / (2^(b−1) − 1)` over the integer columns
 *   (levels −8…7 at 4 bits, −128…127 at 8; a zero row takes scale 1/(2^(b−1) − 1)), optionally the
 *   authors' clipping search (`clip`: factors 1, 0.99, …, 0.21 of max |w|, error Σ|Q(w) − w|^2.4);
 *   scales rounded to f16 as lmkit's GPTQ does. GPTQ then sweeps the columns by increasing max |x|
 *   (the authors' order: the outliers last), quantizing all but the outliers, which only receive the
 *   error updates and are kept (f32 here, fp16 in the authors' kernels).
 * - Activations are quantized per token at run time ({@linkcode quikQuantize}); during
 *   calibration only the weights are (as the authors' GPTQ pass).
 * - down_proj runs 8-bit weights and activations by default (`int8DownProj`); lm_head stays dense.
 *
 * @module
 */
import type { Matrix } from "../core/matrix.ts";
import { HessianAccumulator } from "../kernels/gram.ts";
import { check, cpu, cpuLibrary } from "../../ffi/mod.ts";
import { type Backend, selectBackend } from "../kernels/mod.ts";
import { quikRowBytes, type QuikWeight } from "../kernels/quik_matmul.ts";
import { runCalibration } from "../model/calibration.ts";
import { DenseLinear } from "../model/linear.ts";
import { LINEAR_NAMES, type LinearName, type LlamaModel } from "../model/llama.ts";
import { gptq, outputError } from "./gptq.ts";
import { QuikInputCache, QuikLinear } from "./quik_linear.ts";
import { quantLevel, roundToF16 } from "./quantizer.ts";
import { TRUE_SEQUENTIAL } from "./quantize_model.ts";

/** How QUIK quantizes a model. */
export interface QuikOptions {
  /** Bits of weights and activations, 4 (default) or 8 (QUIK-8B). */
  bits?: number;
  /** down_proj in 8 bits (default true). */
  int8DownProj?: boolean;
  /** A fixed number of outlier columns per layer (capped at the layer's width). */
  outliers?: number;
  /** Outliers as a fraction of each layer's inputs (default 1/16); ignored with `outliers`. */
  outlierFraction?: number;
  /** The authors' weight clipping search (default true, as the paper's QUIK-4B). */
  clip?: boolean;
  /** GPTQ's relative damping (default 0.01). */
  percdamp?: number;
  /** GPTQ's lazy block (default 128). */
  blockSize?: number;
  /** Progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/** The outlier count of a layer with `inFeatures` inputs. */
export function quikOutlierCount(inFeatures: number, options: QuikOptions = {}): number {
  if (options.outliers !== undefined) {
    const k = options.outliers;
    if (!Number.isInteger(k) || k < 0) {
      throw new RangeError(`Outlier count ${k} is not a non-negative integer`);
    }
    return Math.min(k, inFeatures);
  }
  const f = options.outlierFraction ?? 1 / 16;
  if (!(f >= 0 && f <= 1)) throw new RangeError(`Outlier fraction ${f} is outside [0, 1]`);
  return Math.min(inFeatures, Math.round(f * inFeatures));
}

/** Bits of projection `name` under `options`. */
export function quikBits(name: LinearName, options: QuikOptions = {}): number {
  const bits = options.bits ?? 4;
  if (bits !== 4 && bits !== 8) throw new RangeError(`QUIK runs 4 or 8 bits, got ${bits}`);
  return name === "down_proj" && (options.int8DownProj ?? true) ? 8 : bits;
}

/**
 * The GPTQ sweep order (columns by increasing `maxAbs`, ties by index) and its last `count`
 * columns, the outliers (increasing).
 *
 * @example
 * ```ts
 * import { quikOrder } from "./quik.ts";
 * const { order, outliers } = quikOrder([0.5, 9, 0.1, 3], 2);
 * if (order.join() !== "2,0,3,1" || outliers.join() !== "1,3") throw new Error();
 * ```
 */
export function quikOrder(
  maxAbs: ArrayLike<number>,
  count: number,
): { order: Int32Array; outliers: Int32Array } {
  const n = maxAbs.length;
  if (!Number.isInteger(count) || count < 0 || count > n) {
    throw new RangeError(`Cannot pick ${count} outliers among ${n} columns`);
  }
  for (let j = 0; j < n; j++) {
    if (!(maxAbs[j]! >= 0)) {
      throw new RangeError(`Column ${j}'s max |x| is ${maxAbs[j]}: expected a finite value ≥ 0`);
    }
  }
  const order = Int32Array.from({ length: n }, (_, j) => j);
  order.sort((a, b) => (maxAbs[a] as number) - (maxAbs[b] as number) || a - b);
  const outliers = order.slice(n - count).sort();
  return { order, outliers };
}

/**
 * QUIK's per-row weight scales over the columns where `isInt` is 1 (levels clamp(round(w/s),
 * −2^(b−1), 2^(b−1) − 1)), with the clipping search when `clip`; f16-rounded.
 */
export function quikWeightScales(
  weight: Matrix,
  isInt: Uint8Array,
  options: { bits: number; clip: boolean; backend?: Backend },
): Float64Array {
  const { rows, cols } = weight, { bits, clip } = options;
  const o = 2 ** (bits - 1), maxq = 2 ** bits - 1;
  if (isInt.length !== cols) {
    throw new RangeError(`${isInt.length} column flags for ${cols} columns`);
  }
  const out = new Float64Array(rows);
  if (selectBackend(options.backend) !== "ts" && cpuLibrary().lib) {
    const w = Float64Array.from(weight.data), lib = cpu();
    check(
      lib,
      lib.lk_cpu_quik_scales_f64(
        w,
        w.length,
        isInt,
        cols,
        out,
        rows,
        rows,
        cols,
        bits,
        clip ? 1 : 0,
      ),
    );
    return out;
  }
  for (let r = 0; r < rows; r++) {
    let xmax = 0;
    for (let j = 0; j < cols; j++) {
      if (isInt[j]) xmax = Math.max(xmax, Math.abs(weight.data[r * cols + j] as number));
    }
    if (xmax === 0) xmax = 1;
    const scaleOf = (p: number) => roundToF16((p * xmax) / (o - 1));
    let best = scaleOf(1);
    if (clip) {
      let bestErr = Infinity;
      for (let i = 0; i < 80; i++) {
        const s = scaleOf(1 - i / 100);
        if (!(s > 0)) continue;
        let err = 0;
        for (let j = 0; j < cols; j++) {
          if (!isInt[j]) continue;
          const w = weight.data[r * cols + j] as number;
          err += Math.abs(s * (quantLevel(w, s, o, maxq) - o) - w) ** 2.4;
        }
        if (err < bestErr) bestErr = err, best = s;
      }
    }
    out[r] = best;
  }
  return out;
}

/** One layer quantized by {@linkcode quikLinear}. */
export interface QuikResult {
  /** The simulated weight: dequantized integer columns, updated outlier columns (f32). */
  weight: Matrix;
  /** The weight as the kernels read it. */
  quik: QuikWeight;
  /** ‖(W − Ŵ)X‖² / N over the calibration tokens. */
  error: number;
}

/**
 * Quantizes one layer's weight (out × in) the QUIK way from its Hessian (in × in, 2XᵀX/N) and the
 * per-column max |x| of its calibration inputs.
 *
 * @example
 * ```ts
 * import { quikLinear } from "./quik.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0.3, -1.2, 0.7, 0.05], [0.2, 0.1, -0.4, 0.9]]);
 * const h = new Matrix(4, 4, Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0.1)));
 * const r = quikLinear(w, h, [1, 30, 2, 1], { bits: 4, outliers: 1, backend: "ts" });
 * if (r.quik.outliers.join() !== "1") throw new Error("column 1 has the largest inputs");
 * ```
 */
export function quikLinear(
  weight: Matrix,
  hessian: Matrix<Float64Array>,
  maxAbs: ArrayLike<number>,
  options: QuikOptions & { backend?: Backend } = {},
): QuikResult {
  const { rows, cols } = weight, bits = options.bits ?? 4;
  if (bits !== 4 && bits !== 8) throw new RangeError(`QUIK runs 4 or 8 bits, got ${bits}`);
  if (maxAbs.length !== cols) {
    throw new RangeError(`${maxAbs.length} activation maxima for a layer of ${cols} inputs`);
  }
  const count = quikOutlierCount(cols, options);
  const { order, outliers } = quikOrder(maxAbs, count);
  const isInt = new Uint8Array(cols).fill(1);
  for (const j of outliers) isInt[j] = 0;
  const o = 2 ** (bits - 1), kq = cols - count;
  const scales = quikWeightScales(weight, isInt, {
    bits,
    clip: options.clip ?? true,
    ...(options.backend ? { backend: options.backend } : {}),
  });
  const r = gptq(weight, hessian, {
    bits,
    sym: true,
    order,
    keep: count,
    params: { scales, zeros: new Float64Array(rows).fill(o) },
    ...(options.percdamp !== undefined ? { percdamp: options.percdamp } : {}),
    ...(options.blockSize !== undefined ? { blockSize: options.blockSize } : {}),
    ...(options.backend ? { backend: options.backend === "ts" ? "ts" : "cpu" } : {}),
  });
  const rb = quikRowBytes(kq, bits), levels = new Uint8Array(rows * rb);
  const sums = new Int32Array(rows), ow = new Float32Array(rows * count);
  for (let i = 0; i < rows; i++) {
    for (let j = 0, p = 0, q = 0; j < cols; j++) {
      if (!isInt[j]) {
        ow[i * count + q++] = r.weight.data[i * cols + j] as number;
        continue;
      }
      const u = r.quantized.levels[i * cols + j] as number;
      sums[i]! += u - o;
      if (bits === 4) levels[i * rb + (p >> 1)]! |= p & 1 ? u << 4 : u;
      else levels[i * rb + p] = u;
      p++;
    }
  }
  const quik: QuikWeight = {
    rows,
    cols,
    bits,
    outliers,
    levels,
    scales: Float32Array.from(scales),
    sums,
    outlierWeight: ow,
  };
  return { weight: r.weight, quik, error: outputError(weight, r.weight, hessian) };
}

/** One projection of a QUIK model. */
export interface QuikLayer {
  /** Block index. */
  layer: number;
  /** Projection. */
  name: LinearName;
  /** The weight as the kernels read it. */
  quik: QuikWeight;
  /** ‖(W − Ŵ)X‖² / N over the calibration tokens (weights only). */
  error: number;
}

/**
 * Quantizes every block projection of `model` the QUIK way on `calibration` sequences (block by
 * block, true-sequential stages [k,v,q] → [o] → [up,gate] → [down], each seeing the quantized
 * weights before it), then replaces them with {@linkcode QuikLinear} layers, which quantize their
 * inputs per token from then on (q/k/v and gate/up share one quantized input). lm_head stays
 * dense.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { quikModel } from "./quik.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "cpu" });
 * const layers = await quikModel(model, [[256, 72, 105, 32, 116, 104, 101, 114, 101]], {
 *   progress: false,
 * });
 * if (layers.length !== 7 * model.config.numLayers) throw new Error("seven per block");
 * ```
 */
export async function quikModel(
  model: LlamaModel,
  calibration: readonly (readonly number[])[],
  options: QuikOptions = {},
): Promise<QuikLayer[]> {
  // bad settings fail before any work
  for (const n of LINEAR_NAMES) quikBits(n, options);
  quikOutlierCount(1, options);
  if (calibration.length === 0) {
    throw new RangeError("QUIK needs at least one calibration sequence");
  }
  const backend: Backend = model.backend === "ts" ? "ts" : "cpu";
  const out: QuikLayer[] = [];
  const acc = new Map<LinearName, HessianAccumulator>();
  const maxAbs = new Map<LinearName, Float64Array>();
  const dense = (layer: number, name: LinearName) => {
    const lin = model.blocks[layer]!.linears[name];
    if (!(lin instanceof DenseLinear)) {
      throw new TypeError(`Block ${layer} ${name} is not a dense layer: it was already replaced`);
    }
    return lin;
  };
  await runCalibration(model, calibration, {
    names: LINEAR_NAMES,
    stages: TRUE_SEQUENTIAL,
    finishStage(layer, stage) {
      for (const name of stage) {
        const lin = dense(layer, name), h = acc.get(name)!.result(), m = maxAbs.get(name)!;
        acc.delete(name);
        maxAbs.delete(name);
        const r = quikLinear(lin.weight, h, m, {
          ...options,
          bits: quikBits(name, options),
          backend,
        });
        lin.setWeight(r.weight);
        out.push({ layer, name, quik: r.quik, error: r.error });
      }
    },
    add(_layer, name, x) {
      let a = acc.get(name), m = maxAbs.get(name);
      if (!a) acc.set(name, a = new HessianAccumulator(x.cols, { backend }));
      if (!m) maxAbs.set(name, m = new Float64Array(x.cols));
      a.add(x);
      for (let i = 0; i < x.data.length; i++) {
        const j = i % x.cols, v = Math.abs(x.data[i] as number);
        if (v > (m[j] as number)) m[j] = v;
      }
    },
  }, options.progress === undefined ? {} : { progress: options.progress });
  installQuik(model, out, { backend: model.backend });
  return out;
}

/**
 * Puts QUIK layers into `model` in place of its projections; projections of one block that read
 * the same input (q/k/v, gate/up) with the same outliers and bits share one quantized input.
 */
export function installQuik(
  model: LlamaModel,
  layers: readonly QuikLayer[],
  options: { backend?: Backend } = {},
): void {
  const groups: readonly (readonly LinearName[])[] = [
    ["q_proj", "k_proj", "v_proj"],
    ["o_proj"],
    ["gate_proj", "up_proj"],
    ["down_proj"],
  ];
  const byKey = new Map(layers.map((l) => [`${l.layer}.${l.name}`, l]));
  model.blocks.forEach((blk, l) => {
    for (const group of groups) {
      const caches = new Map<string, QuikInputCache>();
      for (const name of group) {
        const q = byKey.get(`${l}.${name}`);
        if (!q) continue;
        const key = `${q.quik.bits}:${q.quik.outliers.join(",")}`;
        let cache = caches.get(key);
        if (!cache) caches.set(key, cache = new QuikInputCache());
        blk.linears[name].dispose?.();
        blk.linears[name] = new QuikLinear(q.quik, {
          ...(options.backend ? { backend: options.backend } : {}),
          cache,
        });
      }
    }
  });
}

/** The paper's Llama-2-7B WikiText-2 perplexities (Table 4, Table 11), for reports. */
export const QUIK_PAPER_LLAMA2_7B: Readonly<{
  fp16: number;
  gptqW4A16: number;
  quik4b: number;
  quik4bAll4bit: number;
  quik8b: number;
}> = Object.freeze({
  fp16: 5.47,
  gptqW4A16: 6.24,
  quik4b: 5.84,
  quik4bAll4bit: 8.87,
  quik8b: 5.48,
});
