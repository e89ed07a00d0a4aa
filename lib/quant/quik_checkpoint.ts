/**
 * QUIK checkpoints. No serving stack defines a QUIK format (the authors convert an fp16 model at
 * load time), so lmkit writes its own, in safetensors beside the source's other tensors; per
 * projection `P`:
 *
 * - `P.qweight` U8 [out, ⌈kq/2⌉] (4-bit) or [out, kq] (8-bit): unsigned levels w + 2^(b−1) of the
 *   kq integer columns in increasing order, 4-bit two a byte with the even column in the low
 *   nibble (the authors' `pack_to_i4` order, stored offset instead of two's complement);
 * - `P.scales` F32 [out]: the symmetric per-row scales;
 * - `P.outlier_idx` I32 [k]: the outlier input columns, increasing;
 * - `P.outlier_weight` F32 [out, k]: their weights.
 *
 * config.json gets `quantization_config = {quant_method: "quik", bits: {q_proj: 4, …,
 * down_proj: 8}, …}`. Loading rebuilds each {@linkcode QuikLinear} (q/k/v and gate/up sharing
 * their quantized input again) and gives the same logits as the model that was saved.
 *
 * @module
 */
import { FormatError, quoteValue } from "../core/errors.ts";
import { writeFolder } from "../io/output.ts";
import { type Tensor, writeSafetensors } from "../io/safetensors.ts";
import type { Backend } from "../kernels/mod.ts";
import { quikLevelSums, quikRowBytes, type QuikWeight } from "../kernels/quik_matmul.ts";
import { LINEAR_NAMES, type LinearName, LlamaModel } from "../model/llama.ts";
import { copyTokenizerFiles } from "../model/tokenizer.ts";
import { projectionPrefix, readConfigJson, sourceTensors, tensorOf } from "./checkpoint.ts";
import { installQuik, type QuikLayer } from "./quik.ts";
import { QuikLinear } from "./quik_linear.ts";

/**
 * Writes a QUIK model (`layers` from `quikModel`, the model loaded from `srcDir`) to `outDir`,
 * all-or-nothing, with the source's tokenizer files. Every block projection must be a QUIK layer,
 * each name at the same bits in every block.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { quikModel } from "./quik.ts";
 * import { loadQuikModel, saveQuikModel } from "./quik_checkpoint.ts";
 * const src = "data/models/tinyllama-bytes";
 * const model = await LlamaModel.load(src, { backend: "cpu" });
 * const layers = await quikModel(model, [[256, 72, 105, 32]], { clip: false, progress: false });
 * const dir = await Deno.makeTempDir();
 * await saveQuikModel(src, `${dir}/q`, layers);
 * const again = await loadQuikModel(`${dir}/q`, { backend: "cpu" });
 * const a = model.forward([256, 72, 105]), b = again.forward([256, 72, 105]);
 * if (a.data.some((v, i) => v !== b.data[i])) throw new Error("the reloaded model differs");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveQuikModel(
  srcDir: string,
  outDir: string,
  layers: readonly QuikLayer[],
): Promise<void> {
  if (layers.length === 0) throw new RangeError("No QUIK layer to save");
  const bits: Partial<Record<LinearName, number>> = {};
  for (const l of layers) {
    const b = bits[l.name];
    if (b !== undefined && b !== l.quik.bits) {
      throw new RangeError(`${l.name} is ${b}-bit in one block and ${l.quik.bits}-bit in another`);
    }
    bits[l.name] = l.quik.bits;
  }
  const config = await readConfigJson(srcDir);
  const byKey = new Map(layers.map((l) => [`${l.layer}.${l.name}`, l]));
  await writeFolder(outDir, async (tmp) => {
    const { tensors, dtype } = await sourceTensors(srcDir);
    const numLayers = Number(config.num_hidden_layers);
    if (!(numLayers >= 1) || layers.some((l) => l.layer >= numLayers)) {
      throw new RangeError(`The layers do not fit '${srcDir}' (${numLayers} blocks)`);
    }
    for (let l = 0; l < numLayers; l++) {
      for (const n of LINEAR_NAMES) {
        const q = byKey.get(`${l}.${n}`), p = projectionPrefix(l, n);
        if (!q) throw new RangeError(`Block ${l} ${n} is not a QUIK layer: cannot save the model`);
        Object.assign(tensors, quikTensors(p, q.quik));
      }
    }
    config.quantization_config = {
      quant_method: "quik",
      bits,
      weights: "symmetric per row",
      activations: "asymmetric per token",
      outliers: "f32 columns in outlier_idx",
      modules: layers.length,
      lm_head: false,
      meta: { quantizer: ["lmkit"] },
    };
    config.torch_dtype = dtype === "F32" ? "float32" : dtype === "BF16" ? "bfloat16" : "float16";
    await writeSafetensors(`${tmp}/model.safetensors`, tensors, { format: "pt" });
    await copyTokenizerFiles(srcDir, tmp);
    await Deno.writeTextFile(`${tmp}/config.json`, JSON.stringify(config, null, 2) + "\n");
  });
}

function quikTensors(p: string, w: QuikWeight): Record<string, Tensor> {
  const kq = w.cols - w.outliers.length, no = w.outliers.length;
  return {
    [`${p}.qweight`]: {
      dtype: "U8",
      shape: [w.rows, quikRowBytes(kq, w.bits)],
      data: w.levels,
    },
    [`${p}.scales`]: { dtype: "F32", shape: [w.rows], data: w.scales },
    [`${p}.outlier_idx`]: { dtype: "I32", shape: [no], data: w.outliers },
    [`${p}.outlier_weight`]: { dtype: "F32", shape: [w.rows, no], data: w.outlierWeight },
  };
}

/** Options of {@linkcode loadQuikModel}. */
export interface LoadQuikOptions {
  /** Backend (default: the best available). */
  backend?: Backend;
}

/**
 * Loads a QUIK checkpoint folder written by {@linkcode saveQuikModel}. Bad or inconsistent files
 * fail with a `FormatError` naming the tensor.
 */
export async function loadQuikModel(
  dir: string,
  options: LoadQuikOptions = {},
): Promise<LlamaModel> {
  const config = await readConfigJson(dir);
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  if (!qc || qc.quant_method !== "quik") {
    throw new FormatError(`'${dir}/config.json' has no quantization_config with quant_method quik`);
  }
  const bits = qc.bits as Record<string, unknown>;
  if (typeof bits !== "object" || bits === null) {
    throw new FormatError(`'${dir}/config.json': quantization_config.bits is not an object`);
  }
  for (const [n, b] of Object.entries(bits)) {
    if (!(LINEAR_NAMES as readonly string[]).includes(n) || (b !== 4 && b !== 8)) {
      throw new FormatError(
        `'${dir}/config.json': quantization_config.bits has ${quoteValue(n)}: ${
          quoteValue(b)
        }, expected a projection name and 4 or 8`,
      );
    }
  }
  const layers: QuikLayer[] = [];
  const model = await LlamaModel.load(dir, {
    ...(options.backend ? { backend: options.backend } : {}),
    linearLoader: async (ctx) => {
      const b = bits[ctx.name] as number | undefined;
      if (b === undefined) return undefined;
      const p = projectionPrefix(ctx.layer, ctx.name), [out, inF] = ctx.shape;
      const idxT = await ctx.read(`${p}.outlier_idx`).catch(() => undefined);
      if (!idxT || idxT.dtype !== "I32" || idxT.shape.length !== 1) {
        throw new FormatError(`Checkpoint '${dir}' lacks an I32 vector '${p}.outlier_idx'`);
      }
      const no = idxT.shape[0] as number, kq = inF - no;
      if (kq < 0) throw new FormatError(`'${p}.outlier_idx' lists ${no} of ${inF} columns`);
      const get = (suffix: string, dtype: string, shape: number[]) =>
        tensorOf(ctx, dir, `${p}.${suffix}`, dtype, shape).then((t) => t.data);
      const levels = await get("qweight", "U8", [out, quikRowBytes(kq, b)]) as Uint8Array;
      const quik: QuikWeight = {
        rows: out,
        cols: inF,
        bits: b,
        outliers: Int32Array.from(idxT.data as Int32Array),
        levels,
        scales: await get("scales", "F32", [out]) as Float32Array,
        sums: quikLevelSums(levels, out, kq, b),
        outlierWeight: await get("outlier_weight", "F32", [out, no]) as Float32Array,
      };
      try {
        const lin = new QuikLinear(quik, { backend: ctx.backend });
        layers.push({ layer: ctx.layer, name: ctx.name, quik, error: NaN });
        return lin;
      } catch (e) {
        throw new FormatError(`Layer '${p}' of '${dir}': ${(e as Error).message}`);
      }
    },
  });
  installQuik(model, layers, { backend: model.backend });
  return model;
}
