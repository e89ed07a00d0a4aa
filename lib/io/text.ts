/**
 * Streaming readers for CSV/TSV and JSONL files (gzip when the name ends in `.gz`) that name the
 * file and line of a bad row.
 *
 * @module
 */
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { parse } from "npm:csv-parse@5.6.0";
import { FormatError } from "../core/errors.ts";

/**
 * The gunzipped bytes of `s`: every member of a multi-member file (`cat a.gz b.gz`, which
 * DecompressionStream stops after the first of); a corrupt stream errors with zlib's reason
 * (wrap it with {@linkcode streamError}).
 */
export function gunzip(s: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  // node:zlib behind a hand-made web stream: Readable.toWeb's adapter kept enqueueing after the
  // reader stopped at a bad row, an uncaught error that killed the process later
  const src = Readable.fromWeb(s as Parameters<typeof Readable.fromWeb>[0]);
  const z = createGunzip();
  let done = false;
  src.on("error", (e) => z.destroy(e));
  src.pipe(z);
  z.pause();
  return new ReadableStream<Uint8Array>({
    start(controller) {
      z.on("data", (chunk: Uint8Array) => {
        if (done) return;
        controller.enqueue(new Uint8Array(chunk));
        if ((controller.desiredSize ?? 0) <= 0) z.pause();
      });
      z.on("end", () => {
        if (!done) controller.close();
        done = true;
      });
      z.on("error", (e) => {
        if (!done) controller.error(e);
        done = true;
      });
    },
    pull() {
      z.resume();
    },
    cancel() {
      done = true;
      z.destroy();
      src.destroy();
    },
  });
}

/**
 * A FormatError naming `path` for an error a byte stream raised while it was read (a corrupt
 * gzip or zstd stream, bytes that are not UTF-8); FormatErrors and permission errors pass as
 * they are.
 */
export function streamError(e: unknown, path: string): Error {
  if (e instanceof FormatError || e instanceof Deno.errors.NotCapable) return e;
  if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied) {
    return e as Error;
  }
  const err = e as Error & { code?: unknown };
  const what = zlibError(err) || /deflate|gzip|zlib|zstd|header check|data check/i.test(err.message)
    ? "corrupt compressed data"
    : "unreadable data";
  return new FormatError(`Cannot read '${path}': ${what} (${err.message})`);
}

/** Whether `e` is node:zlib's (its code is a string "Z_…"; fzstd's codes are numbers). */
function zlibError(e: { code?: unknown }): boolean {
  return typeof e.code === "string" && e.code.startsWith("Z_");
}

async function openStream(path: string): Promise<ReadableStream<Uint8Array>> {
  const file = await Deno.open(path, { read: true });
  const s = file.readable;
  return path.endsWith(".gz") ? gunzip(s) : s;
}

/** Options of {@linkcode readCsv}. */
export interface CsvOptions {
  /** Field separator (default "," or "\t" for .tsv/.tsv.gz). */
  separator?: string;
  /** Column names for files without a header line; default: read them from the first line. */
  columns?: string[];
  /** Columns that must be present (a FormatError names the first missing one). */
  required?: string[];
  /** Quote character, or false for formats where quotes are plain text (default '"'). */
  quote?: string | false;
}

/** One CSV record and the line it starts on (1-based, counting the header). */
export interface CsvRow {
  /** Line number where the record starts. */
  line: number;
  /** Field values by column name. */
  record: Record<string, string>;
}

/**
 * Streams the records of a CSV/TSV file.
 *
 * @example
 * ```ts
 * import { readCsv } from "./text.ts";
 * import { assertEquals } from "@std/assert";
 * const path = await Deno.makeTempFile({ suffix: ".csv" });
 * await Deno.writeTextFile(path, "a,b\n1,2\n");
 * const rows = await Array.fromAsync(readCsv(path));
 * assertEquals(rows, [{ line: 2, record: { a: "1", b: "2" } }]);
 * await Deno.remove(path);
 * ```
 */
export async function* readCsv(path: string, options: CsvOptions = {}): AsyncGenerator<CsvRow> {
  const tsv = /\.tsv(\.gz)?$/.test(path);
  const parser = parse({
    delimiter: options.separator ?? (tsv ? "\t" : ","),
    columns: options.columns ?? true,
    info: true,
    bom: true,
    quote: options.quote === false ? null : options.quote ?? '"',
    skip_empty_lines: true,
    // named, not discovered: discovery rescans a first line that has no newline yet on every chunk
    // (0.3–0.7 MB/s)
    record_delimiter: ["\r\n", "\n", "\r"],
  });
  const input = Readable.fromWeb(
    await openStream(path) as unknown as import("node:stream/web").ReadableStream,
  );
  input.on("error", (e) => parser.destroy(e));
  input.pipe(parser);
  let checked = false;
  let prevEnd = options.columns ? 0 : 1, prevEmpty = 0;
  try {
    for await (
      const { record, info } of parser as AsyncIterable<
        { record: Record<string, string>; info: { lines: number; empty_lines: number } }
      >
    ) {
      if (!checked) {
        for (const col of options.required ?? []) {
          if (!(col in record)) {
            throw new FormatError(
              `Cannot read '${path}': missing column '${col}' (columns: ${
                Object.keys(record).join(", ")
              })`,
            );
          }
        }
        checked = true;
      }
      // csv-parse reports the line a record ends on; it starts after the previous one and any
      // blank lines skipped in between
      const line = prevEnd + 1 + info.empty_lines - prevEmpty;
      prevEnd = info.lines;
      prevEmpty = info.empty_lines;
      yield { line, record };
    }
  } catch (e) {
    if (e instanceof FormatError) throw e;
    const err = e as Error & { lines?: number; code?: unknown };
    if (zlibError(err)) throw streamError(e, path);
    const at = err.lines ? ` line ${err.lines}` : "";
    throw new FormatError(
      `Cannot parse '${path}'${at}: ${err.message.replace(/^Invalid Record Length: /, "")}`,
    );
  } finally {
    input.destroy();
  }
}

/** One JSONL value and its line (1-based). */
export interface JsonlRow<T = unknown> {
  /** Line number. */
  line: number;
  /** The parsed value. */
  value: T;
}

/** Streams the lines of a text file (gzip when the name ends in `.gz`), without line endings. */
export async function* readLines(path: string): AsyncGenerator<string> {
  const stream = (await openStream(path)).pipeThrough(new TextDecoderStream());
  const it = splitLines(stream)[Symbol.asyncIterator]();
  for (;;) {
    let r: IteratorResult<string>;
    try {
      r = await it.next();
    } catch (e) {
      throw streamError(e, path);
    }
    if (r.done) return;
    yield r.value.endsWith("\r") ? r.value.slice(0, -1) : r.value;
  }
}

/**
 * The lines of a text stream, without their "\n" (a last line without one too). Each chunk is
 * searched for newlines once: a line longer than many chunks is joined once, not re-split with
 * every chunk (a 32 MiB line took 5.4 s that way).
 */
export async function* splitLines(stream: ReadableStream<string>): AsyncGenerator<string> {
  let pending: string[] = [];
  for await (const chunk of stream) {
    let start = 0, nl = chunk.indexOf("\n");
    while (nl >= 0) {
      pending.push(chunk.slice(start, nl));
      yield pending.length === 1 ? pending[0]! : pending.join("");
      pending = [];
      start = nl + 1;
      nl = chunk.indexOf("\n", start);
    }
    if (start < chunk.length) pending.push(start === 0 ? chunk : chunk.slice(start));
  }
  if (pending.length) yield pending.join("");
}

/**
 * Streams the values of a JSON-lines file; blank lines are skipped, a bad line is a FormatError
 * naming the file and line.
 *
 * @example
 * ```ts
 * import { readJsonl } from "./text.ts";
 * import { assertEquals } from "@std/assert";
 * const path = await Deno.makeTempFile({ suffix: ".jsonl" });
 * await Deno.writeTextFile(path, '{"a":1}\n\n{"a":2}\n');
 * const rows = await Array.fromAsync(readJsonl(path));
 * assertEquals(rows.map((r) => r.line), [1, 3]);
 * await Deno.remove(path);
 * ```
 */
export async function* readJsonl<T = unknown>(path: string): AsyncGenerator<JsonlRow<T>> {
  let line = 0;
  for await (const text of readLines(path)) {
    line++;
    if (text.trim() === "") continue;
    let value: T;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new FormatError(`Cannot parse '${path}' line ${line}: ${(e as Error).message}`);
    }
    yield { line, value };
  }
}

/**
 * The documents of a file: a .txt file is one document; .jsonl, .csv and .tsv (also .gz) give
 * one per record, its `field` (blank ones skipped). Throws a FormatError naming the file and
 * line when a record has no such string field, or when no document has text.
 */
export async function readDocuments(path: string, field: string): Promise<string[]> {
  const docs: string[] = [];
  if (/\.jsonl$/.test(path)) {
    for await (const { line, value } of readJsonl<Record<string, unknown>>(path)) {
      const t = value?.[field];
      if (typeof t !== "string") {
        throw new FormatError(`'${path}' line ${line} has no string field "${field}"`);
      }
      if (t.trim()) docs.push(t);
    }
  } else if (/\.(csv|tsv)(\.gz)?$/.test(path)) {
    for await (const { record } of readCsv(path, { required: [field] })) {
      if (record[field]!.trim()) docs.push(record[field]!);
    }
  } else docs.push(await Deno.readTextFile(path));
  if (docs.length === 0) throw new FormatError(`'${path}' has no text in field "${field}"`);
  return docs;
}
