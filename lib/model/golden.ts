/**
 * The golden validation batch of a model folder's `golden.json` (the bundled
 * `data/models/tinyllama-bytes` ships one: 64 windows of 257 tokens cut from its held-out stream,
 * and their mean loss computed by PyTorch in f32 and cross-checked against HF transformers), and
 * the check that a model reproduces it.
 *
 * @module
 */
import { FormatError, quoteValue } from "../core/errors.ts";
import type { Backend } from "../kernels/mod.ts";
import type { LlamaModel } from "./llama.ts";
import { perplexity } from "./text_perplexity.ts";

/** The bundled model's folder (absolute, found from this file). */
export const BUNDLED_MODEL_DIR: string = decodeURIComponent(
  new URL("../../data/models/tinyllama-bytes", import.meta.url).pathname,
);

/** The figures `golden.json` states for its validation batch, and those they imply. */
export interface GoldenReference {
  /** Mean cross-entropy per target, nats (`val_batch.mean_loss_nats`). */
  meanNats: number;
  /** exp(meanNats). */
  perplexity: number;
  /** Targets (windows × (length − 1)). */
  tokens: number;
  /** Targets that are bytes (ids < 256). */
  byteTargets: number;
  /**
   * The same loss in bits per byte: meanNats·tokens / ln 2 / byteTargets (golden.json states
   * nats; over the same targets bits per byte follows). NaN unless `byteLevel`.
   */
  bitsPerByte: number;
}

/** {@linkcode loadGoldenBatch}'s result. */
export interface GoldenBatch {
  /** The golden.json read. */
  file: string;
  /** The windows, each inputs + one: pass `{ sequences }` to `perplexity`. */
  sequences: number[][];
  /** Each window's inputs (all but the last token). */
  inputs: number[][];
  /** Each window's targets (all but the first token). */
  targets: number[][];
  /** True when golden.json describes a byte tokenizer (ids 0–255 = bytes): bits per byte apply. */
  byteLevel: boolean;
  /** The stored figures. */
  reference: GoldenReference;
  /** How golden.json says the batch was cut, when it says. */
  definition?: string;
}

/**
 * Reads the validation batch and its reference loss from `path`: a model folder (default the
 * bundled model) or a golden.json file. One sentence naming the file when it is missing or lacks
 * `val_batch.sequences` / `val_batch.mean_loss_nats`.
 *
 * @example
 * ```ts
 * import { loadGoldenBatch } from "./golden.ts";
 * const g = await loadGoldenBatch();
 * if (g.sequences.length !== 64 || g.targets[0]!.length !== 256) throw new Error("shape");
 * if (Math.abs(g.reference.meanNats - 1.2546) > 1e-4) throw new Error(`${g.reference.meanNats}`);
 * if (Math.abs(g.reference.bitsPerByte - 1.8279) > 1e-4) throw new Error(`${g.reference.bitsPerByte}`);
 * ```
 */
export async function loadGoldenBatch(path: string = BUNDLED_MODEL_DIR): Promise<GoldenBatch> {
  const g = await readGolden(path);
  const file = g.file, vb = g.json.val_batch as Record<string, unknown> | undefined;
  const seqs = vb?.sequences, nats = vb?.mean_loss_nats;
  if (
    !Array.isArray(seqs) || seqs.length === 0 ||
    !seqs.every((s) =>
      Array.isArray(s) && s.length >= 2 && s.every((t) => Number.isInteger(t) && t >= 0)
    )
  ) {
    throw new FormatError(`'${file}' has no val_batch.sequences list of token id lists`);
  }
  if (typeof nats !== "number" || !Number.isFinite(nats)) {
    throw new FormatError(
      `'${file}' has val_batch.mean_loss_nats ${quoteValue(nats)}: expected a number`,
    );
  }
  const sequences = seqs as number[][];
  const byteLevel = /utf-?8 bytes/i.test(String(g.json.tokenizer ?? ""));
  let tokens = 0, byteTargets = 0;
  for (const s of sequences) {
    tokens += s.length - 1;
    for (let t = 1; t < s.length; t++) if ((s[t] as number) < 256) byteTargets++;
  }
  return {
    file,
    sequences,
    inputs: sequences.map((s) => s.slice(0, -1)),
    targets: sequences.map((s) => s.slice(1)),
    byteLevel,
    reference: {
      meanNats: nats,
      perplexity: Math.exp(nats),
      tokens,
      byteTargets: byteLevel ? byteTargets : 0,
      bitsPerByte: byteLevel ? nats * tokens / Math.LN2 / byteTargets : NaN,
    },
    ...(typeof vb?.definition === "string" ? { definition: vb.definition } : {}),
  };
}

/** Options of {@linkcode checkGolden}. */
export interface CheckGoldenOptions {
  /** Model folder or golden.json to check against (default: the folder given as `model`, else the bundled model). */
  golden?: string;
  /** Largest |Δ| of the mean loss, nats per token, that still matches (default 1e-4, as `deno task demo`). */
  tolerance?: number;
  /** Backend of a model loaded from a folder. */
  backend?: Backend;
}

/** {@linkcode checkGolden}'s verdict. */
export interface GoldenCheck {
  /** |Δ meanNats| ≤ tolerance. */
  ok: boolean;
  /** The model's mean loss on the batch, nats per token. */
  meanNats: number;
  /** Its bits per byte (NaN for non-byte tokenizers). */
  bitsPerByte: number;
  /** golden.json's figures. */
  reference: GoldenReference;
  /** |meanNats − reference.meanNats|. */
  absDelta: number;
  /** The tolerance applied. */
  tolerance: number;
}

/**
 * Scores `model` (or the model in a folder) on the golden validation batch and compares its mean
 * loss with golden.json's within `tolerance` nats per token. The whole batch is scored: 64 × 256
 * tokens of the bundled model take about 5–9 s on 2 cores with the cpu backend.
 *
 * @example
 * ```ts
 * import { checkGolden } from "./golden.ts";
 * const c = await checkGolden("data/models/tinyllama-bytes", { backend: "cpu" });
 * if (!c.ok) throw new Error(`|Δ| = ${c.absDelta} nats/token`);
 * ```
 */
export async function checkGolden(
  model: LlamaModel | string,
  options: CheckGoldenOptions = {},
): Promise<GoldenCheck> {
  const tolerance = options.tolerance ?? 1e-4;
  if (!(tolerance >= 0) || !Number.isFinite(tolerance)) {
    throw new RangeError(`Tolerance ${quoteValue(tolerance)} is not a non-negative number`);
  }
  const batch = await loadGoldenBatch(
    options.golden ?? (typeof model === "string" ? model : BUNDLED_MODEL_DIR),
  );
  const r = await perplexity(model, { sequences: batch.sequences }, {
    ...(options.backend === undefined ? {} : { backend: options.backend }),
  });
  const absDelta = Math.abs(r.meanNats - batch.reference.meanNats);
  return {
    ok: absDelta <= tolerance,
    meanNats: r.meanNats,
    bitsPerByte: batch.byteLevel
      ? r.meanNats * r.tokens / Math.LN2 / batch.reference.byteTargets
      : NaN,
    reference: batch.reference,
    absDelta,
    tolerance,
  };
}

async function readGolden(path: string): Promise<{ file: string; json: Record<string, unknown> }> {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(
      `Golden path ${quoteValue(path)} is not a model folder or golden.json file`,
    );
  }
  let file = path.endsWith(".json") ? path : `${path.replace(/\/+$/, "")}/golden.json`;
  try {
    if (!path.endsWith(".json") && !Deno.statSync(path).isDirectory) file = path;
  } catch { /* reported below */ }
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new RangeError(
        file === path
          ? `Golden file '${path}' does not exist`
          : `'${path}' has no golden.json validation batch (looked for '${file}')`,
      );
    }
    throw e;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`'${file}' is not JSON: ${(e as Error).message}`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(`'${file}' is not a JSON object`);
  }
  return { file, json: json as Record<string, unknown> };
}
