/**
 * Saving and loading Sparse Expansion models as HF-style checkpoints: the dense tensors as
 * usual, and for each expanded projection its experts
 * (`model.layers.L.mlp.gate_proj.experts.C.weight`) and its router
 * (`model.layers.L.mlp.router_gate_up.{mean,components,centroids}`, shared by gate and up;
 * `router_down` for down_proj).
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { SafetensorsFile, type Tensor, writeSafetensors } from "../io/safetensors.ts";
import { DenseLinear } from "../model/linear.ts";
import { type LinearName, linearTensorName, LlamaModel, type LoadOptions } from "../model/llama.ts";
import { ExpertLinear } from "./expansion.ts";
import type { Router } from "./router.ts";

const routerName = (layer: number, name: LinearName) =>
  `model.layers.${layer}.mlp.${name === "down_proj" ? "router_down" : "router_gate_up"}`;

/**
 * Writes `model` (loaded from `srcDir`, then pruned or expanded in place) to `outDir` as
 * config.json + model.safetensors (f32).
 */
export async function saveModel(model: LlamaModel, srcDir: string, outDir: string): Promise<void> {
  const tensors: Record<string, Tensor> = {};
  {
    using f = await SafetensorsFile.open(`${srcDir}/model.safetensors`);
    for (const name of f.names()) {
      const t = await f.readFloat32(name);
      tensors[name] = { dtype: "F32", shape: t.shape, data: t.data };
    }
  }
  const f64 = (a: Float64Array, shape: number[]): Tensor => ({
    dtype: "F32",
    shape,
    data: Float32Array.from(a),
  });
  model.blocks.forEach((b, l) => {
    for (const [n, lin] of Object.entries(b.linears) as [LinearName, unknown][]) {
      const base = linearTensorName(l, n);
      if (lin instanceof DenseLinear) {
        tensors[base] = {
          dtype: "F32",
          shape: [lin.weight.rows, lin.weight.cols],
          data: lin.weight.data,
        };
      } else if (lin instanceof ExpertLinear) {
        delete tensors[base];
        lin.experts.forEach((e, c) => {
          tensors[base.replace(/\.weight$/, `.experts.${c}.weight`)] = {
            dtype: "F32",
            shape: [e.rows, e.cols],
            data: e.data,
          };
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
  await Deno.mkdir(outDir, { recursive: true });
  // weights first (temporary name, then renamed), the config last: a folder with a config.json
  // always has its weights
  await writeSafetensors(`${outDir}/model.safetensors`, tensors, {
    format: "pt",
    lmkit: "sparse-expansion",
  });
  await Deno.copyFile(`${srcDir}/config.json`, `${outDir}/config.json`);
}

/**
 * Loads a checkpoint that may contain expanded projections (see {@linkcode saveModel});
 * projections with a dense weight load as usual.
 */
export async function loadExpandedModel(
  dir: string,
  options: Omit<LoadOptions, "linearLoader"> = {},
): Promise<LlamaModel> {
  const routers = new Map<string, Router>();
  return await LlamaModel.load(dir, {
    ...options,
    async linearLoader(ctx) {
      const base = linearTensorName(ctx.layer, ctx.name).replace(/\.weight$/, "");
      if (
        ctx.tensorNames.has(`${base}.weight`) || !ctx.tensorNames.has(`${base}.experts.0.weight`)
      ) return undefined;
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
      const [rows, cols] = ctx.shape;
      const experts: Matrix[] = [];
      for (let c = 0; c < router.k; c++) {
        const t = `${base}.experts.${c}.weight`;
        if (!ctx.tensorNames.has(t)) {
          throw new FormatError(
            `Checkpoint '${dir}' lacks '${t}' (router has ${router.k} clusters)`,
          );
        }
        const e = await ctx.readFloat32(t);
        if (e.shape[0] !== rows || e.shape[1] !== cols) {
          throw new FormatError(
            `Tensor '${t}' in '${dir}' has shape [${e.shape}], expected [${rows},${cols}]`,
          );
        }
        experts.push(new Matrix(rows, cols, e.data));
      }
      return new ExpertLinear(router, experts, ctx.backend === "ts" ? "ts" : "cpu");
    },
  });
}
