/**
 * Names of a model's block projections as HF writes them (`model.layers.3.mlp.down_proj`), and
 * the selection of a named set of them by exact names, `*` wildcards, bare projection names or a
 * regular expression: what `pruneLayers` (lib/sparse) and `quantizeLayers` (lib/quant) take.
 *
 * @module
 */
import { quoteValue } from "../core/errors.ts";
import { LINEAR_NAMES, type LinearName, linearTensorName, type LlamaModel } from "./llama.ts";

/**
 * Which projections: an HF module name (`"model.layers.0.mlp.down_proj"`, a `.weight` suffix is
 * allowed), a glob whose `*` stands for any characters but `.` (`"model.layers.*.mlp.down_proj"`),
 * a bare projection name for every block (`"down_proj"`), a list of these, or a regular
 * expression tested against the module names.
 */
export type LayerSelector = string | RegExp | readonly string[];

/** One selected projection. */
export interface SelectedLinear {
  /** HF module name, e.g. `model.layers.0.mlp.down_proj`. */
  module: string;
  /** Block index. */
  layer: number;
  /** Projection. */
  name: LinearName;
}

/**
 * The HF module name of every block projection of `model`, in forward order (block by block, each
 * in {@linkcode LINEAR_NAMES} order).
 *
 * @example
 * ```ts
 * import { linearModuleNames } from "./layer_names.ts";
 * import { LlamaModel } from "./llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const names = linearModuleNames(model);
 * if (names.length !== 6 * 7 || names[6] !== "model.layers.0.mlp.down_proj") throw new Error();
 * ```
 */
export function linearModuleNames(model: LlamaModel): string[] {
  return all(model).map((s) => s.module);
}

function all(model: LlamaModel): SelectedLinear[] {
  const out: SelectedLinear[] = [];
  for (let layer = 0; layer < model.config.numLayers; layer++) {
    for (const name of LINEAR_NAMES) {
      out.push({ module: linearTensorName(layer, name).replace(/\.weight$/, ""), layer, name });
    }
  }
  return out;
}

/**
 * The projections of `model` that `layers` names, in forward order and without repeats. An entry
 * that matches nothing fails with one sentence quoting it and listing a few valid names.
 *
 * @example
 * ```ts
 * import { selectLinears } from "./layer_names.ts";
 * import { LlamaModel } from "./llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const sel = selectLinears(model, ["model.layers.1.self_attn.q_proj", "model.layers.*.mlp.up_proj"]);
 * if (sel.length !== 7 || sel[0]!.module !== "model.layers.0.mlp.up_proj") throw new Error();
 * let msg = "";
 * try { selectLinears(model, "model.layers.9.mlp.down_proj"); } catch (e) { msg = (e as Error).message; }
 * if (!msg.startsWith("Unknown layer 'model.layers.9.mlp.down_proj'")) throw new Error(msg);
 * ```
 */
export function selectLinears(model: LlamaModel, layers: LayerSelector): SelectedLinear[] {
  const every = all(model);
  const chosen = new Set<string>();
  const hint = () => {
    const L = model.config.numLayers;
    return `expected a module name such as '${every[0]!.module}' or '${
      every[every.length - 1]!.module
    }' (blocks 0 to ${L - 1}, projections ${
      LINEAR_NAMES.join(", ")
    }), a '*' pattern such as 'model.layers.*.mlp.down_proj', or a bare projection name`;
  };
  if (layers instanceof RegExp) {
    const re = new RegExp(layers.source, layers.flags.replace(/[gy]/g, "")); // no lastIndex state
    for (const s of every) if (re.test(s.module)) chosen.add(s.module);
    if (chosen.size === 0) {
      throw new RangeError(`Layer pattern ${String(layers)} matches no projection: ${hint()}`);
    }
  } else {
    const list: readonly unknown[] = typeof layers === "string" ? [layers] : layers;
    if (!Array.isArray(list)) {
      throw new TypeError(
        `Layers ${quoteValue(layers)} is not a name, a list of names or a regular expression`,
      );
    }
    if (list.length === 0) throw new RangeError(`The list of layers is empty: ${hint()}`);
    for (const entry of list) {
      if (typeof entry !== "string") {
        throw new TypeError(`Layer ${quoteValue(entry)} is not a string: ${hint()}`);
      }
      const key = entry.trim().replace(/\.weight$/, "");
      let hit = 0;
      if ((LINEAR_NAMES as readonly string[]).includes(key)) {
        for (const s of every) if (s.name === key && ++hit) chosen.add(s.module);
      } else {
        const re = new RegExp(
          `^${key.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join("[^.]*")}$`,
        );
        for (const s of every) if (re.test(s.module) && ++hit) chosen.add(s.module);
      }
      if (hit === 0) throw new RangeError(`Unknown layer '${entry}': ${hint()}`);
    }
  }
  return every.filter((s) => chosen.has(s.module));
}
