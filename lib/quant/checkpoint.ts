/**
 * Quantized checkpoints in the two formats serving stacks load, written as their loaders read them
 * (HF transformers / optimum / GPTQModel / vLLM for GPTQ; vLLM's `CompressedTensorsWNA16` and the
 * compressed-tensors library for pack-quantized):
 *
 * **GPTQ** (`quant_method: "gptq"`), per quantized projection `P`:
 * `P.qweight` I32 [in·b/32, out] (input k of output o at bit b·k of column o's little-endian bit
 * stream: 32/b levels per word for b = 2, 4, 8, a dense stream for 3), `P.qzeros` I32
 * [groups, out·b/32] (zeros packed the same way along the output), `P.scales` F16 [groups, out],
 * `P.g_idx` I32 [in]; Ŵ[o, k] = scales[g_idx[k], o]·(q[k, o] − zero[g_idx[k], o]). The format
 * `gptq` (v1) stores zero − 1, which cannot hold a zero of 0; such a model is written as `gptq_v2`
 * (zeros as they are) and says so in `checkpoint_format`.
 *
 * **compressed-tensors `pack-quantized`**, per projection: `P.weight_packed` I32
 * [out, ⌈in·b/32⌉] (each row's levels as a bit stream, stored as signed + 2^(b−1), i.e. GPTQ's
 * unsigned levels), `P.weight_scale` F16 [out, groups], `P.weight_zero_point` I32
 * [⌈out·b/32⌉, groups] (asymmetric only, packed along the output), `P.weight_shape` I64 [2],
 * `P.weight_g_idx` I32 [in] (act-order only: `actorder: "group"`).
 *
 * Embeddings, norms and lm_head keep the source checkpoint's tensors; projections left unquantized
 * are written dense (and named in `modules_in_block_to_quantize` / `ignore`).
 *
 * @module
 */
import { FormatError, missingConfigError, quoteValue } from "../core/errors.ts";
import { writeFolder } from "../io/output.ts";
import {
  f16ToF32,
  f32ToF16,
  fromFloat32,
  isFloatDType,
  openCheckpoint,
  type Tensor,
  writeSafetensors,
} from "../io/safetensors.ts";
import type { Backend } from "../kernels/mod.ts";
import { DenseLinear } from "../model/linear.ts";
import {
  LINEAR_NAMES,
  type LinearLoadContext,
  type LinearName,
  linearTensorName,
  LlamaModel,
} from "../model/llama.ts";
import { copyTokenizerFiles } from "../model/tokenizer.ts";
import { QuantLinear } from "./quant_linear.ts";
import type { QuantizedLayer } from "./quantize_model.ts";
import { type QuantizedWeight, resolveSpec } from "./quantizer.ts";

/** Checkpoint formats of {@linkcode saveQuantizedModel}. */
export type QuantFormat = "gptq" | "compressed-tensors";

/** How the model was quantized, recorded in the config. */
export interface QuantRecipe {
  /** Act-order (desc_act). */
  actOrder?: boolean;
  /** Static groups. */
  staticGroups?: boolean;
  /** True-sequential. */
  trueSequential?: boolean;
  /** Damping. */
  percdamp?: number;
  /** "gptq" or "rtn". */
  method?: string;
}

/** Options of {@linkcode saveQuantizedModel}. */
export interface SaveQuantizedOptions extends QuantRecipe {
  /** "gptq" (default) or "compressed-tensors". */
  format?: QuantFormat;
}

/** Little-endian bit stream of n values of b bits, value i at bit b·i. */
function packStream(n: number, bits: number, value: (i: number) => number): Int32Array {
  const words = new Int32Array(Math.ceil((n * bits) / 32));
  for (let i = 0; i < n; i++) {
    const v = value(i), at = i * bits, w = at >> 5, off = at & 31;
    words[w]! |= v << off;
    if (off + bits > 32) words[w + 1]! |= v >>> (32 - off);
  }
  return words;
}

/** Value i of a stream whose word w is `word(w)`. */
function streamValue(word: (w: number) => number, i: number, bits: number): number {
  const at = i * bits, w = at >> 5, off = at & 31, mask = (1 << bits) - 1;
  let v = word(w) >>> off;
  if (off + bits > 32) v |= word(w + 1) << (32 - off);
  return v & mask;
}

/** The projection's tensor prefix, e.g. `model.layers.0.self_attn.q_proj`. */
export function projectionPrefix(layer: number, name: LinearName): string {
  return linearTensorName(layer, name).replace(/\.weight$/, "");
}

const f16 = (shape: number[], data: ArrayLike<number>): Tensor => ({
  dtype: "F16",
  shape,
  data: Uint16Array.from(data as ArrayLike<number>, (x) => f32ToF16(x)),
});

function gptqTensors(p: string, q: QuantizedWeight, v1: boolean): Record<string, Tensor> {
  const { rows: out, cols: inF, groups, spec } = q, b = spec.bits;
  if ((inF * b) % 32 !== 0 || (out * b) % 32 !== 0) {
    throw new RangeError(
      `Cannot write '${p}' in the GPTQ format: ${inF} inputs and ${out} outputs at ${b} bits do not fill whole 32-bit words`,
    );
  }
  const kw = (inF * b) / 32, ow = (out * b) / 32;
  const qweight = new Int32Array(kw * out);
  for (let o = 0; o < out; o++) {
    const col = packStream(inF, b, (k) => q.levels[o * inF + k] as number);
    for (let w = 0; w < kw; w++) qweight[w * out + o] = col[w] as number;
  }
  const qzeros = new Int32Array(groups * ow);
  for (let g = 0; g < groups; g++) {
    qzeros.set(packStream(out, b, (o) => (q.zeros[g * out + o] as number) - (v1 ? 1 : 0)), g * ow);
  }
  return {
    [`${p}.qweight`]: { dtype: "I32", shape: [kw, out], data: qweight },
    [`${p}.qzeros`]: { dtype: "I32", shape: [groups, ow], data: qzeros },
    [`${p}.scales`]: f16([groups, out], q.scales),
    [`${p}.g_idx`]: { dtype: "I32", shape: [inF], data: q.gIdx },
  };
}

function ctTensors(p: string, q: QuantizedWeight, actGroup: boolean): Record<string, Tensor> {
  const { rows: out, cols: inF, groups, spec } = q, b = spec.bits;
  const rw = Math.ceil((inF * b) / 32), zw = Math.ceil((out * b) / 32);
  const packed = new Int32Array(out * rw);
  for (let o = 0; o < out; o++) {
    packed.set(packStream(inF, b, (k) => q.levels[o * inF + k] as number), o * rw);
  }
  const scale = new Float32Array(out * groups);
  for (let g = 0; g < groups; g++) {
    for (let o = 0; o < out; o++) scale[o * groups + g] = q.scales[g * out + o] as number;
  }
  const t: Record<string, Tensor> = {
    [`${p}.weight_packed`]: { dtype: "I32", shape: [out, rw], data: packed },
    [`${p}.weight_scale`]: f16([out, groups], scale),
    [`${p}.weight_shape`]: {
      dtype: "I64",
      shape: [2],
      data: BigInt64Array.from([out, inF].map(BigInt)),
    },
  };
  if (!spec.sym) {
    const zp = new Int32Array(zw * groups);
    for (let g = 0; g < groups; g++) {
      const col = packStream(out, b, (o) => q.zeros[g * out + o] as number);
      for (let w = 0; w < zw; w++) zp[w * groups + g] = col[w] as number;
    }
    t[`${p}.weight_zero_point`] = { dtype: "I32", shape: [zw, groups], data: zp };
  }
  if (actGroup) t[`${p}.weight_g_idx`] = { dtype: "I32", shape: [inF], data: q.gIdx };
  return t;
}

/**
 * Writes `model` (loaded from `srcDir` and quantized by `quantizeModel`, which returned `layers`)
 * to `outDir` in the chosen format, all-or-nothing, with the source's tokenizer files. Every
 * quantized projection must share bits, group size and symmetry (one config for the model).
 *
 * @example
 * ```ts
 * import { LlamaModel } from "../model/llama.ts";
 * import { quantizeModel } from "./quantize_model.ts";
 * import { loadQuantizedModel, saveQuantizedModel } from "./checkpoint.ts";
 * const src = "data/models/tinyllama-bytes";
 * const model = await LlamaModel.load(src, { backend: "ts" });
 * const layers = await quantizeModel(model, [], { method: "rtn", bits: 4, groupSize: 64 });
 * const dir = await Deno.makeTempDir();
 * await saveQuantizedModel(model, src, `${dir}/q`, layers);
 * const again = await loadQuantizedModel(`${dir}/q`, { backend: "ts" });
 * if (again.config.numLayers !== 6) throw new Error("not the bundled model");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveQuantizedModel(
  model: LlamaModel,
  srcDir: string,
  outDir: string,
  layers: readonly QuantizedLayer[],
  options: SaveQuantizedOptions = {},
): Promise<{ checkpointFormat: string }> {
  const format = options.format ?? "gptq";
  if (format !== "gptq" && format !== "compressed-tensors") {
    throw new RangeError(
      `Unknown checkpoint format '${format}': expected gptq or compressed-tensors`,
    );
  }
  if (layers.length === 0) throw new RangeError("No quantized layer to save");
  const s0 = layers[0]!.quantized.spec;
  // one group size G for the file: a layer narrower than G was quantized as one group per row
  // (its spec says 0), which is what G means for it too (g_idx all 0, one row of scales)
  const g = Math.max(...layers.map((l) => l.quantized.spec.groupSize));
  for (const l of layers) {
    const s = l.quantized.spec;
    const sameGroups = s.groupSize === g || (s.groupSize === 0 && l.quantized.cols <= g);
    if (s.bits !== s0.bits || s.sym !== s0.sym || !sameGroups) {
      throw new RangeError(
        `Layer ${l.layer} ${l.name} is ${s.bits}-bit, group ${s.groupSize}, ${
          s.sym ? "sym" : "asym"
        }; others are ${s0.bits}-bit, group ${g}, ${
          s0.sym ? "sym" : "asym"
        }: one checkpoint holds one setting`,
      );
    }
  }
  const byName = new Map(layers.map((l) => [`${l.layer}.${l.name}`, l]));
  const quantizedNames = LINEAR_NAMES.filter((n) => layers.some((l) => l.name === n));
  for (let l = 0; l < model.config.numLayers; l++) {
    for (const n of quantizedNames) {
      if (!byName.has(`${l}.${n}`)) {
        throw new RangeError(`Layer ${l} ${n} is not quantized while ${n} is in other blocks`);
      }
    }
  }
  const v1 = format === "gptq" && !layers.some((l) => l.quantized.zeros.some((z) => z === 0));
  const checkpointFormat = format === "gptq" ? (v1 ? "gptq" : "gptq_v2") : "pack-quantized";
  const actGroup = !!options.actOrder && !options.staticGroups && g > 0;
  if (format === "compressed-tensors" && g > 0) {
    for (const l of layers) {
      if (l.quantized.cols % g !== 0) {
        throw new RangeError(
          `Cannot write layer ${l.layer} ${l.name} as compressed-tensors groups: ${l.quantized.cols} inputs are no multiple of the group size ${g}`,
        );
      }
    }
  }
  const configText = await Deno.readTextFile(`${srcDir}/config.json`);
  const config = JSON.parse(configText);
  await writeFolder(outDir, async (tmp) => {
    const { tensors, dtype } = await sourceTensors(srcDir);
    model.blocks.forEach((b, l) => {
      for (const n of LINEAR_NAMES) {
        const q = byName.get(`${l}.${n}`), p = projectionPrefix(l, n);
        if (q) {
          Object.assign(
            tensors,
            format === "gptq"
              ? gptqTensors(p, q.quantized, v1)
              : ctTensors(p, q.quantized, actGroup),
          );
          continue;
        }
        const lin = b.linears[n];
        if (!(lin instanceof DenseLinear)) {
          throw new TypeError(`Layer ${l} ${n} is neither quantized nor dense: cannot save it`);
        }
        tensors[`${p}.weight`] = {
          dtype,
          shape: [lin.outFeatures, lin.inFeatures],
          data: fromFloat32(lin.weight.data as Float32Array, dtype),
        };
      }
    });
    const unquantized = LINEAR_NAMES.filter((n) => !quantizedNames.includes(n));
    if (format === "gptq") {
      const qc = {
        quant_method: "gptq",
        bits: s0.bits,
        group_size: g > 0 ? g : -1,
        desc_act: !!options.actOrder,
        sym: s0.sym,
        true_sequential: options.trueSequential ?? true,
        static_groups: !!options.staticGroups,
        damp_percent: options.percdamp ?? 0.01,
        checkpoint_format: checkpointFormat,
        lm_head: false,
        ...(unquantized.length
          ? {
            modules_in_block_to_quantize: [quantizedNames.map((n) =>
              `${["gate_proj", "up_proj", "down_proj"].includes(n) ? "mlp" : "self_attn"}.${n}`
            )],
          }
          : {}),
        meta: { quantizer: ["lmkit"], method: options.method ?? "gptq", mse: s0.mse },
      };
      config.quantization_config = qc;
      await Deno.writeTextFile(`${tmp}/quantize_config.json`, JSON.stringify(qc, null, 2) + "\n");
    } else {
      config.quantization_config = {
        quant_method: "compressed-tensors",
        format: "pack-quantized",
        quantization_status: "compressed",
        config_groups: {
          group_0: {
            targets: ["Linear"],
            weights: {
              num_bits: s0.bits,
              type: "int",
              symmetric: s0.sym,
              strategy: g > 0 ? "group" : "channel",
              group_size: g > 0 ? g : null,
              block_structure: null,
              dynamic: false,
              actorder: actGroup ? "group" : options.actOrder ? "weight" : null,
              observer: "minmax",
              observer_kwargs: {},
            },
            input_activations: null,
            output_activations: null,
            format: "pack-quantized",
          },
        },
        ignore: [
          "lm_head",
          ...Array.from(
            { length: model.config.numLayers },
            (_, l) => unquantized.map((n) => projectionPrefix(l, n)),
          )
            .flat(),
        ],
        kv_cache_scheme: null,
        sparsity_config: {},
      };
    }
    config.torch_dtype = dtype === "F32" ? "float32" : dtype === "BF16" ? "bfloat16" : "float16";
    await writeSafetensors(`${tmp}/model.safetensors`, tensors, { format: "pt" });
    await copyTokenizerFiles(srcDir, tmp);
    await Deno.writeTextFile(`${tmp}/config.json`, JSON.stringify(config, null, 2) + "\n");
  });
  return { checkpointFormat };
}

/**
 * Every tensor of the checkpoint in `srcDir` but the block projections' weights, and its float
 * dtype (F16 when it has none): what a quantized checkpoint copies from its source.
 */
export async function sourceTensors(
  srcDir: string,
): Promise<{ tensors: Record<string, Tensor>; dtype: "F32" | "F16" | "BF16" }> {
  const tensors: Record<string, Tensor> = {};
  let dtype: "F32" | "F16" | "BF16" = "F16";
  using f = await openCheckpoint(srcDir);
  for (const name of f.names()) {
    if (/\.(q|k|v|o|gate|up|down)_proj\.weight$/.test(name)) continue;
    const t = await f.read(name);
    if (isFloatDType(t.dtype)) dtype = t.dtype;
    tensors[name] = t;
  }
  return { tensors, dtype };
}

/** A checkpoint folder's config.json as an object; a missing or non-JSON file is a FormatError. */
export async function readConfigJson(dir: string): Promise<Record<string, unknown>> {
  let config: unknown;
  try {
    config = JSON.parse(await Deno.readTextFile(`${dir}/config.json`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw missingConfigError(dir);
    }
    if (e instanceof SyntaxError) {
      throw new FormatError(`'${dir}/config.json' is not JSON: ${e.message}`);
    }
    throw e;
  }
  if (typeof config !== "object" || config === null || Array.isArray(config)) {
    throw new FormatError(`'${dir}/config.json' is not a JSON object`);
  }
  return config as Record<string, unknown>;
}

/** The quantization settings of a checkpoint folder's config.json, checked. */
interface FileSpec {
  format: "gptq" | "compressed-tensors";
  bits: number;
  groupSize: number; // 0 = per row
  sym: boolean;
  v1: boolean;
  quantized: (layer: number, name: LinearName) => boolean;
}

function readSpec(dir: string, config: Record<string, unknown>): FileSpec {
  const qc = config.quantization_config as Record<string, unknown> | undefined;
  const where = `'${dir}/config.json'`;
  if (!qc || typeof qc !== "object") {
    throw new FormatError(`${where} has no quantization_config: load it with LlamaModel.load`);
  }
  const int = (v: unknown, what: string) => {
    if (typeof v !== "number" || !Number.isInteger(v)) {
      throw new FormatError(
        `${where}: quantization_config.${what} is ${quoteValue(v)}, expected an integer`,
      );
    }
    return v;
  };
  const bitsOk = (b: number, what: string) => {
    if (b < 2 || b > 8) throw new FormatError(`${where}: ${what} is ${b}, expected 2 to 8 bits`);
    return b;
  };
  if (qc.quant_method === "gptq") {
    const fmt = qc.checkpoint_format ?? "gptq";
    if (fmt !== "gptq" && fmt !== "gptq_v2") {
      throw new FormatError(
        `${where}: checkpoint_format ${quoteValue(fmt)} is not gptq or gptq_v2`,
      );
    }
    const g = int(qc.group_size ?? -1, "group_size");
    const mods = qc.modules_in_block_to_quantize as unknown;
    const allowed = Array.isArray(mods)
      ? new Set(
        (mods as unknown[]).flat().map((m) => (typeof m === "string" ? m.split(".").pop() : "")),
      )
      : undefined;
    return {
      format: "gptq",
      bits: bitsOk(int(qc.bits, "bits"), "bits"),
      groupSize: g > 0 ? g : 0,
      sym: qc.sym !== false,
      v1: fmt === "gptq",
      quantized: (_l, n) => !allowed || allowed.has(n),
    };
  }
  if (qc.quant_method === "compressed-tensors") {
    if (qc.format !== "pack-quantized") {
      throw new FormatError(
        `${where}: compressed-tensors format ${quoteValue(qc.format)} is not pack-quantized`,
      );
    }
    const groups = Object.values(
      (qc.config_groups ?? {}) as Record<string, Record<string, unknown>>,
    );
    if (groups.length !== 1 || !groups[0]?.weights) {
      throw new FormatError(
        `${where}: expected one config group with weights, found ${groups.length}`,
      );
    }
    const w = groups[0].weights as Record<string, unknown>;
    if (w.type !== "int" || (w.strategy !== "group" && w.strategy !== "channel")) {
      throw new FormatError(
        `${where}: weights of type ${quoteValue(w.type)}, strategy ${
          quoteValue(w.strategy)
        }: expected int with group or channel`,
      );
    }
    const ig = qc.ignore ?? [];
    if (!Array.isArray(ig) || !ig.every((x) => typeof x === "string")) {
      throw new FormatError(`${where}: ignore is ${quoteValue(ig)}, expected a list of names`);
    }
    const ignore = new Set(ig as string[]);
    return {
      format: "compressed-tensors",
      bits: bitsOk(int(w.num_bits, "num_bits"), "num_bits"),
      groupSize: w.strategy === "group" ? int(w.group_size, "group_size") : 0,
      sym: w.symmetric !== false,
      v1: false,
      quantized: (l, n) => !ignore.has(projectionPrefix(l, n)),
    };
  }
  throw new FormatError(
    `${where}: quant_method ${quoteValue(qc.quant_method)} is not gptq or compressed-tensors`,
  );
}

/** Tensor `name` of the checkpoint being loaded, checked to be `dtype[shape]` (a FormatError). */
export async function tensorOf(
  ctx: LinearLoadContext,
  dir: string,
  name: string,
  dtype: string,
  shape: number[],
): Promise<Tensor> {
  if (!ctx.tensorNames.has(name)) {
    throw new FormatError(`Checkpoint '${dir}' lacks tensor '${name}'`);
  }
  const t = await ctx.read(name);
  if (
    t.dtype !== dtype || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])
  ) {
    throw new FormatError(
      `Tensor '${name}' in '${dir}' is ${t.dtype}[${t.shape}], expected ${dtype}[${shape}]`,
    );
  }
  return t;
}

/** Reads one quantized projection of a checkpoint (see the module doc for the layouts). */
async function readQuantized(
  ctx: LinearLoadContext,
  dir: string,
  fs: FileSpec,
): Promise<QuantizedWeight> {
  const [out, inF] = ctx.shape, b = fs.bits, p = projectionPrefix(ctx.layer, ctx.name);
  const spec = resolveSpec({ bits: b, sym: fs.sym, groupSize: fs.groupSize }, inF);
  const groups = spec.groupSize > 0 ? Math.ceil(inF / spec.groupSize) : 1;
  // allocated once the first tensor has confirmed the config's sizes (a config.json with sizes the
  // file lacks failed in the allocation)
  let levels = new Uint8Array(0), scales = new Float64Array(0), zeros = new Float64Array(0);
  const allocate = () => {
    levels = new Uint8Array(out * inF);
    scales = new Float64Array(groups * out);
    zeros = new Float64Array(groups * out);
  };
  let gIdx: Int32Array;
  if (fs.format === "gptq") {
    if ((inF * b) % 32 !== 0 || (out * b) % 32 !== 0) {
      throw new FormatError(
        `Layer '${p}' of '${dir}': ${out}×${inF} at ${b} bits does not fill whole words`,
      );
    }
    const kw = (inF * b) / 32, ow = (out * b) / 32;
    const qw = (await tensorOf(ctx, dir, `${p}.qweight`, "I32", [kw, out])).data as Int32Array;
    allocate();
    const qz = (await tensorOf(ctx, dir, `${p}.qzeros`, "I32", [groups, ow])).data as Int32Array;
    const sc = (await tensorOf(ctx, dir, `${p}.scales`, "F16", [groups, out])).data as Uint16Array;
    gIdx = Int32Array.from(
      (await tensorOf(ctx, dir, `${p}.g_idx`, "I32", [inF])).data as Int32Array,
    );
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < inF; k++) {
        levels[o * inF + k] = streamValue((w) => qw[w * out + o] as number, k, b);
      }
    }
    for (let g = 0; g < groups; g++) {
      for (let o = 0; o < out; o++) {
        zeros[g * out + o] = streamValue((w) => qz[g * ow + w] as number, o, b) + (fs.v1 ? 1 : 0);
        scales[g * out + o] = f16ToF32(sc[g * out + o] as number);
      }
    }
  } else {
    const rw = Math.ceil((inF * b) / 32), zw = Math.ceil((out * b) / 32);
    const shape = await tensorOf(ctx, dir, `${p}.weight_shape`, "I64", [2]);
    const [so, si] = Array.from(shape.data as BigInt64Array, Number);
    if (so !== out || si !== inF) {
      throw new FormatError(
        `Tensor '${p}.weight_shape' in '${dir}' is [${so}, ${si}], expected [${out}, ${inF}]`,
      );
    }
    const wp = (await tensorOf(ctx, dir, `${p}.weight_packed`, "I32", [out, rw]))
      .data as Int32Array;
    allocate();
    const sname = `${p}.weight_scale`;
    if (!ctx.tensorNames.has(sname)) {
      throw new FormatError(`Checkpoint '${dir}' lacks tensor '${sname}'`);
    }
    const st = await ctx.readFloat32(sname);
    if (st.shape.join() !== `${out},${groups}`) {
      throw new FormatError(
        `Tensor '${sname}' in '${dir}' has shape [${st.shape}], expected [${out},${groups}]`,
      );
    }
    for (let o = 0; o < out; o++) {
      for (let k = 0; k < inF; k++) {
        levels[o * inF + k] = streamValue((w) => wp[o * rw + w] as number, k, b);
      }
      for (let g = 0; g < groups; g++) scales[g * out + o] = st.data[o * groups + g] as number;
    }
    if (fs.sym) zeros.fill(2 ** (b - 1));
    else {
      const zp = (await tensorOf(ctx, dir, `${p}.weight_zero_point`, "I32", [zw, groups]))
        .data as Int32Array;
      for (let g = 0; g < groups; g++) {
        for (let o = 0; o < out; o++) {
          zeros[g * out + o] = streamValue((w) => zp[w * groups + g] as number, o, b);
        }
      }
    }
    const gname = `${p}.weight_g_idx`;
    gIdx = ctx.tensorNames.has(gname)
      ? Int32Array.from((await tensorOf(ctx, dir, gname, "I32", [inF])).data as Int32Array)
      : Int32Array.from(
        { length: inF },
        (_, k) => (spec.groupSize ? Math.floor(k / spec.groupSize) : 0),
      );
  }
  const gi = gIdx.findIndex((g) => g < 0 || g >= groups);
  if (gi >= 0) {
    throw new FormatError(
      `Tensor '${p}' g_idx[${gi}] = ${gIdx[gi]} in '${dir}' is outside [0, ${groups})`,
    );
  }
  const si = scales.findIndex((s) => !(s > 0) || !Number.isFinite(s));
  if (si >= 0) {
    throw new FormatError(
      `Layer '${p}' in '${dir}' has scale ${scales[si]} (group ${Math.floor(si / out)}, output ${
        si % out
      }): expected a positive finite number`,
    );
  }
  const zi = zeros.findIndex((z) => z > spec.maxq);
  if (zi >= 0) {
    throw new FormatError(
      `Layer '${p}' in '${dir}' has zero point ${zeros[zi]} (group ${
        Math.floor(zi / out)
      }, output ${zi % out}) above ${spec.maxq}${fs.v1 ? " (a gptq v1 file stores zero − 1)" : ""}`,
    );
  }
  return { rows: out, cols: inF, spec, levels, scales, zeros, gIdx, groups };
}

/** Options of {@linkcode loadQuantizedModel}. */
export interface LoadQuantizedOptions {
  /** Backend (default: the best available). */
  backend?: Backend;
}

/**
 * Loads a GPTQ or compressed-tensors pack-quantized checkpoint folder: quantized projections as
 * {@linkcode QuantLinear} (never expanded to f32), the rest dense. Bad or inconsistent files
 * fail with a `FormatError` naming the tensor.
 */
export async function loadQuantizedModel(
  dir: string,
  options: LoadQuantizedOptions = {},
): Promise<LlamaModel> {
  const fs = readSpec(dir, await readConfigJson(dir));
  return await LlamaModel.load(dir, {
    ...(options.backend ? { backend: options.backend } : {}),
    linearLoader: async (ctx) => {
      if (!fs.quantized(ctx.layer, ctx.name)) return undefined;
      return new QuantLinear(await readQuantized(ctx, dir, fs), { backend: ctx.backend });
    },
  });
}
