/**
 * Perplexity and bits per byte in one call: a model (or its folder) and a text, a list of
 * documents, a text or JSONL file, or token windows in, the totals out. It cuts and scores windows
 * exactly as `scripts/perplexity.ts` does ({@linkcode tokenStream}, {@linkcode tokenWindows},
 * {@linkcode evaluateLoss}).
 *
 * @module
 */
import type { Backend } from "../kernels/mod.ts";
import { quoteValue } from "../core/errors.ts";
import type { LlamaModel } from "./llama.ts";
import {
  evaluateLoss,
  type LossResult,
  type SequenceLoss,
  tokenStream,
  tokenWindows,
} from "./perplexity.ts";
import { loadTokenizer, type TextTokenizer } from "./tokenizer.ts";

/**
 * What to evaluate:
 * - a string: the text itself (not a path), one document;
 * - a list of strings: documents, each BOS + text + EOS, concatenated (blank ones skipped, as in
 *   a JSONL file);
 * - `{ file }`: a UTF-8 text file as one document (`perplexity.ts --text`);
 * - `{ jsonl, field }`: each record's `field` (default "text") as one document
 *   (`perplexity.ts --jsonl --field`);
 * - `{ sequences }`: token windows scored as they are, e.g. `loadGoldenBatch`'s (golden.ts).
 */
export type PerplexityInput =
  | string
  | readonly string[]
  | { file: string }
  | { jsonl: string; field?: string; limitDocs?: number }
  | { sequences: readonly (readonly number[])[] };

/** Options of {@linkcode perplexity}. */
export interface PerplexityOptions {
  /**
   * Tokens per window (default 256, at most the model's positions). When it is left out and the
   * text is shorter than one window, the whole text is one window; when it is given, such a text
   * fails, as in `perplexity.ts`.
   */
  context?: number;
  /** Start a window every `stride` tokens (default `context`: no overlap). */
  stride?: number;
  /** Score at most this many windows (the first ones). */
  maxWindows?: number;
  /** Backend of a model loaded from a folder (default: the best available). */
  backend?: Backend;
  /**
   * Tokenizer of a text input (default: the folder's; for a model object, the byte tokenizer its
   * config names). Also decides bits per byte (byte-level tokenizers only).
   */
  tokenizer?: TextTokenizer;
  /** Called after each window with its totals (e.g. per-window figures). */
  onSequence?: (s: SequenceLoss) => void;
}

/** Totals of {@linkcode perplexity}: {@linkcode LossResult} and how the input was cut. */
export interface PerplexityResult extends LossResult {
  /** Total negative log-likelihood, in nats (meanNats × tokens). */
  nats: number;
  /** Windows scored. */
  windows: number;
  /** Tokens per window, without the first (the longest window's for `{ sequences }`). */
  context: number;
}

/**
 * The mean next-token loss, perplexity and (byte-level tokenizers) bits per byte of `model` on
 * `input`. `model` may be a checkpoint folder (dense, pruned or Sparse Expansion, loaded as
 * `perplexity.ts --model` loads it, then freed). Fails with one sentence for an empty text, no
 * documents, a window longer than the model's positions or a token outside its vocabulary.
 *
 * @example
 * ```ts
 * import { perplexity } from "./text_perplexity.ts";
 * const r = await perplexity("data/models/tinyllama-bytes", "The city of Paris is in France.");
 * if (r.tokens !== 32 || !(r.bitsPerByte > 0 && r.bitsPerByte < 4)) throw new Error(String(r.bitsPerByte));
 * ```
 */
export async function perplexity(
  model: LlamaModel | string,
  input: PerplexityInput,
  options: PerplexityOptions = {},
): Promise<PerplexityResult> {
  if (typeof model !== "string") {
    if (options.backend !== undefined && options.backend !== model.backend) {
      throw new RangeError(
        `Backend '${options.backend}' was asked for a model already loaded on '${model.backend}': pass a folder to load it there`,
      );
    }
    return await evaluate(model, undefined, input, options);
  }
  // loaded as perplexity.ts loads --model (dense, pruned or expanded); imported here, not above,
  // because lib/sparse builds on lib/model
  const { loadExpandedModel } = await import("../sparse/expansion_io.ts");
  const loaded = await loadExpandedModel(
    model,
    options.backend === undefined ? {} : { backend: options.backend },
  );
  try {
    return await evaluate(loaded, model, input, options);
  } finally {
    loaded.dispose();
  }
}

async function evaluate(
  model: LlamaModel,
  dir: string | undefined,
  input: PerplexityInput,
  options: PerplexityOptions,
): Promise<PerplexityResult> {
  const maxPos = model.config.maxPositionEmbeddings, vocab = model.config.vocabSize;
  const positiveInt = (what: string, v: unknown, max = Infinity) => {
    if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > max) {
      throw new RangeError(
        `${what} ${quoteValue(v)} is not an integer from 1 to ${max === Infinity ? "∞" : max}`,
      );
    }
    return v as number;
  };
  // a window of context + 1 tokens runs context positions
  const context = options.context === undefined
    ? Math.min(256, maxPos)
    : positiveInt("Context", options.context, maxPos);
  const stride = options.stride === undefined ? context : positiveInt("Stride", options.stride);
  const maxWindows = options.maxWindows === undefined
    ? Infinity
    : positiveInt("maxWindows", options.maxWindows);
  let tok = options.tokenizer;
  const tokenizer = async (): Promise<TextTokenizer> => {
    if (tok) return tok;
    if (dir === undefined && model.config.tokenizer !== "bytes") {
      throw new RangeError(
        "Text needs a tokenizer: pass options.tokenizer (loadTokenizer(dir, model.config)) or the model's folder instead of the model",
      );
    }
    return tok = await loadTokenizer(dir ?? "", model.config);
  };
  let seqs: (readonly number[])[];
  if (typeof input === "object" && input !== null && "sequences" in input) {
    seqs = checkSequences(input.sequences, vocab, maxPos);
  } else {
    let stream: number[], what: string;
    if (typeof input === "string") {
      if (input === "") throw new RangeError("The text is empty: there is nothing to predict");
      stream = (await tokenizer()).encode(input, { eos: true });
      what = `The text (${input.length} characters)`;
    } else if (Array.isArray(input)) {
      const t = await tokenizer();
      const docs = (input as readonly unknown[]).filter((d, i) => {
        if (typeof d !== "string") {
          throw new TypeError(`Document ${i} is ${quoteValue(d)}, not a string`);
        }
        return d.trim() !== "";
      }) as string[];
      if (docs.length === 0) {
        throw new RangeError(
          `The ${input.length} documents are all empty: there is nothing to predict`,
        );
      }
      stream = docs.flatMap((d) => t.encode(d, { eos: true }));
      what = `The ${docs.length} documents`;
    } else if (typeof input === "object" && input !== null && "jsonl" in input) {
      const field = input.field ?? "text";
      stream = await tokenStream(input.jsonl, await tokenizer(), {
        field,
        ...(input.limitDocs === undefined ? {} : { limitDocs: input.limitDocs }),
      });
      what = `'${input.jsonl}' (field "${field}")`;
    } else if (typeof input === "object" && input !== null && "file" in input) {
      stream = await tokenStream(input.file, await tokenizer());
      what = `'${input.file}'`;
    } else {
      throw new TypeError(
        `Input ${
          quoteValue(input)
        } is not a text, a list of documents, { file }, { jsonl, field } or { sequences }`,
      );
    }
    seqs = tokenWindows(stream, context, stride);
    if (seqs.length === 0) {
      if (options.context !== undefined || stream.length < 2) {
        throw new RangeError(
          `${what} gives ${stream.length} tokens, fewer than one window of ${context + 1}`,
        );
      }
      seqs = [stream]; // a short text is scored whole
    }
  }
  seqs = seqs.slice(0, maxWindows);
  const byteLevel = options.tokenizer?.byteLevel ?? tok?.byteLevel ??
    (model.config.tokenizer === "bytes");
  const r = evaluateLoss(model, seqs, {
    byteLevel,
    ...(options.onSequence ? { onSequence: options.onSequence } : {}),
  });
  return {
    ...r,
    nats: r.meanNats * r.tokens,
    windows: seqs.length,
    context: Math.max(...seqs.map((s) => s.length)) - 1,
  };
}

function checkSequences(
  seqs: unknown,
  vocab: number,
  maxPos: number,
): (readonly number[])[] {
  if (!Array.isArray(seqs) || seqs.length === 0) {
    throw new RangeError(`Sequences ${quoteValue(seqs)} is not a non-empty list of token id lists`);
  }
  seqs.forEach((s, i) => {
    if (!Array.isArray(s) || s.length < 2) {
      throw new RangeError(
        `Sequence ${i} is ${quoteValue(s)}: expected a list of at least 2 token ids`,
      );
    }
    if (s.length - 1 > maxPos) {
      throw new RangeError(
        `Sequence ${i} has ${s.length} tokens, more than the model's ${maxPos} positions + 1`,
      );
    }
    s.forEach((t, j) => {
      if (!Number.isInteger(t) || t < 0 || t >= vocab) {
        throw new RangeError(
          `Sequence ${i} has token ${
            quoteValue(t)
          } at position ${j}, outside the vocabulary [0, ${vocab})`,
        );
      }
    });
  });
  return seqs;
}
