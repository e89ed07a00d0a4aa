/**
 * The HF `LlamaConfig` fields lmkit needs, read from a checkpoint's `config.json` with every
 * missing or malformed field named in the error.
 *
 * @module
 */
import { FormatError, quoteValue } from "../core/errors.ts";

/** RoPE frequency scaling of Llama 3.x checkpoints (`rope_type: "llama3"`). */
export interface Llama3RopeScaling {
  /** Always "llama3". */
  type: "llama3";
  /** Wavelength scale factor. */
  factor: number;
  /** Low-frequency factor. */
  lowFreqFactor: number;
  /** High-frequency factor. */
  highFreqFactor: number;
  /** Context length the model was pre-trained with. */
  originalMaxPositionEmbeddings: number;
}

/** A Llama-architecture configuration. */
export interface LlamaConfig {
  /** Vocabulary size (rows of the embedding and lm_head). */
  vocabSize: number;
  /** Residual stream width. */
  hiddenSize: number;
  /** MLP width. */
  intermediateSize: number;
  /** Number of decoder blocks. */
  numLayers: number;
  /** Query heads. */
  numHeads: number;
  /** Key/value heads (grouped-query attention when fewer than numHeads). */
  numKvHeads: number;
  /** Width of one head. */
  headDim: number;
  /** RMSNorm epsilon. */
  rmsNormEps: number;
  /** RoPE base. */
  ropeTheta: number;
  /** RoPE scaling, or null for the default rotary embedding. */
  ropeScaling: Llama3RopeScaling | null;
  /** Whether lm_head shares the embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Longest context the positions were trained for. */
  maxPositionEmbeddings: number;
  /** Beginning-of-sequence id, when the config has one. */
  bosTokenId: number | null;
  /** End-of-sequence id(s). */
  eosTokenIds: number[];
  /** "bytes" for byte-level models, else null (use tokenizer.json). */
  tokenizer: string | null;
}

/**
 * Parses the JSON text of a `config.json`; `where` names the file in errors.
 *
 * @example
 * ```ts
 * import { parseLlamaConfig } from "./config.ts";
 * const c = parseLlamaConfig(JSON.stringify({
 *   vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2,
 * }));
 * if (c.headDim !== 4 || c.numKvHeads !== 2) throw new Error("wrong defaults");
 * ```
 */
export function parseLlamaConfig(text: string, where = "config.json"): LlamaConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`Cannot read '${where}': not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FormatError(`Cannot read '${where}': expected a JSON object`);
  }
  const int = (key: string, fallback?: number): number => {
    const v = raw[key] ?? fallback;
    if (v === undefined || v === null) {
      throw new FormatError(`'${where}' lacks the field "${key}"`);
    }
    if (!Number.isInteger(v) || (v as number) <= 0) {
      throw new FormatError(
        `'${where}' field "${key}" is ${quoteValue(v)}: expected a positive integer`,
      );
    }
    return v as number;
  };
  const num = (key: string, fallback: number): number => {
    const v = raw[key] ?? fallback;
    if (typeof v !== "number" || !(v > 0) || !Number.isFinite(v)) {
      throw new FormatError(
        `'${where}' field "${key}" is ${quoteValue(v)}: expected a finite positive number`,
      );
    }
    return v;
  };
  const arch = raw.model_type;
  if (arch !== undefined && arch !== "llama") {
    throw new FormatError(`'${where}' has model_type ${quoteValue(arch)}: expected "llama"`);
  }
  if (raw.hidden_act !== undefined && raw.hidden_act !== "silu") {
    throw new FormatError(
      `'${where}' has hidden_act ${quoteValue(raw.hidden_act)}: expected "silu"`,
    );
  }
  for (const key of ["attention_bias", "mlp_bias"]) {
    if (raw[key] === true) {
      throw new FormatError(`'${where}' sets "${key}": biases are not supported`);
    }
  }
  const hiddenSize = int("hidden_size"), numHeads = int("num_attention_heads");
  if (raw.head_dim === undefined && hiddenSize % numHeads !== 0) {
    throw new FormatError(
      `'${where}': hidden_size ${hiddenSize} is not divisible by num_attention_heads ${numHeads}`,
    );
  }
  const numKvHeads = int("num_key_value_heads", numHeads);
  if (numHeads % numKvHeads !== 0) {
    throw new FormatError(
      `'${where}': num_attention_heads ${numHeads} is not a multiple of num_key_value_heads ${numKvHeads}`,
    );
  }
  const params = raw.rope_parameters as Record<string, unknown> | undefined;
  const scalingRaw = (raw.rope_scaling ?? null) as Record<string, unknown> | null;
  let ropeScaling: Llama3RopeScaling | null = null;
  const ropeType = scalingRaw?.rope_type ?? scalingRaw?.type ?? params?.rope_type ?? "default";
  if (ropeType === "llama3") {
    const s = scalingRaw ?? params ?? {};
    const n = (v: unknown) => (typeof v === "number" ? v : NaN); // HF writes numbers
    ropeScaling = {
      type: "llama3",
      factor: n(s.factor),
      lowFreqFactor: n(s.low_freq_factor),
      highFreqFactor: n(s.high_freq_factor),
      originalMaxPositionEmbeddings: n(s.original_max_position_embeddings),
    };
    if (
      !Object.values(ropeScaling).slice(1).every((v) => Number.isFinite(v) && (v as number) > 0)
    ) {
      throw new FormatError(
        `'${where}': llama3 rope scaling lacks factor, low_freq_factor, high_freq_factor or original_max_position_embeddings`,
      );
    }
  } else if (ropeType !== "default") {
    throw new FormatError(
      `'${where}' uses rope type ${quoteValue(ropeType)}: expected default or llama3`,
    );
  }
  const eos = raw.eos_token_id;
  const bos = raw.bos_token_id;
  return {
    vocabSize: int("vocab_size"),
    hiddenSize,
    intermediateSize: int("intermediate_size"),
    numLayers: int("num_hidden_layers"),
    numHeads,
    numKvHeads,
    headDim: int("head_dim", hiddenSize / numHeads),
    rmsNormEps: num("rms_norm_eps", 1e-6),
    ropeTheta: num("rope_theta", (params?.rope_theta as number | undefined) ?? 10000),
    ropeScaling,
    tieWordEmbeddings: raw.tie_word_embeddings === true,
    maxPositionEmbeddings: int("max_position_embeddings", 2048),
    bosTokenId: typeof bos === "number" ? bos : null,
    eosTokenIds: Array.isArray(eos)
      ? eos.filter((e) => typeof e === "number")
      : typeof eos === "number"
      ? [eos]
      : [],
    tokenizer: typeof raw.tokenizer === "string" ? raw.tokenizer : null,
  };
}
