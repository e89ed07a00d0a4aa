/**
 * The parameters of a Llama model as one flat f32 buffer with a named view per tensor, so that
 * gradients, optimiser state, data-parallel buckets, shards and compressed messages are all slices
 * of buffers with the same layout.
 *
 * @module
 */
import { FormatError, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import type { Rng } from "../core/rng.ts";
import type { Backend } from "../kernels/mod.ts";
import type { LlamaConfig } from "../model/config.ts";
import { DenseLinear } from "../model/linear.ts";
import {
  LINEAR_NAMES,
  type LinearName,
  linearTensorName,
  type LlamaBlock,
  LlamaModel,
} from "../model/llama.ts";

/** What a tensor is, which decides its weight decay and its initialisation. */
export type ParamKind = "embedding" | "norm" | "linear";

/** One tensor's place in the flat buffer. */
export interface ParamView {
  /** HF tensor name, e.g. `model.layers.0.self_attn.q_proj.weight`. */
  readonly name: string;
  /** [rows, cols] or [n]. */
  readonly shape: readonly number[];
  /** First element in the flat buffer. */
  readonly offset: number;
  /** Number of elements. */
  readonly size: number;
  /** Embedding table, RMSNorm weight or projection (lm_head counts as a projection). */
  readonly kind: ParamKind;
}

/** The flat layout of a config's tensors, in forward order. */
export interface ParamLayout {
  /** Every tensor, in buffer order. */
  readonly views: readonly ParamView[];
  /** Total number of parameters. */
  readonly size: number;
}

/** The shape of each projection of a block, [out, in]. */
export function linearShapes(c: LlamaConfig): Record<LinearName, [number, number]> {
  const kv = c.numKvHeads * c.headDim, q = c.numHeads * c.headDim, d = c.hiddenSize;
  return {
    q_proj: [q, d],
    k_proj: [kv, d],
    v_proj: [kv, d],
    o_proj: [d, q],
    gate_proj: [c.intermediateSize, d],
    up_proj: [c.intermediateSize, d],
    down_proj: [d, c.intermediateSize],
  };
}

/**
 * The layout of `config`'s parameters: embed_tokens, then per block input_layernorm, q, k, v, o,
 * post_attention_layernorm, gate, up, down, then norm and (unless tied) lm_head.
 *
 * @example
 * ```ts
 * import { paramLayout } from "./params.ts";
 * import { parseLlamaConfig } from "../model/config.ts";
 * const config = parseLlamaConfig(await Deno.readTextFile("data/models/tinyllama-bytes/config.json"));
 * const { size, views } = paramLayout(config);
 * if (size !== 4854016 || views[0]?.name !== "model.embed_tokens.weight") throw new Error();
 * ```
 */
export function paramLayout(config: LlamaConfig): ParamLayout {
  const views: ParamView[] = [];
  let offset = 0;
  const add = (name: string, shape: number[], kind: ParamKind) => {
    const size = shape.reduce((a, b) => a * b, 1);
    views.push({ name, shape, offset, size, kind });
    offset += size;
  };
  const d = config.hiddenSize, shapes = linearShapes(config);
  add("model.embed_tokens.weight", [config.vocabSize, d], "embedding");
  for (let l = 0; l < config.numLayers; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [d], "norm");
    for (const n of LINEAR_NAMES.slice(0, 4)) add(linearTensorName(l, n), shapes[n], "linear");
    add(`${p}.post_attention_layernorm.weight`, [d], "norm");
    for (const n of LINEAR_NAMES.slice(4)) add(linearTensorName(l, n), shapes[n], "linear");
  }
  add("model.norm.weight", [d], "norm");
  if (!config.tieWordEmbeddings) add("lm_head.weight", [config.vocabSize, d], "linear");
  return { views, size: offset };
}

/** The tensor name of the output projection's weight (the embedding when tied). */
export function headTensorName(config: LlamaConfig): string {
  return config.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight";
}

/**
 * A flat f32 buffer laid out by {@linkcode paramLayout}: the parameters themselves, or a
 * gradient, or an optimiser moment of the same shape.
 *
 * @example
 * ```ts
 * import { LlamaParams } from "./params.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const params = LlamaParams.fromModel(model);
 * const grad = params.zerosLike();
 * if (grad.view("model.norm.weight").length !== 256) throw new Error();
 * ```
 */
export class LlamaParams {
  /** The model's configuration. */
  readonly config: LlamaConfig;
  /** The layout. */
  readonly layout: ParamLayout;
  /** All elements, layout order. */
  readonly data: Float32Array;
  readonly #byName: Map<string, ParamView>;

  /**
   * Wraps `data` (length layout.size) laid out for `config`.
   * @param config The configuration.
   * @param data The flat buffer (zeros by default).
   */
  constructor(config: LlamaConfig, data?: Float32Array) {
    this.config = config;
    this.layout = paramLayout(config);
    this.data = data ?? new Float32Array(this.layout.size);
    if (this.data.length !== this.layout.size) {
      throw new ShapeError(
        `A flat buffer of ${this.data.length} values does not hold the model's ${this.layout.size} parameters`,
      );
    }
    this.#byName = new Map(this.layout.views.map((v) => [v.name, v]));
  }

  /** A zero buffer of the same layout (a gradient, a moment). */
  zerosLike(): LlamaParams {
    return new LlamaParams(this.config);
  }

  /** A copy. */
  clone(): LlamaParams {
    return new LlamaParams(this.config, this.data.slice());
  }

  /** The layout entry of tensor `name`. */
  info(name: string): ParamView {
    const v = this.#byName.get(name);
    if (!v) throw new RangeError(`The model has no parameter tensor '${name}'`);
    return v;
  }

  /** The elements of tensor `name` (a view: writes go to the flat buffer). */
  view(name: string): Float32Array {
    const v = this.info(name);
    return this.data.subarray(v.offset, v.offset + v.size);
  }

  /** Tensor `name` (2-D) as a matrix over the flat buffer. */
  matrix(name: string): Matrix {
    const v = this.info(name);
    if (v.shape.length !== 2) throw new ShapeError(`Parameter '${name}' is not a matrix`);
    return new Matrix(v.shape[0]!, v.shape[1]!, this.view(name));
  }

  /** The projection `name` of block `layer` as a matrix (out × in). */
  linear(layer: number, name: LinearName): Matrix {
    return this.matrix(linearTensorName(layer, name));
  }

  /**
   * The parameters of a loaded model (every projection must be dense: a pruned or quantized
   * model has no dense weights to train).
   */
  static fromModel(model: LlamaModel): LlamaParams {
    const p = new LlamaParams(model.config);
    const dense = (l: unknown, what: string): Matrix => {
      if (!(l instanceof DenseLinear)) {
        throw new TypeError(`Cannot train ${what}: it is not a dense layer`);
      }
      return l.weight;
    };
    p.view("model.embed_tokens.weight").set(model.embed.data);
    model.blocks.forEach((b, l) => {
      p.view(`model.layers.${l}.input_layernorm.weight`).set(b.inputNorm);
      p.view(`model.layers.${l}.post_attention_layernorm.weight`).set(b.postNorm);
      for (const n of LINEAR_NAMES) {
        p.view(linearTensorName(l, n)).set(dense(b.linears[n], `layer ${l} ${n}`).data);
      }
    });
    p.view("model.norm.weight").set(model.norm);
    if (!model.config.tieWordEmbeddings) {
      p.view("lm_head.weight").set(dense(model.lmHead, "lm_head").data);
    }
    return p;
  }

  /**
   * Fresh parameters for training from scratch, initialised as HF's `LlamaPreTrainedModel`:
   * projections and embeddings ~ N(0, initializerRange²), RMSNorm weights 1.
   */
  static init(config: LlamaConfig, rng: Rng, initializerRange = 0.02): LlamaParams {
    const p = new LlamaParams(config);
    for (const v of p.layout.views) {
      const x = p.data.subarray(v.offset, v.offset + v.size);
      if (v.kind === "norm") x.fill(1);
      else x.set(rng.normalArray(v.size, initializerRange));
    }
    return p;
  }

  /**
   * A {@linkcode LlamaModel} whose weights are these parameters: on the ts and cpu backends its
   * tensors are views of the flat buffer (later updates show), on cuda the projections are
   * uploaded copies (call again after updating).
   */
  toModel(backend?: Backend): LlamaModel {
    const c = this.config, blocks: LlamaBlock[] = [];
    const dense = (m: Matrix) => new DenseLinear(m, backend ? { backend } : {});
    for (let l = 0; l < c.numLayers; l++) {
      const linears = {} as Record<LinearName, DenseLinear>;
      for (const n of LINEAR_NAMES) linears[n] = dense(this.linear(l, n));
      blocks.push({
        inputNorm: this.view(`model.layers.${l}.input_layernorm.weight`),
        postNorm: this.view(`model.layers.${l}.post_attention_layernorm.weight`),
        linears,
      });
    }
    const head = dense(this.matrix(headTensorName(c)));
    return new LlamaModel(c, {
      embed: this.matrix("model.embed_tokens.weight"),
      blocks,
      norm: this.view("model.norm.weight"),
      lmHead: head,
    }, head.backend);
  }

  /**
   * The first tensor holding NaN or ±Inf, with the index of the bad element, or undefined when
   * every value is finite.
   */
  firstNonFinite(): { name: string; index: number; value: number } | undefined {
    const d = this.data;
    for (const v of this.layout.views) {
      for (let i = v.offset; i < v.offset + v.size; i++) {
        if (!Number.isFinite(d[i]!)) return { name: v.name, index: i - v.offset, value: d[i]! };
      }
    }
    return undefined;
  }
}

/** Throws a FormatError unless `data` has the layout size of `config` (a checkpoint's buffer). */
export function expectLayout(config: LlamaConfig, data: { length: number }, where: string): void {
  const size = paramLayout(config).size;
  if (data.length !== size) {
    throw new FormatError(`${where} holds ${data.length} values, expected ${size} for config.json`);
  }
}
