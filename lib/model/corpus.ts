/**
 * Calibration text for compression: documents from the corpora the bundled model was trained on
 * (Civil Comments, UD PUD in 10 languages, GermEval 2018), mixed in a seeded order and cut into
 * token windows. Compression methods that fit to data (SparseGPT, Wanda, GPTQ) need calibration
 * text that covers the evaluation's languages: calibrating on one source degrades the others.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import { readCsv, readJsonl } from "../io/text.ts";
import { tokenWindows } from "./perplexity.ts";
import type { TextTokenizer } from "./tokenizer.ts";

/** The PUD languages shipped in data/multilingual_text/ud_pud. */
export const PUD_LANGUAGES = ["en", "de", "es", "tr", "ar", "ru", "zh", "hi", "ko", "th"] as const;

/** Reads the bundled training-distribution documents from `dataDir` (default "data"). */
export async function bundledDocuments(dataDir = "data"): Promise<string[]> {
  const docs: string[] = [];
  for await (
    const { record } of readCsv(`${dataDir}/toxic_spans/acl2022_raw/comments.csv`, {
      required: ["comment_text"],
    })
  ) {
    if (record.comment_text!.trim()) docs.push(record.comment_text!.trim());
  }
  for (const lang of PUD_LANGUAGES) {
    for await (
      const { line, value } of readJsonl<{ text?: unknown }>(
        `${dataDir}/multilingual_text/ud_pud/pud_${lang}.jsonl`,
      )
    ) {
      if (typeof value.text !== "string") {
        throw new FormatError(
          `'${dataDir}/multilingual_text/ud_pud/pud_${lang}.jsonl' line ${line} has no string "text"`,
        );
      }
      docs.push(value.text);
    }
  }
  for await (
    const { record } of readCsv(
      `${dataDir}/toxicity_labelled/germeval2018/germeval2018.training.txt`,
      {
        separator: "\t",
        columns: ["text", "coarse", "fine"],
        quote: false,
      },
    )
  ) docs.push(record.text!.replaceAll("|LBR|", "\n"));
  return docs;
}

/** Options of {@linkcode calibrationWindows}. */
export interface CalibrationDataOptions {
  /** Number of windows (default 64). */
  count?: number;
  /** Tokens per window, plus one (default 256). */
  context?: number;
  /** Seed of the document order (default 0). */
  seed?: number;
}

/**
 * `count` windows of `context + 1` tokens from `docs` shuffled with `seed`, each document encoded
 * as BOS + text + EOS and concatenated.
 *
 * @example
 * ```ts
 * import { calibrationWindows } from "./corpus.ts";
 * import { ByteTokenizer } from "./tokenizer.ts";
 * const w = calibrationWindows(["hello world", "bonjour"], new ByteTokenizer(), { count: 2, context: 8 });
 * if (w.length !== 2 || w[0]?.length !== 9) throw new Error("wrong windows");
 * ```
 */
export function calibrationWindows(
  docs: readonly string[],
  tokenizer: TextTokenizer,
  options: CalibrationDataOptions = {},
): number[][] {
  const { count = 64, context = 256, seed = 0 } = options;
  const order = new Rng(seed).shuffle(docs.map((_, i) => i));
  const stream: number[] = [];
  const need = count * (context + 1);
  for (const i of order) {
    for (const id of tokenizer.encode(docs[i] as string, { eos: true })) stream.push(id);
    if (stream.length >= need) break;
  }
  const out = tokenWindows(stream, context, context + 1).slice(0, count);
  if (out.length < count) {
    throw new RangeError(
      `The documents give ${out.length} windows of ${
        context + 1
      } tokens, fewer than the ${count} asked for`,
    );
  }
  return out;
}
