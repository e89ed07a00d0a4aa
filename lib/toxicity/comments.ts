/**
 * Streaming comment collections for the toxicity statistics: CSV/TSV, JSON lines (`.jsonl`,
 * `.ndjson`, gzip when `.gz`) and Pushshift-style zstd-compressed NDJSON (`.zst`, decoded by npm
 * `fzstd`), with the fields named by the caller. Every bad row is a FormatError naming the file
 * and line, or, with `skipBadRows`, is skipped and counted by reason.
 *
 * @module
 */
import { Decompress } from "npm:fzstd@0.1.1";
import { FormatError, quoteValue } from "../core/errors.ts";
import { gunzip, readCsv, splitLines, streamError } from "../io/text.ts";

/** Which field holds what. */
export interface FieldMap {
  /** Comment text (required). */
  text: string;
  /** Creation time: Unix seconds (or milliseconds above 1e11) or an ISO 8601 date (required). */
  time: string;
  /** Community, e.g. subreddit. */
  community?: string;
  /** Language code. */
  language?: string;
  /** Comment id. */
  id?: string;
  /** Parent id (a comment's id, or a post's). */
  parent?: string;
}

/** One comment. */
export interface Comment {
  /** Line it came from (1-based). */
  line: number;
  /** The text. */
  text: string;
  /** Unix seconds. */
  time: number;
  /** Community (e.g. subreddit). */
  community: string;
  /** Language code. */
  language?: string;
  /** Comment id. */
  id?: string;
  /** Parent id. */
  parent?: string;
}

/** Skipped rows by reason, filled while reading with `skipBadRows`. */
export type SkipCounts = Record<string, number>;

/** Reader options. */
export interface ReadOptions {
  /** Skip bad rows (counted in `skipped`) instead of failing on the first. */
  skipBadRows?: boolean;
  /** Receives the skip counts. */
  skipped?: SkipCounts;
  /** Called with the compressed bytes read so far. */
  onBytes?: (bytes: number) => void;
}

/**
 * Unix seconds of a timestamp field value, or null: numbers (seconds, or milliseconds when
 * above 1e11) and ISO 8601 dates ("2021-03-04", "2021-03-04T05:06:07Z"; no zone means UTC); null
 * too for a time no Date can hold (e.g. `created_utc: 99999999999999999999`).
 */
export function parseTime(v: unknown): number | null {
  if (typeof v === "number") return inDateRange(v > 1e11 ? v / 1000 : v);
  if (typeof v !== "string") return null;
  const s = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) {
    const n = Number(s);
    return inDateRange(n > 1e11 ? n / 1000 : n);
  }
  const m =
    /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(Z|[+-]\d{2}:?\d{2})?$/
      .exec(s);
  if (!m) return null;
  const t = Date.parse(
    `${m[1]}-${m[2]}-${m[3]}T${m[4] ?? "00"}:${m[5] ?? "00"}:${m[6] ?? "00"}${
      m[7]
        ? (m[7] === "Z" ? "Z" : m[7].length === 5 ? `${m[7].slice(0, 3)}:${m[7].slice(3)}` : m[7])
        : "Z"
    }`,
  );
  if (Number.isNaN(t)) return null;
  const d = new Date(t);
  if (!m[7] && (d.getUTCMonth() + 1 !== Number(m[2]) || d.getUTCDate() !== Number(m[3]))) {
    return null;
  }
  return t / 1000;
}

/** Seconds `t`, or null outside what a Date holds (±8.64e12 s: ±275,760 years from 1970). */
function inDateRange(t: number): number | null {
  return Number.isFinite(t) && Math.abs(t) <= 8.64e12 ? t : null;
}

function linesOf(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  return splitLines(stream.pipeThrough(new TextDecoderStream()));
}

function zstdStream(input: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  return input.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      start(controller) {
        (this as unknown as { d: Decompress }).d = new Decompress((chunk) =>
          controller.enqueue(chunk)
        );
      },
      transform(chunk) {
        (this as unknown as { d: Decompress }).d.push(chunk);
      },
      flush() {
        (this as unknown as { d: Decompress }).d.push(new Uint8Array(0), true);
      },
    }),
  );
}

function counted(
  s: ReadableStream<Uint8Array>,
  onBytes?: (n: number) => void,
): ReadableStream<Uint8Array> {
  if (!onBytes) return s;
  let n = 0;
  return s.pipeThrough(
    new TransformStream({
      transform(chunk, c) {
        n += chunk.length;
        onBytes(n);
        c.enqueue(chunk);
      },
    }),
  );
}

/**
 * Comments from the JSON lines of a byte stream (already decompressed); `source` names it in
 * errors.
 */
export async function* commentsFromJsonLines(
  stream: ReadableStream<Uint8Array>,
  source: string,
  fields: FieldMap,
  options: ReadOptions = {},
): AsyncGenerator<Comment> {
  let line = 0;
  for await (const text of linesOf(stream)) {
    line++;
    if (text.length === 0 || text.trim() === "") continue;
    let v: Record<string, unknown>;
    try {
      v = JSON.parse(text);
    } catch (e) {
      if (skip(options, "malformed JSON")) continue;
      throw new FormatError(`'${source}' line ${line}: ${(e as Error).message}`);
    }
    const c = toComment(v, line, source, fields, options);
    if (c) yield c;
  }
}

function skip(options: ReadOptions, reason: string): boolean {
  if (!options.skipBadRows) return false;
  if (options.skipped) options.skipped[reason] = (options.skipped[reason] ?? 0) + 1;
  return true;
}

function toComment(
  v: Record<string, unknown>,
  line: number,
  source: string,
  fields: FieldMap,
  options: ReadOptions,
): Comment | null {
  if (typeof v !== "object" || v === null) {
    if (skip(options, "not an object")) return null;
    throw new FormatError(`'${source}' line ${line}: expected a JSON object`);
  }
  const text = v[fields.text];
  if (typeof text !== "string") {
    if (skip(options, `no '${fields.text}' text`)) return null;
    throw new FormatError(`'${source}' line ${line}: no text field '${fields.text}'`);
  }
  const time = parseTime(v[fields.time]);
  if (time === null) {
    if (skip(options, "unparseable timestamp")) return null;
    throw new FormatError(
      `'${source}' line ${line}: timestamp ${
        v[fields.time] === undefined ? "(missing)" : quoteValue(v[fields.time])
      } in field '${fields.time}' is not Unix seconds or an ISO 8601 date`,
    );
  }
  const str = (k?: string) => {
    if (!k) return undefined;
    const x = v[k];
    return x === undefined || x === null ? undefined : String(x);
  };
  const c: Comment = { line, text, time, community: str(fields.community) ?? "" };
  const lang = str(fields.language), id = str(fields.id), parent = str(fields.parent);
  if (lang !== undefined && lang !== "") c.language = lang;
  if (id !== undefined) c.id = id;
  if (parent !== undefined && parent !== "") c.parent = parent;
  return c;
}

/** Streams the comments of a file; the format follows the name (see the module doc). */
export async function* readComments(
  path: string,
  fields: FieldMap,
  options: ReadOptions = {},
): AsyncGenerator<Comment> {
  if (/\.(csv|tsv)(\.gz)?$/.test(path)) {
    const required = [fields.text, fields.time];
    for await (const { line, record } of readCsv(path, { required })) {
      const c = toComment(record, line, path, fields, options);
      if (c) yield c;
    }
    return;
  }
  if (!/\.(jsonl|ndjson|json)(\.gz|\.zst)?$/.test(path)) {
    throw new FormatError(
      `Cannot read '${path}': expected .csv, .tsv, .jsonl, .ndjson (optionally .gz) or .zst`,
    );
  }
  const file = await Deno.open(path, { read: true });
  let s = counted(file.readable, options.onBytes);
  if (path.endsWith(".gz")) s = gunzip(s);
  else if (path.endsWith(".zst")) s = zstdStream(s);
  try {
    yield* commentsFromJsonLines(s, path, fields, options);
  } catch (e) {
    throw streamError(e, path);
  }
}
