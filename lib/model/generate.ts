/**
 * Text generation with a KV cache: greedy decoding or seeded sampling (temperature, top-k,
 * top-p).
 *
 * @module
 */
import { NumericalError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import type { LlamaConfig } from "./config.ts";
import { KVCache, type LlamaModel } from "./llama.ts";

/** Options of {@linkcode generate}. */
export interface GenerateOptions {
  /** Tokens to add after the prompt. */
  maxNewTokens: number;
  /** 0 (default) decodes greedily; otherwise logits are divided by it before sampling. */
  temperature?: number;
  /** Sample only among the k most likely tokens (default: all). */
  topK?: number;
  /** Sample only from the smallest set whose probability reaches p (default 1). */
  topP?: number;
  /** Seed of the sampler (default 0). */
  seed?: number;
  /** Stop after producing one of these ids (default: none; pass the EOS ids to stop there). */
  stopIds?: number[];
  /** Called with each new id as it is produced. */
  onToken?: (id: number) => void;
}

/** Index of the largest value (the first on ties). */
export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}

/** Draws an id from `logits` under temperature, top-k and top-p. */
export function sampleToken(
  logits: ArrayLike<number>,
  rng: Rng,
  options: { temperature: number; topK?: number; topP?: number },
): number {
  const { temperature, topK = logits.length, topP = 1 } = options;
  const ids = Array.from({ length: logits.length }, (_, i) => i);
  ids.sort((a, b) => (logits[b] as number) - (logits[a] as number) || a - b);
  const keep = ids.slice(0, Math.max(1, Math.min(topK, ids.length)));
  const max = logits[keep[0] as number] as number;
  const w = keep.map((i) => Math.exp(((logits[i] as number) - max) / temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let cum = 0, cut = keep.length;
  for (let j = 0; j < keep.length; j++) {
    cum += (w[j] as number) / total;
    if (cum >= topP) {
      cut = j + 1;
      break;
    }
  }
  const mass = w.slice(0, cut).reduce((a, b) => a + b, 0);
  let u = rng.uniform() * mass;
  for (let j = 0; j < cut; j++) {
    u -= w[j] as number;
    if (u < 0) return keep[j] as number;
  }
  return keep[cut - 1] as number;
}

/**
 * Throws unless a prompt of `promptTokens` ids and `maxNewTokens` new ones fit the model's context
 * (max_position_embeddings): past it the rotary positions are ones the model never saw and its
 * output turns to noise (the bundled model's does).
 *
 * @example
 * ```ts
 * import { checkGenerationLength } from "./generate.ts";
 * checkGenerationLength({ maxPositionEmbeddings: 512 }, 12, 500); // fits exactly
 * let msg = "";
 * try { checkGenerationLength({ maxPositionEmbeddings: 512 }, 12, 501); } catch (e) { msg = (e as Error).message; }
 * if (!msg.includes("exceed the model's context of 512 positions")) throw new Error(msg);
 * ```
 */
export function checkGenerationLength(
  config: Pick<LlamaConfig, "maxPositionEmbeddings">,
  promptTokens: number,
  maxNewTokens: number,
): void {
  const context = config.maxPositionEmbeddings;
  if (promptTokens + maxNewTokens > context) {
    throw new RangeError(
      `${promptTokens} prompt tokens + ${maxNewTokens} new tokens exceed the model's context of ${context} positions (max_position_embeddings)`,
    );
  }
}

/**
 * Continues `prompt` (token ids) by up to `maxNewTokens` ids and returns the new ids. Prompt and
 * new ids together must fit the model's context ({@linkcode checkGenerationLength}).
 *
 * @example
 * ```ts
 * import { LlamaModel } from "./llama.ts";
 * import { generate } from "./generate.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const ids = generate(model, [256, 84, 104, 101], { maxNewTokens: 3 });
 * if (ids.length !== 3) throw new Error("expected 3 new tokens");
 * ```
 */
export function generate(
  model: LlamaModel,
  prompt: readonly number[],
  options: GenerateOptions,
): number[] {
  const { maxNewTokens, temperature = 0, seed = 0, stopIds = [] } = options;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(`Cannot generate ${maxNewTokens} tokens: expected an integer ≥ 0`);
  }
  if (!(temperature >= 0)) throw new RangeError(`Temperature ${temperature} is not ≥ 0`);
  checkGenerationLength(model.config, prompt.length, maxNewTokens);
  const rng = new Rng(seed);
  const cache = new KVCache(model.config, prompt.length + maxNewTokens);
  const out: number[] = [];
  if (maxNewTokens === 0) return out;
  let logits = model.forward(prompt, { cache, lastOnly: true }).data;
  for (let s = 0; s < maxNewTokens; s++) {
    // NaN logits made argmax pick id 0 every time (printed as NUL bytes): stop and say so
    const bad = logits.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new NumericalError(
        `The model's logit for token ${bad} is ${
          logits[bad]
        } at generated position ${s} (prompt of ${prompt.length} tokens): its weights or activations overflowed`,
      );
    }
    const id = temperature === 0 ? argmax(logits) : sampleToken(logits, rng, {
      temperature,
      ...(options.topK !== undefined ? { topK: options.topK } : {}),
      ...(options.topP !== undefined ? { topP: options.topP } : {}),
    });
    out.push(id);
    options.onToken?.(id);
    if (stopIds.includes(id) || s === maxNewTokens - 1) break;
    logits = model.forward([id], { cache, lastOnly: true }).data;
  }
  return out;
}
