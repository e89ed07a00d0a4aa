/**
 * A Llama-architecture decoder that matches HF transformers' `LlamaForCausalLM`: RMSNorm,
 * rotary embeddings (HF "rotate_half" layout, llama3 scaling too), grouped-query attention with
 * a KV cache, SwiGLU MLP, tied or untied lm_head. Every projection is a {@linkcode Linear};
 * hooks observe or replace linear outputs and the residual stream after any block.
 *
 * @module
 */
import { FormatError, missingConfigError, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { openCheckpoint, type Tensor } from "../io/safetensors.ts";
import { type Backend, causalAttention, selectBackend, swiglu } from "../kernels/mod.ts";
import { type LlamaConfig, parseLlamaConfig } from "./config.ts";
import { DenseLinear, type Linear } from "./linear.ts";

/** The seven projections of a block, HF names. */
export type LinearName =
  | "q_proj"
  | "k_proj"
  | "v_proj"
  | "o_proj"
  | "gate_proj"
  | "up_proj"
  | "down_proj";
/** All linear names in forward order. */
export const LINEAR_NAMES: readonly LinearName[] = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
];

/** The HF tensor name of a block's projection, e.g. `model.layers.3.mlp.down_proj.weight`. */
export function linearTensorName(layer: number, name: LinearName): string {
  const group = name === "gate_proj" || name === "up_proj" || name === "down_proj"
    ? "mlp"
    : "self_attn";
  return `model.layers.${layer}.${group}.${name}.weight`;
}

/** One decoder block's weights. */
export interface LlamaBlock {
  /** RMSNorm weight before attention. */
  inputNorm: Float32Array;
  /** RMSNorm weight before the MLP. */
  postNorm: Float32Array;
  /** The projections, replaceable by any {@linkcode Linear} of the same shape. */
  linears: Record<LinearName, Linear>;
}

/** A linear layer's input and output, seen by {@linkcode ForwardHooks.linear}. */
export interface LinearEvent {
  /** Block index. */
  layer: number;
  /** Which projection. */
  name: LinearName;
  /** tokens × in. */
  input: Matrix;
  /** tokens × out. */
  output: Matrix;
}

/** The residual stream after a block, seen by {@linkcode ForwardHooks.residual}. */
export interface ResidualEvent {
  /** Block index (0-based); the stream is the block's output. */
  layer: number;
  /** tokens × hidden; edit rows in place or return a replacement. */
  hidden: Matrix;
  /** Absolute position of each row. */
  positions: number[];
}

/** Observers and interventions during a forward pass. */
export interface ForwardHooks {
  /** Called after every projection; a returned matrix replaces the output. */
  linear?(e: LinearEvent): Matrix | void;
  /** Called after every block; a returned matrix replaces the residual stream. */
  residual?(e: ResidualEvent): Matrix | void;
}

/** Keys and values of past positions, per layer, for incremental decoding. */
export class KVCache {
  /** Positions stored. */
  length = 0;
  /** Capacity in positions. */
  readonly capacity: number;
  /** Per layer: kvHeads × capacity × headDim keys. */
  readonly keys: Float32Array[];
  /** Per layer: kvHeads × capacity × headDim values. */
  readonly values: Float32Array[];

  /**
   * Allocates room for `capacity` positions.
   * @param config The model's configuration.
   * @param capacity Longest sequence (prompt + generated) it will hold.
   */
  constructor(config: LlamaConfig, capacity: number) {
    this.capacity = capacity;
    const size = config.numKvHeads * capacity * config.headDim;
    this.keys = Array.from({ length: config.numLayers }, () => new Float32Array(size));
    this.values = Array.from({ length: config.numLayers }, () => new Float32Array(size));
  }
}

/** Rotary cos/sin tables for a run of positions (T × headDim/2 each). */
export interface RopeTable {
  /** cos of each angle. */
  cos: Float32Array;
  /** sin of each angle. */
  sin: Float32Array;
}

/** Options of {@linkcode LlamaModel.forward}. */
export interface ForwardOptions {
  /** Continue from (and extend) this cache; positions start at its length. */
  cache?: KVCache;
  /** Hooks to observe or intervene. */
  hooks?: ForwardHooks;
  /** Compute logits for the last position only (generation). */
  lastOnly?: boolean;
}

/** What a {@linkcode LoadOptions.linearLoader} sees of one projection. */
export interface LinearLoadContext {
  /** Block index. */
  layer: number;
  /** Projection. */
  name: LinearName;
  /** [out, in] from the config. */
  shape: [number, number];
  /** Every tensor name in the checkpoint. */
  tensorNames: ReadonlySet<string>;
  /** Reads a float tensor of the checkpoint as f32. */
  readFloat32(tensor: string): Promise<{ shape: number[]; data: Float32Array }>;
  /** Reads a tensor of the checkpoint in its stored dtype. */
  read(tensor: string): Promise<Tensor>;
  /** The backend the model runs on. */
  backend: Backend;
}

/** Options of {@linkcode LlamaModel.load}. */
export interface LoadOptions {
  /** Kernel backend for the projections (default: the best available). */
  backend?: Backend;
  /**
   * Builds a projection from other tensors (e.g. Sparse Expansion experts); return undefined to
   * load the dense `<name>.weight` as usual.
   */
  linearLoader?: (ctx: LinearLoadContext) => Promise<Linear | undefined>;
}

/**
 * A Llama model in f32.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "./llama.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const logits = model.forward([256, 72, 105], { lastOnly: true });
 * if (logits.rows !== 1 || logits.cols !== 258) throw new Error("wrong logits shape");
 * ```
 */
export class LlamaModel {
  /** The configuration. */
  readonly config: LlamaConfig;
  /** Token embeddings, vocab × hidden. */
  readonly embed: Matrix;
  /** Decoder blocks. */
  readonly blocks: LlamaBlock[];
  /** Final RMSNorm weight. */
  readonly norm: Float32Array;
  /** Output projection (hidden → vocab). */
  lmHead: Linear;
  /** The backend of the dense projections. */
  readonly backend: Backend;
  readonly #invFreq: Float64Array;

  /**
   * Assembles a model from weights already in memory.
   * @param config Configuration.
   * @param weights embed, blocks, norm and lmHead.
   * @param backend The backend the projections run on.
   */
  constructor(
    config: LlamaConfig,
    weights: { embed: Matrix; blocks: LlamaBlock[]; norm: Float32Array; lmHead: Linear },
    backend: Backend,
  ) {
    this.config = config;
    this.embed = weights.embed;
    this.blocks = weights.blocks;
    this.norm = weights.norm;
    this.lmHead = weights.lmHead;
    this.backend = backend;
    this.#invFreq = ropeInvFreq(config);
  }

  /**
   * Loads an HF checkpoint folder (`config.json` + `model.safetensors` or a sharded index;
   * F32, F16 or BF16 weights, computed in f32). Every tensor's presence and shape is checked
   * against the config first.
   */
  static async load(dir: string, options: LoadOptions = {}): Promise<LlamaModel> {
    const backend = selectBackend(options.backend);
    let configText: string;
    try {
      configText = await Deno.readTextFile(`${dir}/config.json`);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) {
        throw missingConfigError(dir);
      }
      throw e;
    }
    const c = parseLlamaConfig(configText, `${dir}/config.json`);
    using ck = await openCheckpoint(dir);
    const names = new Set(ck.names());
    const kv = c.numKvHeads * c.headDim, q = c.numHeads * c.headDim;
    const expected: [string, number[]][] = [
      ["model.embed_tokens.weight", [c.vocabSize, c.hiddenSize]],
      ["model.norm.weight", [c.hiddenSize]],
    ];
    if (!c.tieWordEmbeddings || names.has("lm_head.weight")) {
      expected.push(["lm_head.weight", [c.vocabSize, c.hiddenSize]]);
    }
    const shapes: Record<LinearName, number[]> = {
      q_proj: [q, c.hiddenSize],
      k_proj: [kv, c.hiddenSize],
      v_proj: [kv, c.hiddenSize],
      o_proj: [c.hiddenSize, q],
      gate_proj: [c.intermediateSize, c.hiddenSize],
      up_proj: [c.intermediateSize, c.hiddenSize],
      down_proj: [c.hiddenSize, c.intermediateSize],
    };
    // the block count first: a config that claims 10⁹ blocks fails here, before 10⁹ lookups
    const last = `model.layers.${c.numLayers - 1}.input_layernorm.weight`;
    if (!names.has(last)) {
      throw new FormatError(
        `'${dir}/config.json' says ${c.numLayers} blocks, but the checkpoint lacks '${last}'`,
      );
    }
    const customLinears = new Map<string, Linear>();
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      expected.push([`${p}.input_layernorm.weight`, [c.hiddenSize]]);
      expected.push([`${p}.post_attention_layernorm.weight`, [c.hiddenSize]]);
      for (const n of LINEAR_NAMES) {
        const [rows, cols] = shapes[n] as [number, number];
        const custom = await options.linearLoader?.({
          layer: l,
          name: n,
          shape: [rows, cols],
          tensorNames: names,
          readFloat32: (t) => ck.readFloat32(t),
          read: (t) => ck.read(t),
          backend,
        });
        if (custom) {
          if (custom.outFeatures !== rows || custom.inFeatures !== cols) {
            throw new FormatError(
              `Layer ${l} ${n} in '${dir}' loads as ${custom.outFeatures}×${custom.inFeatures}, expected ${rows}×${cols} from config.json`,
            );
          }
          customLinears.set(`${l}.${n}`, custom);
        } else expected.push([linearTensorName(l, n), shapes[n]]);
      }
    }
    for (const [name, shape] of expected) {
      if (!names.has(name)) throw new FormatError(`Checkpoint '${dir}' lacks tensor '${name}'`);
      const got = (await ck.info(name)).shape;
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new FormatError(
          `Tensor '${name}' in '${dir}' has shape [${got}], expected [${shape}] from config.json`,
        );
      }
    }
    // a non-finite weight would turn every logit into NaN far from its cause: name it here
    const read = async (name: string) => {
      const { shape, data } = await ck.readFloat32(name);
      for (let i = 0; i < data.length; i++) {
        if (Number.isFinite(data[i])) continue;
        const at = shape.length === 2
          ? `[${Math.floor(i / shape[1]!)}, ${i % shape[1]!}]`
          : `[${i}]`;
        throw new FormatError(
          `Tensor '${name}' in '${dir}' holds ${data[i]} at ${at}: expected finite weights`,
        );
      }
      return data;
    };
    const matrix = async (name: string, rows: number, cols: number) =>
      new Matrix(rows, cols, await read(name));
    const embed = await matrix("model.embed_tokens.weight", c.vocabSize, c.hiddenSize);
    const blocks: LlamaBlock[] = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const linears = {} as Record<LinearName, Linear>;
      for (const n of LINEAR_NAMES) {
        const [rows, cols] = shapes[n] as [number, number];
        linears[n] = customLinears.get(`${l}.${n}`) ??
          new DenseLinear(await matrix(linearTensorName(l, n), rows, cols), { backend });
      }
      blocks.push({
        inputNorm: await read(`${p}.input_layernorm.weight`),
        postNorm: await read(`${p}.post_attention_layernorm.weight`),
        linears,
      });
    }
    const head = names.has("lm_head.weight")
      ? await matrix("lm_head.weight", c.vocabSize, c.hiddenSize)
      : embed;
    return new LlamaModel(c, {
      embed,
      blocks,
      norm: await read("model.norm.weight"),
      lmHead: new DenseLinear(head, { backend }),
    }, backend);
  }

  /** Embedding rows of `ids` (tokens × hidden). */
  embedTokens(ids: readonly number[]): Matrix {
    const { hiddenSize: d, vocabSize } = this.config;
    const h = Matrix.zeros(ids.length, d);
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new RangeError(
          `Token id ${id} at position ${t} is outside the vocabulary [0, ${vocabSize})`,
        );
      }
      h.data.set(this.embed.data.subarray(id * d, (id + 1) * d), t * d);
    });
    return h;
  }

  /**
   * Runs block `layer` on `h` (tokens × hidden) at `positions`, storing keys and values in
   * `cache` (which must already hold every earlier position). Returns the block's output.
   */
  blockForward(
    layer: number,
    h: Matrix,
    positions: number[],
    cache: KVCache,
    hooks?: ForwardHooks,
    rope: RopeTable = this.ropeTable(positions),
  ): Matrix {
    const c = this.config, blk = this.blocks[layer];
    if (!blk) throw new RangeError(`Block ${layer} does not exist: the model has ${c.numLayers}`);
    const T = h.rows, hd = c.headDim, H = c.numHeads, KV = c.numKvHeads;
    const lin = (name: LinearName, x: Matrix): Matrix => {
      const y = blk.linears[name].forward(x);
      const r = hooks?.linear?.({ layer, name, input: x, output: y });
      return r ?? y;
    };
    // attention
    const x = rmsNorm(h, blk.inputNorm, c.rmsNormEps);
    const q = lin("q_proj", x), k = lin("k_proj", x), v = lin("v_proj", x);
    this.#rope(q, rope, H);
    this.#rope(k, rope, KV);
    const K = cache.keys[layer] as Float32Array,
      V = cache.values[layer] as Float32Array,
      cap = cache.capacity;
    for (let t = 0; t < T; t++) {
      const p = positions[t] as number;
      if (p >= cap) throw new RangeError(`Position ${p} exceeds the KV cache capacity ${cap}`);
      for (let g = 0; g < KV; g++) {
        K.set(
          k.data.subarray(t * KV * hd + g * hd, t * KV * hd + (g + 1) * hd),
          (g * cap + p) * hd,
        );
        V.set(
          v.data.subarray(t * KV * hd + g * hd, t * KV * hd + (g + 1) * hd),
          (g * cap + p) * hd,
        );
      }
    }
    const start = positions[0] as number;
    if (positions.some((p, t) => p !== start + t)) {
      throw new RangeError(`Positions ${positions[0]}..${positions[T - 1]} are not consecutive`);
    }
    const att = causalAttention(q, K, V, {
      start,
      heads: H,
      kvHeads: KV,
      headDim: hd,
      capacity: cap,
    }, {
      backend: this.backend,
    });
    const o = lin("o_proj", att);
    const h1 = Matrix.zeros(T, c.hiddenSize);
    for (let i = 0; i < h1.data.length; i++) {
      h1.data[i] = (h.data[i] as number) + (o.data[i] as number);
    }
    // MLP
    const x2 = rmsNorm(h1, blk.postNorm, c.rmsNormEps);
    const act = swiglu(lin("gate_proj", x2), lin("up_proj", x2), { backend: this.backend });
    const down = lin("down_proj", act);
    for (let i = 0; i < h1.data.length; i++) h1.data[i]! += down.data[i] as number;
    const r = hooks?.residual?.({ layer, hidden: h1, positions });
    return r ?? h1;
  }

  /** Final norm and lm_head: logits (tokens × vocab). */
  head(h: Matrix): Matrix {
    return this.lmHead.forward(rmsNorm(h, this.norm, this.config.rmsNormEps));
  }

  /**
   * Logits for `ids` (tokens × vocab, or 1 × vocab with `lastOnly`). With a cache, `ids` continue
   * the cached sequence and the cache grows by `ids.length`.
   */
  forward(ids: readonly number[], options: ForwardOptions = {}): Matrix {
    if (ids.length === 0) throw new ShapeError("Cannot run the model on an empty sequence");
    const start = options.cache?.length ?? 0;
    const cache = options.cache ?? new KVCache(this.config, ids.length);
    if (start + ids.length > cache.capacity) {
      throw new RangeError(
        `Cannot add ${ids.length} tokens to a KV cache holding ${start} of ${cache.capacity}`,
      );
    }
    const positions = ids.map((_, t) => start + t);
    let h = this.embedTokens(ids);
    const rope = this.ropeTable(positions);
    for (let l = 0; l < this.config.numLayers; l++) {
      h = this.blockForward(l, h, positions, cache, options.hooks, rope);
    }
    cache.length = start + ids.length;
    if (options.lastOnly) h = new Matrix(1, h.cols, h.data.slice((h.rows - 1) * h.cols));
    return this.head(h);
  }

  /**
   * cos and sin of every rotary angle at `positions` (T × headDim/2 each), as HF computes them.
   * Every run of the model passes here, so this is where a position past the model's context
   * (max_position_embeddings) is refused: the model never saw such rotations and its output there
   * is noise (the bundled model's held-out bits/byte go from 1.8 to 4.6 at 1,000-token windows).
   */
  ropeTable(positions: readonly number[]): RopeTable {
    return ropeTable(this.config, positions, this.#invFreq);
  }

  #rope(x: Matrix, table: RopeTable, heads: number): void {
    const hd = this.config.headDim, half = hd / 2, { cos, sin } = table, X = x.data;
    for (let t = 0; t < x.rows; t++) {
      const r = t * half;
      for (let h = 0; h < heads; h++) {
        const o = t * x.cols + h * hd;
        for (let i = 0; i < half; i++) {
          const a = X[o + i] as number, b = X[o + i + half] as number;
          const c = cos[r + i] as number, s = sin[r + i] as number;
          X[o + i] = a * c - b * s;
          X[o + i + half] = b * c + a * s;
        }
      }
    }
  }

  /** Frees device copies of the weights (cuda). */
  dispose(): void {
    for (const b of this.blocks) for (const l of Object.values(b.linears)) l.dispose?.();
    this.lmHead.dispose?.();
  }

  /** For `using`. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * cos and sin of every rotary angle at `positions` (T × headDim/2 each), as HF computes them (the
 * angle in f32); a position at or past max_position_embeddings throws (see
 * {@linkcode LlamaModel.ropeTable}).
 */
export function ropeTable(
  config: LlamaConfig,
  positions: readonly number[],
  invFreq: Float64Array = ropeInvFreq(config),
): RopeTable {
  const context = config.maxPositionEmbeddings;
  const last = positions.reduce((a, p) => Math.max(a, p), -1);
  if (last >= context) {
    throw new RangeError(
      `Position ${last} is past the model's context of ${context} positions (max_position_embeddings)`,
    );
  }
  const half = config.headDim / 2;
  const cos = new Float32Array(positions.length * half),
    sin = new Float32Array(positions.length * half);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      const a = Math.fround(p * invFreq[i]!); // HF computes the angle in float32
      cos[t * half + i] = Math.cos(a);
      sin[t * half + i] = Math.sin(a);
    }
  });
  return { cos, sin };
}

/** HF RMSNorm: x·rsqrt(mean(x²) + eps)·w per row, computed in f32 precision or better. */
export function rmsNorm(x: Matrix, w: Float32Array, eps: number): Matrix {
  const out = Matrix.zeros(x.rows, x.cols);
  for (let r = 0; r < x.rows; r++) {
    const o = r * x.cols;
    let ss = 0;
    for (let i = 0; i < x.cols; i++) ss += (x.data[o + i] as number) ** 2;
    const inv = 1 / Math.sqrt(ss / x.cols + eps);
    for (let i = 0; i < x.cols; i++) {
      out.data[o + i] = Math.fround((x.data[o + i] as number) * inv) * (w[i] as number);
    }
  }
  return out;
}

/** The rotary inverse frequencies (HF `rotate_half` layout), with llama3 scaling if configured. */
export function ropeInvFreq(c: LlamaConfig): Float64Array {
  const half = c.headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = Math.fround(1 / c.ropeTheta ** ((2 * i) / c.headDim));
  const s = c.ropeScaling;
  if (s) {
    const lowWave = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
    const highWave = s.originalMaxPositionEmbeddings / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i] as number, wave = (2 * Math.PI) / f;
      if (wave > lowWave) inv[i] = f / s.factor;
      else if (wave >= highWave) {
        const smooth = (s.originalMaxPositionEmbeddings / wave - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * f / s.factor + smooth * f;
      }
    }
  }
  return inv;
}
