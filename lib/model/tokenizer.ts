/**
 * Tokenizers: the byte tokenizer of byte-level models (ids 0–255 = UTF-8 bytes, then BOS and
 * EOS), and HF `tokenizer.json` files through the `@huggingface/tokenizers` package.
 *
 * @module
 */
import { Tokenizer as HfTokenizerImpl } from "npm:@huggingface/tokenizers@0.2.0";
import { FormatError } from "../core/errors.ts";
import type { LlamaConfig } from "./config.ts";

/** What the model code needs from a tokenizer. */
export interface TextTokenizer {
  /** Token ids of `text`, with BOS first unless `bos` is false and EOS last when `eos` is true. */
  encode(text: string, options?: { bos?: boolean; eos?: boolean }): number[];
  /** Text of `ids` (special tokens dropped). */
  decode(ids: readonly number[]): string;
  /** BOS id, if any. */
  readonly bosId: number | null;
  /** EOS id, if any. */
  readonly eosId: number | null;
  /** True when every non-special id is one byte (bits per byte are then well defined). */
  readonly byteLevel: boolean;
}

/**
 * The byte tokenizer: a text is `[BOS] + utf8(text)`; decoding drops ids ≥ 256.
 *
 * @example
 * ```ts
 * import { ByteTokenizer } from "./tokenizer.ts";
 * import { assertEquals } from "@std/assert";
 * const t = new ByteTokenizer(256, 257);
 * assertEquals(t.encode("hé"), [256, 104, 195, 169]);
 * assertEquals(t.decode([256, 104, 195, 169, 257]), "hé");
 * ```
 */
export class ByteTokenizer implements TextTokenizer {
  /** BOS id. */
  readonly bosId: number;
  /** EOS id. */
  readonly eosId: number;
  /** Always true. */
  readonly byteLevel = true;
  static #enc = new TextEncoder();
  static #dec = new TextDecoder();

  /**
   * Creates the tokenizer.
   * @param bosId BOS id (256 for tinyllama-bytes).
   * @param eosId EOS id (257 for tinyllama-bytes).
   */
  constructor(bosId = 256, eosId = 257) {
    this.bosId = bosId;
    this.eosId = eosId;
  }

  /** See {@linkcode TextTokenizer.encode}. */
  encode(text: string, options: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = Array.from(ByteTokenizer.#enc.encode(text));
    if (options.bos ?? true) ids.unshift(this.bosId);
    if (options.eos) ids.push(this.eosId);
    return ids;
  }

  /** See {@linkcode TextTokenizer.decode}. */
  decode(ids: readonly number[]): string {
    return ByteTokenizer.#dec.decode(Uint8Array.from(ids.filter((i) => i < 256)));
  }
}

/** An HF `tokenizer.json` (BPE, WordPiece, Unigram…) run by `@huggingface/tokenizers`. */
export class HfTokenizer implements TextTokenizer {
  /** BOS id, if the tokenizer has one. */
  readonly bosId: number | null;
  /** EOS id, if the tokenizer has one. */
  readonly eosId: number | null;
  /** False: ids are sub-word pieces. */
  readonly byteLevel = false;
  readonly #impl: HfTokenizerImpl;
  #source = "tokenizer.json";

  /**
   * Wraps parsed `tokenizer.json` and `tokenizer_config.json` objects.
   * @param tokenizerJson The parsed tokenizer.json.
   * @param tokenizerConfig The parsed tokenizer_config.json (may be empty).
   */
  constructor(tokenizerJson: object, tokenizerConfig: Record<string, unknown> = {}) {
    this.#impl = new HfTokenizerImpl(tokenizerJson, tokenizerConfig);
    const id = (tok: unknown): number | null => {
      const s = typeof tok === "string" ? tok : (tok as { content?: string } | null)?.content;
      if (typeof s !== "string") return null;
      const ids = this.#impl.encode(s, { add_special_tokens: false }).ids;
      return ids.length === 1 ? Number(ids[0]) : null;
    };
    this.bosId = id(tokenizerConfig.bos_token);
    this.eosId = id(tokenizerConfig.eos_token);
  }

  /** Loads `tokenizer.json` (and `tokenizer_config.json` when present) from a folder. */
  static async load(dir: string): Promise<HfTokenizer> {
    const read = async (name: string, required: boolean) => {
      try {
        return JSON.parse(await Deno.readTextFile(`${dir}/${name}`));
      } catch (e) {
        if (e instanceof Deno.errors.NotFound && !required) return {};
        if (e instanceof Deno.errors.NotFound) {
          throw new FormatError(
            `'${dir}' has no ${name} and its config does not say "tokenizer": "bytes"`,
          );
        }
        if (e instanceof SyntaxError) {
          throw new FormatError(`Cannot read '${dir}/${name}': ${e.message}`);
        }
        throw e;
      }
    };
    const json = await read("tokenizer.json", true),
      config = await read("tokenizer_config.json", false);
    // the library's own errors (a missing "decoder", bad merges, a nesting deep enough to overflow
    // the stack) surfaced bare, some only at the first encode: construct and run it once here
    try {
      const t = new HfTokenizer(json, config);
      t.#source = `${dir}/tokenizer.json`;
      t.encode("a b", { bos: false });
      t.decode([0]); // every vocabulary has an id 0
      return t;
    } catch (e) {
      if (e instanceof FormatError || e instanceof Deno.errors.NotCapable) throw e;
      throw new FormatError(
        `Cannot use '${dir}/tokenizer.json': the tokenizer library refused it (${
          (e as Error).message
        })`,
      );
    }
  }

  /** See {@linkcode TextTokenizer.encode}. */
  encode(text: string, options: { bos?: boolean; eos?: boolean } = {}): number[] {
    const ids = this.#impl.encode(text, { add_special_tokens: false }).ids.map(Number);
    // a piece missing from the vocabulary (an unk_token that is not in it) comes back undefined
    const bad = ids.findIndex((x) => !Number.isInteger(x));
    if (bad >= 0) {
      throw new FormatError(
        `'${this.#source}' has no id for piece ${bad + 1} of ${
          JSON.stringify(text.length > 40 ? text.slice(0, 40) + "…" : text)
        } (is its unk_token in the vocabulary?)`,
      );
    }
    if ((options.bos ?? true) && this.bosId !== null) ids.unshift(this.bosId);
    if (options.eos && this.eosId !== null) ids.push(this.eosId);
    return ids;
  }

  /** See {@linkcode TextTokenizer.decode}. */
  decode(ids: readonly number[]): string {
    if (ids.length === 0) return ""; // the library throws on an empty list
    return this.#impl.decode([...ids], { skip_special_tokens: true });
  }
}

/** The tokenizer a checkpoint folder calls for. */
export async function loadTokenizer(dir: string, config: LlamaConfig): Promise<TextTokenizer> {
  if (config.tokenizer === "bytes") {
    return new ByteTokenizer(config.bosTokenId ?? 256, config.eosTokenIds[0] ?? 257);
  }
  return await HfTokenizer.load(dir);
}

/** Files of an HF model folder that a saved copy keeps, where the source has them. */
export const TOKENIZER_FILES: readonly string[] = Object.freeze([
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "generation_config.json",
]);

/**
 * Copies the {@linkcode TOKENIZER_FILES} that `srcDir` has into `outDir` (those it lacks are
 * skipped), so that a saved model folder loads with its source's tokenizer.
 */
export async function copyTokenizerFiles(srcDir: string, outDir: string): Promise<void> {
  for (const f of TOKENIZER_FILES) {
    await Deno.copyFile(`${srcDir}/${f}`, `${outDir}/${f}`).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
  }
}
