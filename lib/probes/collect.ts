/**
 * Hidden states of contrast pairs: each item rendered with its negative and its positive answer,
 * the residual stream after every block at the last token of each rendering (as the authors take
 * the last non-pad token), and the language model's own preference between the two answers. The
 * only part of lib/probes that runs a model.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { KVCache, type LlamaModel, type ResidualEvent } from "../model/llama.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";

/** One item rendered both ways. */
export interface ContrastPrompt {
  /** The text with the negative answer (side 0). */
  neg: string;
  /** The text with the positive answer (side 1). */
  pos: string;
  /**
   * Character spans [start, end) in the shared text before the answers where an intervention
   * applies (e.g. each occurrence of an answer string in the premise and the period after it).
   */
  editSpans?: readonly (readonly [number, number])[];
}

/** Hidden states of N contrast pairs: per layer, N × D rows for each side. */
export interface ContrastStates {
  /** Blocks (states after block 1 … L). */
  readonly layers: number;
  /** Items. */
  readonly count: number;
  /** Hidden size. */
  readonly dim: number;
  /** neg[l]: N × D, row n = item n rendered with the negative answer, after block l + 1. */
  readonly neg: Float32Array[];
  /** pos[l]: the same with the positive answer. */
  readonly pos: Float32Array[];
  /**
   * Per item: log p(positive rendering's tokens after the shared prefix) − log p(negative
   * rendering's), the model's own preference (the LM-head baseline's input).
   */
  readonly lmDiff: Float64Array;
}

/** A residual-stream edit: add `vector` after block `layer` (0-based) at the edit positions. */
export interface ResidualEdit {
  /** Block index, 0-based. */
  layer: number;
  /** Added to each edited row (length = hidden size). */
  vector: Float32Array;
}

/** Options of {@linkcode collectContrastStates}. */
export interface CollectOptions {
  /** Called after each item with (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Edits applied at each prompt's `editSpans` (the causal intervention). */
  edits?: readonly ResidualEdit[];
}

/** Log-softmax of row `r` of `logits` at column `id`. */
function logProb(logits: Matrix, r: number, id: number): number {
  const V = logits.cols, d = logits.data, o = r * V;
  let max = -Infinity;
  for (let j = 0; j < V; j++) max = Math.max(max, d[o + j] as number);
  let s = 0;
  for (let j = 0; j < V; j++) s += Math.exp((d[o + j] as number) - max);
  return (d[o + id] as number) - max - Math.log(s);
}

/**
 * Token positions covering the characters [start, end) of `text`: from the token count of the
 * text before `start` to that of the text before `end`, minus one (exact for byte tokenizers;
 * for BPE tokenizers the tokens whose merge the span boundary does not change).
 */
export function tokenSpan(
  tokenizer: TextTokenizer,
  text: string,
  start: number,
  end: number,
): number[] {
  if (!(0 <= start && start < end && end <= text.length)) {
    throw new RangeError(
      `Edit span [${start}, ${end}) is not inside a text of ${text.length} characters`,
    );
  }
  const a = tokenizer.encode(text.slice(0, start)).length;
  const b = tokenizer.encode(text.slice(0, end)).length;
  const out: number[] = [];
  for (let p = a; p < Math.max(b, a + 1); p++) out.push(p);
  return out;
}

function cloneCache(src: KVCache, model: LlamaModel): KVCache {
  const c = new KVCache(model.config, src.capacity);
  for (let l = 0; l < src.keys.length; l++) {
    c.keys[l]!.set(src.keys[l]!);
    c.values[l]!.set(src.values[l]!);
  }
  c.length = src.length;
  return c;
}

/**
 * Runs `model` on both renderings of every prompt and keeps the residual stream after every
 * block at the last token of each. The tokens the two renderings share are run once (a KV cache
 * is forked for the two endings), so a pair costs little more than one prompt.
 *
 * @example
 * ```ts
 * import { collectContrastStates } from "./collect.ts";
 * import { LlamaModel } from "../model/llama.ts";
 * import { ByteTokenizer } from "../model/tokenizer.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * const s = collectContrastStates(model, new ByteTokenizer(256, 257), [
 *   { neg: 'The statement "Paris is in France." is incorrect.', pos: 'The statement "Paris is in France." is correct.' },
 * ]);
 * if (s.layers !== 6 || s.count !== 1 || s.neg[5]!.length !== 256) throw new Error("wrong shape");
 * ```
 */
export function collectContrastStates(
  model: LlamaModel,
  tokenizer: TextTokenizer,
  prompts: readonly ContrastPrompt[],
  options: CollectOptions = {},
): ContrastStates {
  const L = model.config.numLayers, D = model.config.hiddenSize, N = prompts.length;
  if (N === 0) throw new ShapeError("Cannot collect hidden states of no prompts");
  for (const e of options.edits ?? []) {
    if (!Number.isInteger(e.layer) || e.layer < 0 || e.layer >= L) {
      throw new RangeError(`Edit layer ${e.layer} is not a block index in 0..${L - 1}`);
    }
    if (e.vector.length !== D) {
      throw new ShapeError(
        `Edit vector of layer ${e.layer} has ${e.vector.length} elements, expected ${D}`,
      );
    }
  }
  const neg = Array.from({ length: L }, () => new Float32Array(N * D));
  const pos = Array.from({ length: L }, () => new Float32Array(N * D));
  const lmDiff = new Float64Array(N);
  const maxPos = model.config.maxPositionEmbeddings;
  for (let n = 0; n < N; n++) {
    const p = prompts[n]!;
    const ids = [tokenizer.encode(p.neg), tokenizer.encode(p.pos)];
    const [a, b] = ids as [number[], number[]];
    if (Math.max(a.length, b.length) > maxPos) {
      throw new RangeError(
        `Prompt ${n} has ${
          Math.max(a.length, b.length)
        } tokens, more than the model's ${maxPos} positions`,
      );
    }
    let shared = 0;
    while (shared < a.length - 1 && shared < b.length - 1 && a[shared] === b[shared]) shared++;
    if (shared === 0) {
      throw new ShapeError(
        `Prompt ${n}: the two renderings share no first token (expected a BOS or a common prefix)`,
      );
    }
    const edit = new Set<number>();
    for (const [s, e] of p.editSpans ?? []) {
      for (const t of tokenSpan(tokenizer, p.pos, s, e)) if (t < shared) edit.add(t);
    }
    const hook = (side: Float32Array[] | null) => ({
      residual(ev: ResidualEvent): void {
        if (edit.size && options.edits) {
          for (const e of options.edits) {
            if (e.layer !== ev.layer) continue;
            ev.positions.forEach((t, r) => {
              if (!edit.has(t)) return;
              const o = r * D;
              for (let i = 0; i < D; i++) ev.hidden.data[o + i]! += e.vector[i]!;
            });
          }
        }
        if (side) {
          const last = (ev.hidden.rows - 1) * D;
          side[ev.layer]!.set(ev.hidden.data.subarray(last, last + D), n * D);
        }
      },
    });
    const cache = new KVCache(model.config, Math.max(a.length, b.length));
    const prefixLogits = model.forward(a.slice(0, shared), { cache, hooks: hook(null) });
    const lp = [0, 0];
    ids.forEach((seq, s) => {
      const c = s === 0 ? cloneCache(cache, model) : cache;
      const logits = model.forward(seq.slice(shared), {
        cache: c,
        hooks: hook(s === 0 ? neg : pos),
      });
      let sum = logProb(prefixLogits, shared - 1, seq[shared]!);
      for (let t = shared + 1; t < seq.length; t++) sum += logProb(logits, t - shared - 1, seq[t]!);
      lp[s] = sum;
    });
    lmDiff[n] = lp[1]! - lp[0]!;
    options.onProgress?.(n + 1, N);
  }
  return { layers: L, count: N, dim: D, neg, pos, lmDiff };
}
