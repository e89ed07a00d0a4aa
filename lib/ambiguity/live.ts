/**
 * Live evaluation: sends each item's messages to a chat endpoint (two turns for step-by-step
 * prompting), parses the answer, and appends one JSON line per finished item to an answers file
 * as it arrives. A restart reads that file and skips finished items, so an interrupted run loses
 * at most the items in flight.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { type AmbiguityItem, itemFromRecord, itemRecord, replyText } from "./benchmark.ts";
import type { ChatClient, ChatMessage } from "./client.ts";
import { parseAnswer } from "./parse.ts";

/** Options of {@linkcode runLive}. */
export interface LiveOptions {
  /** Answers file (JSONL), appended to and read back on restart. */
  out: string;
  /** Requests in flight at once (default 4). */
  concurrency?: number;
  /** System message before the first user turn; null for none (default "You are a helpful assistant."). */
  systemPrompt?: string | null;
  /** Called after each finished item with (finished so far, total to do in this run). */
  onItem?: (done: number, todo: number) => void;
}

/** What a run did. */
export interface LiveSummary {
  /** Items asked for. */
  total: number;
  /** Items already in the answers file at start. */
  resumed: number;
  /** Items answered in this run. */
  answered: number;
  /** Incomplete last line dropped from an interrupted write (bytes), 0 when none. */
  droppedBytes: number;
}

/**
 * Reads the finished items of an answers file (id → item). A line that does not parse is a
 * FormatError naming it, except an unterminated last line, the trace of a write cut off by a
 * crash: it is cut from the file and its size returned.
 */
export async function readAnswers(
  path: string,
): Promise<{ done: Map<string, AmbiguityItem>; droppedBytes: number }> {
  const done = new Map<string, AmbiguityItem>();
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { done, droppedBytes: 0 };
    throw e;
  }
  let end = bytes.length, droppedBytes = 0;
  const lastNl = bytes.lastIndexOf(10);
  if (end > 0 && bytes[end - 1] !== 10) {
    const tail = new TextDecoder().decode(bytes.subarray(lastNl + 1));
    let complete = true;
    try {
      JSON.parse(tail);
    } catch {
      complete = false;
    }
    if (!complete) {
      droppedBytes = end - (lastNl + 1);
      end = lastNl + 1;
      await Deno.truncate(path, end);
    }
  }
  const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\n");
  lines.forEach((text, i) => {
    if (text.trim() === "") return;
    const where = `'${path}' line ${i + 1}`;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new FormatError(`${where}: ${(e as Error).message}`);
    }
    const id = (value as { id?: unknown })?.id;
    if (typeof id !== "string") throw new FormatError(`${where}: no 'id' string`);
    const item = itemFromRecord(value, where, { fragment: "", id });
    if (!item.responses) throw new FormatError(`${where}: no 'responses'`);
    done.set(id, item);
  });
  return { done, droppedBytes };
}

/**
 * Opens the answers file for appending; a last line without its newline (a file edited by hand)
 * gets one first, so that the next answer does not run on into it.
 */
async function openAnswers(path: string): Promise<Deno.FsFile> {
  const file = await Deno.open(path, { read: true, append: true, create: true });
  const size = (await file.stat()).size;
  if (size > 0) {
    const last = new Uint8Array(1);
    await file.seek(size - 1, Deno.SeekMode.Start);
    await file.read(last);
    if (last[0] !== 10) await writeAll(file, new Uint8Array([10]));
  }
  return file;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await file.write(data.subarray(off));
}

/**
 * Answers every item not yet in `options.out`. On the first item that fails for good (retries
 * spent, or an error such as HTTP 401), no new items start, those in flight finish and are
 * saved, and the error is thrown with the count of answers kept. The answers file is created
 * at the first answer: a run that answers nothing leaves none behind.
 */
export async function runLive(
  items: readonly AmbiguityItem[],
  client: Pick<ChatClient, "complete">,
  options: LiveOptions,
): Promise<LiveSummary> {
  const ids = new Set<string>();
  for (const it of items) {
    if (ids.has(it.id)) throw new FormatError(`${it.source}: duplicate item id '${it.id}'`);
    ids.add(it.id);
  }
  const { done, droppedBytes } = await readAnswers(options.out);
  for (const it of items) {
    const prev = done.get(it.id);
    if (prev && JSON.stringify(prev.messages) !== JSON.stringify(it.messages)) {
      throw new FormatError(
        `${prev.source}: item '${it.id}' was asked with other messages than ${it.source}; ` +
          `these answers belong to another benchmark: use another answers file`,
      );
    }
  }
  const todo = items.filter((it) => !done.has(it.id));
  const system = options.systemPrompt === undefined
    ? "You are a helpful assistant."
    : options.systemPrompt;
  // opened at the first answer, so that a run whose first request fails leaves no empty file
  let file: Deno.FsFile | undefined;
  const enc = new TextEncoder();
  let next = 0, answered = 0;
  let failure: Error | undefined;
  let writing = Promise.resolve();
  const worker = async () => {
    while (failure === undefined && next < todo.length) {
      const item = todo[next++]!;
      try {
        const conversation: ChatMessage[] = system === null
          ? []
          : [{ role: "system", content: system }];
        const responses: unknown[] = [];
        for (const message of item.messages) {
          conversation.push({ role: "user", content: message });
          const response = await client.complete(conversation);
          responses.push(response);
          conversation.push({ role: "assistant", content: replyText(response, item.id) });
        }
        const replies = responses.map((r) => replyText(r, item.id));
        const parsed = parseAnswer(item.style, replies);
        const results: Record<string, string> = {};
        if (parsed.choice !== null) results.choice = parsed.choice;
        if (parsed.explanation !== null) results.explanation = parsed.explanation;
        const line = JSON.stringify(itemRecord({ ...item, responses, results })) + "\n";
        writing = writing.then(async () => {
          file ??= await openAnswers(options.out);
          await writeAll(file, enc.encode(line));
        });
        await writing;
        answered++;
        options.onItem?.(answered, todo.length);
      } catch (e) {
        failure ??= e as Error;
      }
    }
  };
  try {
    const n = Math.max(1, Math.min(options.concurrency ?? 4, todo.length));
    await Promise.all(Array.from({ length: n }, worker));
  } finally {
    await writing.catch(() => {});
    file?.close();
  }
  if (failure) {
    const kept = items.length - todo.length + answered;
    failure.message = `${failure.message}; ${kept} of ${items.length} answers are kept in ` +
      `'${options.out}' and a rerun resumes from there`;
    throw failure;
  }
  return { total: items.length, resumed: items.length - todo.length, answered, droppedBytes };
}
