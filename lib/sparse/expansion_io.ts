/**
 * Saving and loading Sparse Expansion models as HF-style checkpoints: the dense tensors as
 * usual, and for each expanded projection its experts and its router
 * (`model.layers.L.mlp.router_gate_up.{mean,components,centroids}`, shared by gate and up;
 * `router_down` for down_proj).
 *
 * Experts are saved compressed as a bitmap (`….mlp.gate_proj.experts.C.bitmap`, U8 [out,
 * ceil(in / 8)], bit c % 8 of byte c / 8 set where column c is kept) and the kept values
 * (`….experts.C.values`, [kept], row by row): d·b + 1/8 bytes per entry at density d with b
 * bytes per value, the smallest of the forms measured (bench/sparse_formats_bench.ts). Weights
 * and values are written in the source checkpoint's float dtype (F16 for the bundled model) unless
 * `dtype` says otherwise; routers always in F32 (a rounded centroid could move a token to another
 * expert). `experts: "dense"` saves `….experts.C.weight` instead. On load each expert takes the
 * form it computes fastest in (packed N:M for 2:4 and 4:8 experts, see
 * `lib/kernels/sparse_weight.ts`), so E experts at sparsity s cost about E·(1 − s) of a dense
 * layer plus the index, not E dense copies.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import {
  type FloatDType,
  fromFloat32,
  isFloatDType,
  openCheckpoint,
  type Tensor,
  toFloat32,
  writeSafetensors,
} from "../io/safetensors.ts";
import { bitmapFromParts, type BitmapMatrix } from "../kernels/spmm_bitmap.ts";
import { nmFromBitmap } from "../kernels/spmm_nm.ts";
import {
  autoForm,
  blockSparseFromBitmap,
  compressWeight,
  type SparseWeight,
  sparseWeightToBitmap,
  sparseWeightToDense,
} from "../kernels/sparse_weight.ts";
import { DenseLinear } from "../model/linear.ts";
import { copyTokenizerFiles } from "../model/tokenizer.ts";
import { writeFolder } from "../io/output.ts";
import {
  type LinearLoadContext,
  type LinearName,
  linearTensorName,
  LlamaModel,
  type LoadOptions,
} from "../model/llama.ts";
import { ExpertLinear } from "./expansion.ts";
import type { Router } from "./router.ts";
import { SparseExpertLinear } from "./sparse_expert.ts";

const routerName = (layer: number, name: LinearName) =>
  `model.layers.${layer}.mlp.${name === "down_proj" ? "router_down" : "router_gate_up"}`;

/** Options of {@linkcode saveModel}. */
export interface SaveOptions {
  /** How experts are stored: `"bitmap"` (default) or `"dense"` matrices. */
  experts?: "bitmap" | "dense";
  /**
   * The float dtype of weights, expert values and norms; default: the source checkpoint's (that
   * of its first float tensor). Routers are always F32.
   */
  dtype?: FloatDType;
}

export type { FloatDType };

/** A float tensor stored in `dtype` (rounded to nearest from f32). */
const floatTensor = (shape: number[], data: Float32Array, dtype: FloatDType): Tensor => ({
  dtype,
  shape,
  data: fromFloat32(data, dtype),
});

/**
 * The tensors of one expert weight in the chosen stored form; a bitmap expert is written as it is
 * held, any other is densified one expert at a time.
 */
function expertTensors(
  prefix: string,
  w: Matrix | SparseWeight,
  form: "bitmap" | "dense",
  dtype: FloatDType,
): Record<string, Tensor> {
  if (form === "bitmap") return bitmapTensors(prefix, sparseWeightToBitmap(w), dtype);
  const d = w instanceof Matrix ? w : sparseWeightToDense(w);
  return { [`${prefix}.weight`]: floatTensor([d.rows, d.cols], d.data as Float32Array, dtype) };
}

function bitmapTensors(prefix: string, b: BitmapMatrix, dtype: FloatDType): Record<string, Tensor> {
  return {
    [`${prefix}.bitmap`]: { dtype: "U8", shape: [b.rows, Math.ceil(b.cols / 8)], data: b.bits },
    [`${prefix}.values`]: floatTensor([b.val.length], b.val, dtype),
  };
}

/**
 * Writes `model` (loaded from `srcDir`, then pruned or expanded in place) to `outDir` as
 * config.json + model.safetensors (in the source's float dtype unless `dtype` is given; experts
 * compressed unless `experts: "dense"`), with the source's tokenizer files.
 */
export async function saveModel(
  model: LlamaModel,
  srcDir: string,
  outDir: string,
  options: SaveOptions = {},
): Promise<void> {
  const form = options.experts ?? "bitmap";
  if (form !== "bitmap" && form !== "dense") {
    throw new RangeError(`Unknown expert storage '${form}': expected bitmap or dense`);
  }
  if (options.dtype !== undefined && !isFloatDType(options.dtype)) {
    throw new RangeError(`Unknown dtype '${options.dtype}': expected F32, F16 or BF16`);
  }
  const tensors: Record<string, Tensor> = {};
  let dtype = options.dtype;
  {
    using f = await openCheckpoint(srcDir);
    for (const name of f.names()) {
      const t = await f.read(name);
      if (!isFloatDType(t.dtype)) {
        throw new FormatError(
          `Tensor '${name}' in '${srcDir}' is ${t.dtype}: a model to save has float tensors only`,
        );
      }
      dtype ??= t.dtype;
      tensors[name] = t.dtype === dtype
        ? t
        : floatTensor(t.shape, toFloat32(t, `tensor '${name}'`), dtype);
    }
  }
  const dt: FloatDType = dtype ?? "F32";
  const f64 = (a: Float64Array, shape: number[]): Tensor =>
    floatTensor(shape, Float32Array.from(a), "F32");
  model.blocks.forEach((b, l) => {
    for (const [n, lin] of Object.entries(b.linears) as [LinearName, unknown][]) {
      const base = linearTensorName(l, n);
      if (lin instanceof DenseLinear) {
        const w = lin.weight;
        tensors[base] = floatTensor([w.rows, w.cols], w.data as Float32Array, dt);
      } else if (lin instanceof ExpertLinear || lin instanceof SparseExpertLinear) {
        delete tensors[base];
        (lin.experts as readonly (Matrix | SparseWeight)[]).forEach((e, c) => {
          Object.assign(
            tensors,
            expertTensors(base.replace(/\.weight$/, `.experts.${c}`), e, form, dt),
          );
        });
        const r = lin.router, rn = routerName(l, n);
        tensors[`${rn}.mean`] = f64(r.mean, [r.dim]);
        tensors[`${rn}.components`] = f64(r.components, [r.rank, r.dim]);
        tensors[`${rn}.centroids`] = f64(r.centroids, [r.k, r.rank]);
      } else {
        throw new TypeError(`Layer ${l} ${n} is neither dense nor expanded: cannot save it`);
      }
    }
  });
  // all-or-nothing: a killed --save left a folder with part of its files
  await writeFolder(outDir, async (tmp) => {
    await writeSafetensors(`${tmp}/model.safetensors`, tensors, {
      format: "pt",
      lmkit: "sparse-expansion",
    });
    await copyTokenizerFiles(srcDir, tmp);
    await Deno.copyFile(`${srcDir}/config.json`, `${tmp}/config.json`);
  });
}

/** One expert as saved (bitmap + values, or a dense weight), in the form it computes fastest in. */
async function loadExpert(
  ctx: LinearLoadContext,
  prefix: string,
  dir: string,
  form: "auto" | "bitmap",
): Promise<SparseWeight> {
  const [rows, cols] = ctx.shape;
  if (ctx.tensorNames.has(`${prefix}.bitmap`)) {
    const bits = await ctx.read(`${prefix}.bitmap`);
    if (!ctx.tensorNames.has(`${prefix}.values`)) {
      throw new FormatError(
        `Checkpoint '${dir}' has '${prefix}.bitmap' but lacks '${prefix}.values'`,
      );
    }
    const val = await ctx.read(`${prefix}.values`);
    const rb = Math.ceil(cols / 8);
    if (bits.dtype !== "U8" || bits.shape.join() !== `${rows},${rb}`) {
      throw new FormatError(
        `Tensor '${prefix}.bitmap' in '${dir}' is ${bits.dtype}[${bits.shape}], expected U8[${rows},${rb}]`,
      );
    }
    if (!isFloatDType(val.dtype) || val.shape.length !== 1) {
      throw new FormatError(
        `Tensor '${prefix}.values' in '${dir}' is ${val.dtype}[${val.shape}], expected a 1-D F32, F16 or BF16 tensor`,
      );
    }
    const b = bitmapFromParts(
      rows,
      cols,
      bits.data as Uint8Array,
      toFloat32(val),
      `Expert '${prefix}' in '${dir}'`,
    );
    const auto = form === "auto" ? autoForm(b) : { format: "bitmap" as const };
    if (auto.format === "nm") {
      return { format: "nm", matrix: nmFromBitmap(b, auto.nm!.n, auto.nm!.m) };
    }
    return auto.format === "block-sparse"
      ? { format: "block-sparse", matrix: blockSparseFromBitmap(b) }
      : { format: "bitmap", matrix: b };
  }
  const t = `${prefix}.weight`;
  if (!ctx.tensorNames.has(t)) {
    throw new FormatError(`Checkpoint '${dir}' lacks '${prefix}.bitmap' (or '${t}')`);
  }
  const e = await ctx.readFloat32(t);
  if (e.shape[0] !== rows || e.shape[1] !== cols) {
    throw new FormatError(
      `Tensor '${t}' in '${dir}' has shape [${e.shape}], expected [${rows},${cols}]`,
    );
  }
  return compressWeight(
    new Matrix(rows, cols, e.data),
    form === "bitmap" ? { format: "bitmap" } : {},
  );
}

/**
 * Loads a checkpoint that may contain expanded projections (see {@linkcode saveModel}) as
 * {@linkcode SparseExpertLinear} layers; projections with a dense weight load as usual.
 */
export async function loadExpandedModel(
  dir: string,
  options: Omit<LoadOptions, "linearLoader"> & {
    /**
     * The form experts are held in: `"auto"` (default; packed N:M for 2:4 and 4:8 experts,
     * block-sparse below density 0.35, else the bitmap: fastest for batched tokens, see
     * `autoForm`) or `"bitmap"` (fastest for decoding a few tokens).
     */
    experts?: "auto" | "bitmap";
  } = {},
): Promise<LlamaModel> {
  const form = options.experts ?? "auto";
  if (form !== "auto" && form !== "bitmap") {
    throw new RangeError(`Unknown expert form '${form}': expected auto or bitmap`);
  }
  const routers = new Map<string, Router>();
  const { experts: _, ...loadOptions } = options;
  return await LlamaModel.load(dir, {
    ...loadOptions,
    async linearLoader(ctx) {
      const base = linearTensorName(ctx.layer, ctx.name).replace(/\.weight$/, "");
      const hasExpert0 = ctx.tensorNames.has(`${base}.experts.0.bitmap`) ||
        ctx.tensorNames.has(`${base}.experts.0.weight`);
      if (ctx.tensorNames.has(`${base}.weight`) || !hasExpert0) return undefined;
      const rn = routerName(ctx.layer, ctx.name);
      let router = routers.get(rn);
      if (!router) {
        const need = async (t: string) => {
          if (!ctx.tensorNames.has(t)) {
            throw new FormatError(`Checkpoint '${dir}' has experts for ${base} but lacks '${t}'`);
          }
          return await ctx.readFloat32(t);
        };
        const mean = await need(`${rn}.mean`),
          comp = await need(`${rn}.components`),
          cent = await need(`${rn}.centroids`);
        const [rank, dim] = comp.shape as [number, number], k = cent.shape[0] as number;
        if (mean.shape[0] !== dim || cent.shape[1] !== rank) {
          throw new FormatError(`Router '${rn}' in '${dir}' has inconsistent shapes`);
        }
        router = {
          mean: Float64Array.from(mean.data),
          components: Float64Array.from(comp.data),
          centroids: Float64Array.from(cent.data),
          dim,
          rank,
          k,
        };
        routers.set(rn, router);
      }
      const experts: SparseWeight[] = [];
      for (let c = 0; c < router.k; c++) {
        const prefix = `${base}.experts.${c}`;
        if (!ctx.tensorNames.has(`${prefix}.bitmap`) && !ctx.tensorNames.has(`${prefix}.weight`)) {
          throw new FormatError(
            `Checkpoint '${dir}' lacks expert ${c} of ${base} (router has ${router.k} clusters)`,
          );
        }
        experts.push(await loadExpert(ctx, prefix, dir, form));
      }
      // on cuda the routed layer runs on the device (CudaRoutedExperts, bf16)
      return new SparseExpertLinear(router, experts, ctx.backend);
    },
  });
}
