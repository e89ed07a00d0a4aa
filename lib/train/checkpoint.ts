/**
 * Training checkpoints: the weights in the HF layout (`config.json` + `model.safetensors`, F32, so
 * that `LlamaModel.load` and HF transformers load them), the AdamW moments, and the step, data
 * position and RNG state beside them. Each checkpoint is a new folder `step-NNNNNNN` written under
 * a temporary name and renamed into place, and a `latest` file (also renamed into place) names the
 * newest: a run killed at any moment leaves the previous checkpoint whole.
 *
 * @module
 */
import { FormatError, missingConfigError } from "../core/errors.ts";
import { type LlamaConfig, parseLlamaConfig } from "../model/config.ts";
import {
  openCheckpoint,
  SafetensorsFile,
  type Tensor,
  writeSafetensors,
} from "../io/safetensors.ts";
import { pathExists, writeFolder, writeOutputs } from "../io/output.ts";
import { LlamaParams, paramLayout } from "./params.ts";
import type { AdamW } from "./optimizer.ts";

/** The config.json of `config` (or `base`, a source checkpoint's config.json, with torch_dtype float32). */
export function hfConfigJson(config: LlamaConfig, base?: string): string {
  if (base !== undefined) {
    const o = JSON.parse(base) as Record<string, unknown>;
    o.torch_dtype = "float32";
    return JSON.stringify(o, null, 2) + "\n";
  }
  const eos = config.eosTokenIds;
  return JSON.stringify(
    {
      architectures: ["LlamaForCausalLM"],
      model_type: "llama",
      vocab_size: config.vocabSize,
      hidden_size: config.hiddenSize,
      intermediate_size: config.intermediateSize,
      num_hidden_layers: config.numLayers,
      num_attention_heads: config.numHeads,
      num_key_value_heads: config.numKvHeads,
      head_dim: config.headDim,
      hidden_act: "silu",
      max_position_embeddings: config.maxPositionEmbeddings,
      rms_norm_eps: config.rmsNormEps,
      rope_theta: config.ropeTheta,
      rope_scaling: config.ropeScaling && {
        rope_type: "llama3",
        factor: config.ropeScaling.factor,
        low_freq_factor: config.ropeScaling.lowFreqFactor,
        high_freq_factor: config.ropeScaling.highFreqFactor,
        original_max_position_embeddings: config.ropeScaling.originalMaxPositionEmbeddings,
      },
      attention_bias: false,
      mlp_bias: false,
      tie_word_embeddings: config.tieWordEmbeddings,
      bos_token_id: config.bosTokenId,
      eos_token_id: eos.length === 1 ? eos[0] : eos.length === 0 ? null : eos,
      torch_dtype: "float32",
      ...(config.tokenizer ? { tokenizer: config.tokenizer } : {}),
    },
    null,
    2,
  ) + "\n";
}

/** The tensors of `params` by HF name, F32, as views (no copy). */
function weightTensors(params: LlamaParams): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const v of params.layout.views) {
    out[v.name] = { dtype: "F32", shape: [...v.shape], data: params.view(v.name) };
  }
  return out;
}

/** Options of {@linkcode saveTrainedModel}. */
export interface SaveTrainedModelOptions {
  /** The source checkpoint's config.json text, kept as it was (with torch_dtype float32). */
  baseConfig?: string;
  /** Extra files to copy in (e.g. the source's tokenizer.json), name → path. */
  copy?: Record<string, string>;
}

async function fillModel(
  tmp: string,
  params: LlamaParams,
  o: SaveTrainedModelOptions,
): Promise<void> {
  await Deno.writeTextFile(`${tmp}/config.json`, hfConfigJson(params.config, o.baseConfig));
  await writeSafetensors(`${tmp}/model.safetensors`, weightTensors(params), { format: "pt" });
  for (const [name, path] of Object.entries(o.copy ?? {})) {
    await Deno.copyFile(path, `${tmp}/${name}`);
  }
}

/**
 * Writes `params` as an HF checkpoint folder (`config.json` + F32 `model.safetensors`),
 * all-or-nothing.
 *
 * @example
 * ```ts
 * import { saveTrainedModel } from "./checkpoint.ts";
 * import { LlamaParams, paramLayout } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const dir = await Deno.makeTempDir();
 * await saveTrainedModel(`${dir}/copy`, LlamaParams.fromModel(model));
 * const again = await LlamaModel.load(`${dir}/copy`, { backend: "ts" });
 * if (again.norm[0] !== model.norm[0]) throw new Error("not the same weights");
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function saveTrainedModel(
  dir: string,
  params: LlamaParams,
  options: SaveTrainedModelOptions = {},
): Promise<void> {
  await writeFolder(dir, (tmp) => fillModel(tmp, params, options));
}

/** What a checkpoint holds besides the weights and moments (trainer_state.json). */
export interface TrainerState {
  /** Completed optimiser steps. */
  step: number;
  /** Anything else the trainer needs to continue exactly (data position, RNG, options). */
  [key: string]: unknown;
}

/** A loaded checkpoint. */
export interface Checkpoint {
  /** The folder it was read from. */
  dir: string;
  /** Weights. */
  params: LlamaParams;
  /** AdamW first and second moments. */
  m: LlamaParams;
  /** Second moments. */
  v: LlamaParams;
  /** trainer_state.json. */
  state: TrainerState;
}

const STATE_FORMAT = "lmkit-train-checkpoint-1";

/**
 * Writes checkpoint `root/step-NNNNNNN` (weights, moments, `state`) and points `root/latest` at
 * it; keeps the newest `keep` checkpoints (default 2). Returns the folder.
 */
export async function saveCheckpoint(
  root: string,
  params: LlamaParams,
  optimizer: AdamW,
  state: TrainerState,
  options: SaveTrainedModelOptions & { keep?: number } = {},
): Promise<string> {
  await Deno.mkdir(root, { recursive: true });
  const name = `step-${String(state.step).padStart(7, "0")}`, dir = `${root}/${name}`;
  await writeFolder(dir, async (tmp) => {
    await fillModel(tmp, params, options);
    await writeSafetensors(`${tmp}/optimizer.safetensors`, {
      "adamw.exp_avg": { dtype: "F32", shape: [optimizer.m.data.length], data: optimizer.m.data },
      "adamw.exp_avg_sq": {
        dtype: "F32",
        shape: [optimizer.v.data.length],
        data: optimizer.v.data,
      },
    }, { format: "lmkit" });
    await Deno.writeTextFile(
      `${tmp}/trainer_state.json`,
      JSON.stringify({ format: STATE_FORMAT, ...state, adamw_step: optimizer.step }, null, 1) +
        "\n",
    );
  });
  await writeOutputs(root, { latest: name + "\n" });
  const keep = options.keep ?? 2;
  const steps: string[] = [];
  for await (const e of Deno.readDir(root)) {
    if (e.isDirectory && /^step-\d{7}$/.test(e.name)) steps.push(e.name);
  }
  steps.sort();
  for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
    if (old !== name) await Deno.remove(`${root}/${old}`, { recursive: true });
  }
  return dir;
}

/**
 * Reads the checkpoint `root/latest` names (or `root` itself when it is a step folder), checking
 * every tensor's presence, dtype and shape.
 */
export async function loadCheckpoint(root: string): Promise<Checkpoint> {
  let dir = root;
  if (!(await pathExists(`${root}/trainer_state.json`))) {
    let latest: string;
    try {
      latest = (await Deno.readTextFile(`${root}/latest`)).trim();
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw new FormatError(
          `'${root}' is not a training checkpoint: it has neither trainer_state.json nor a 'latest' file`,
        );
      }
      throw e;
    }
    if (!/^step-\d{7}$/.test(latest)) {
      throw new FormatError(`'${root}/latest' names '${latest}', expected a step-NNNNNNN folder`);
    }
    dir = `${root}/${latest}`;
    if (!(await pathExists(dir))) {
      throw new FormatError(`'${root}/latest' names '${latest}', which is not in '${root}'`);
    }
  }
  let configText: string;
  try {
    configText = await Deno.readTextFile(`${dir}/config.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    throw missingConfigError(dir, "Checkpoint");
  }
  const config = parseLlamaConfig(configText, `${dir}/config.json`);
  let state: TrainerState;
  try {
    state = JSON.parse(await Deno.readTextFile(`${dir}/trainer_state.json`));
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new FormatError(`Cannot read '${dir}/trainer_state.json': ${e.message}`);
  }
  if ((state as { format?: unknown })?.format !== STATE_FORMAT || !Number.isInteger(state.step)) {
    throw new FormatError(`'${dir}/trainer_state.json' is not an lmkit training state`);
  }
  let params: LlamaParams;
  {
    using ck = await openCheckpoint(dir);
    const cannot = (name: string) => (e: unknown): never => {
      throw new FormatError(
        `Checkpoint '${dir}' cannot give tensor '${name}': ${(e as Error).message}`,
      );
    };
    // every tensor's dtype and shape before anything is allocated: a config.json with sizes the
    // weights do not have (num_hidden_layers 10⁹, say) fails here, not in the allocation
    const last = `model.layers.${config.numLayers - 1}.input_layernorm.weight`;
    const infoOf = async (name: string) => {
      try {
        return await ck.info(name); // sync for one file, async for a sharded index
      } catch (e) {
        return cannot(name)(e);
      }
    };
    await infoOf(last);
    const layout = paramLayout(config);
    for (const v of layout.views) {
      const t = await infoOf(v.name);
      if (t.dtype !== "F32" || t.shape.join() !== v.shape.join()) {
        throw new FormatError(
          `Tensor '${v.name}' in '${dir}' is ${t.dtype}[${t.shape}], expected F32[${v.shape}]`,
        );
      }
    }
    params = new LlamaParams(config);
    for (const v of layout.views) {
      const t = await ck.read(v.name).catch(cannot(v.name));
      params.view(v.name).set(t.data as Float32Array);
    }
  }
  const m = params.zerosLike(), v = params.zerosLike();
  {
    using opt = await SafetensorsFile.open(`${dir}/optimizer.safetensors`);
    for (const [name, into] of [["adamw.exp_avg", m], ["adamw.exp_avg_sq", v]] as const) {
      const t = await opt.read(name);
      if (t.dtype !== "F32" || t.data.length !== into.data.length) {
        throw new FormatError(
          `'${dir}/optimizer.safetensors' tensor '${name}' is ${t.dtype}[${t.shape}], expected F32[${into.data.length}]`,
        );
      }
      into.data.set(t.data as Float32Array);
    }
  }
  return { dir, params, m, v, state };
}
