/**
 * Perplexity and bits per byte: the mean next-token cross-entropy of a model over token windows
 * cut from a text file or a JSONL field.
 *
 * @module
 */
import { FormatError, NumericalError } from "../core/errors.ts";
import { readJsonl } from "../io/text.ts";
import type { LlamaModel } from "./llama.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** Totals of {@linkcode evaluateLoss}. */
export interface LossResult {
  /** Mean cross-entropy per predicted token, in nats. */
  meanNats: number;
  /** exp(meanNats). */
  perplexity: number;
  /** Predicted tokens. */
  tokens: number;
  /** Predicted tokens that are bytes (ids < 256); 0 for non-byte tokenizers. */
  byteTargets: number;
  /** Total negative log-likelihood in bits divided by byteTargets (byte models only, else NaN). */
  bitsPerByte: number;
}

/** One sequence's totals, reported by {@linkcode evaluateLoss}'s `onSequence`. */
export interface SequenceLoss {
  /** Index in the input list. */
  index: number;
  /** Predicted tokens. */
  tokens: number;
  /** Summed negative log-likelihood in nats. */
  nats: number;
  /** Predicted tokens that are bytes (ids < 256). */
  byteTargets: number;
}

/** Per-position negative log-likelihoods (nats) of `seq[1..]` given the preceding tokens. */
export function sequenceNll(model: LlamaModel, seq: readonly number[]): Float64Array {
  if (seq.length < 2) {
    throw new RangeError(`A sequence of ${seq.length} tokens has nothing to predict`);
  }
  const logits = model.forward(seq.slice(0, -1));
  const V = logits.cols, nll = new Float64Array(seq.length - 1);
  for (let t = 0; t < nll.length; t++) {
    const row = logits.data.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (let i = 0; i < V; i++) if ((row[i] as number) > max) max = row[i] as number;
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp((row[i] as number) - max);
    nll[t] = max + Math.log(sum) - (row[seq[t + 1] as number] as number);
  }
  return nll;
}

/**
 * Mean next-token loss over `sequences` (each predicts its tokens 1..n from their prefixes).
 * `byteLevel` turns on bits per byte: total NLL in bits over the number of byte targets.
 */
export function evaluateLoss(
  model: LlamaModel,
  sequences: readonly (readonly number[])[],
  options: { byteLevel?: boolean; onSequence?: (s: SequenceLoss) => void } = {},
): LossResult {
  let nats = 0, tokens = 0, bytes = 0;
  sequences.forEach((seq, index) => {
    const nll = sequenceNll(model, seq);
    let seqNats = 0, seqBytes = 0;
    for (let t = 0; t < nll.length; t++) {
      seqNats += nll[t] as number;
      if ((seq[t + 1] as number) < 256) seqBytes++;
    }
    if (!Number.isFinite(seqNats)) {
      // every caller (perplexity.ts, the held-out scorers) printed "NaN" and went on
      throw new NumericalError(
        `Sequence ${index}'s loss is ${seqNats}: the model's outputs are not finite (an activation overflowed)`,
      );
    }
    nats += seqNats;
    bytes += seqBytes;
    tokens += nll.length;
    options.onSequence?.({ index, tokens: nll.length, nats: seqNats, byteTargets: seqBytes });
  });
  const meanNats = nats / tokens;
  return {
    meanNats,
    perplexity: Math.exp(meanNats),
    tokens,
    byteTargets: options.byteLevel ? bytes : 0,
    bitsPerByte: options.byteLevel ? nats / Math.LN2 / bytes : NaN,
  };
}

/**
 * Cuts a token stream into windows of `context + 1` tokens (inputs + shifted targets), starting
 * every `stride` tokens (default `context`: no overlap); a shorter tail is dropped.
 */
export function tokenWindows(
  stream: readonly number[],
  context: number,
  stride = context,
): number[][] {
  if (!Number.isInteger(context) || context < 1) {
    throw new RangeError(`Context ${context} is not a positive integer`);
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new RangeError(`Stride ${stride} is not a positive integer`);
  }
  const out: number[][] = [];
  for (let s = 0; s + context + 1 <= stream.length; s += stride) {
    out.push(stream.slice(s, s + context + 1));
  }
  return out;
}

/**
 * The token stream of a text file (the whole file as one document) or, with `field`, of a JSONL
 * file (each record's field as one document). Each document is BOS + tokens + EOS.
 */
export async function tokenStream(
  path: string,
  tokenizer: TextTokenizer,
  options: { field?: string; limitDocs?: number } = {},
): Promise<number[]> {
  const out: number[] = [];
  const limit = options.limitDocs ?? Infinity;
  if (options.field === undefined) {
    out.push(...tokenizer.encode(await Deno.readTextFile(path), { eos: true }));
    return out;
  }
  let docs = 0;
  for await (const { line, value } of readJsonl<Record<string, unknown>>(path)) {
    const text = value?.[options.field];
    if (typeof text !== "string") {
      throw new FormatError(`'${path}' line ${line} has no string field "${options.field}"`);
    }
    if (text.trim() === "") continue;
    for (const id of tokenizer.encode(text, { eos: true })) out.push(id);
    if (++docs >= limit) break;
  }
  if (docs === 0) {
    throw new FormatError(`'${path}' has no records with text in field "${options.field}"`);
  }
  return out;
}

/** The held-out figure of {@linkcode heldOutScorer}. */
export interface HeldOutScorer {
  /** "bitsPerByte" for a byte-level tokenizer, else "natsPerToken". */
  metric: "bitsPerByte" | "natsPerToken";
  /** The model's figure on the held-out sequences. */
  score(model: LlamaModel): number;
}

/**
 * What the compression scripts report of a model on held-out sequences: bits per byte for a
 * byte-level tokenizer (comparable across tokenizers), else mean nats per token.
 *
 * @example
 * ```ts
 * import { goldenValidationBatch, heldOutScorer } from "./perplexity.ts";
 * import { LlamaModel } from "./llama.ts";
 * const dir = "data/models/tinyllama-bytes";
 * const model = await LlamaModel.load(dir, { backend: "cpu" });
 * const held = (await goldenValidationBatch(dir)).slice(0, 2);
 * const { metric, score } = heldOutScorer(held, true);
 * if (metric !== "bitsPerByte" || !(score(model) > 0)) throw new Error("expected bits per byte");
 * ```
 */
export function heldOutScorer(
  sequences: readonly (readonly number[])[],
  byteLevel: boolean,
): HeldOutScorer {
  return {
    metric: byteLevel ? "bitsPerByte" : "natsPerToken",
    score(model: LlamaModel): number {
      const r = evaluateLoss(model, sequences, { byteLevel });
      return byteLevel ? r.bitsPerByte : r.meanNats;
    },
  };
}

/**
 * The validation batch of a model folder's `golden.json` (`val_batch.sequences`: token id lists),
 * the held-out set the compression scripts score on; one sentence naming the folder when it has
 * none.
 *
 * @example
 * ```ts
 * import { goldenValidationBatch } from "./perplexity.ts";
 * const held = await goldenValidationBatch("data/models/tinyllama-bytes");
 * if (held.length === 0) throw new Error("expected sequences");
 * ```
 */
export async function goldenValidationBatch(modelDir: string): Promise<number[][]> {
  let golden: { val_batch?: { sequences?: unknown } };
  try {
    golden = JSON.parse(await Deno.readTextFile(`${modelDir}/golden.json`));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RangeError(`'${modelDir}' has no golden.json validation batch to evaluate on`);
    }
    if (e instanceof SyntaxError) {
      throw new FormatError(`'${modelDir}/golden.json' is not JSON: ${e.message}`);
    }
    throw e;
  }
  const seqs = golden?.val_batch?.sequences;
  if (
    !Array.isArray(seqs) ||
    !seqs.every((s) => Array.isArray(s) && s.every((t) => Number.isInteger(t) && t >= 0))
  ) {
    throw new FormatError(
      `'${modelDir}/golden.json' has no val_batch.sequences array of token id lists`,
    );
  }
  return seqs as number[][];
}
