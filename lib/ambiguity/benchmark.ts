/**
 * Items of the ambiguous-definite-descriptions benchmark (Schouten et al.) and their loaders:
 * one JSON object per line with `label_nr`, `label_name`, `messages`, `entity`, `property`,
 * `prompt_style`, and, in answer files, the model's `responses` and the parsed `results`.
 *
 * @module
 */
import { FormatError, quoteValue } from "../core/errors.ts";
import { readJsonl } from "../io/text.ts";
import { promptStyle } from "./parse.ts";

/** The two readings of an ambiguous definite description. */
export type Reading = "de_dicto" | "de_re";

/** One benchmark item, with a model's replies when the file holds answers. */
export interface AmbiguityItem {
  /** Stable key: `<fragment>/<style>/<line>` for released files, or as stored. */
  id: string;
  /** Fragment (relation pair), e.g. "P6_P19". */
  fragment: string;
  /** Prompt style key, e.g. "direct". */
  style: string;
  /** The option number (1 or 2) of the correct reading. */
  labelNr: 1 | 2;
  /** The correct reading. */
  labelName: Reading;
  /** The user messages, one per turn. */
  messages: string[];
  /** The main entity. */
  entity: string;
  /** The property ascribed by the definite description. */
  property: string;
  /** The model's replies (chat-completion objects), one per turn, when present. */
  responses?: unknown[];
  /** The stored parse of those replies, when present. */
  results?: { choice?: string; explanation?: string };
  /** File and line the item came from, for messages. */
  source: string;
}

/** The JSON form of an item, as the authors' files and our answer files store it. */
export interface ItemRecord {
  /** Option number (1 or 2) of the correct reading. */
  label_nr: number;
  /** "de_dicto" or "de_re". */
  label_name: string;
  /** User messages, one per turn. */
  messages: string[];
  /** Main entity. */
  entity: string;
  /** Property ascribed by the description. */
  property: string;
  /** Prompt style key. */
  prompt_style: string;
  /** Item id (our answer files). */
  id?: string;
  /** Fragment key (our answer files). */
  fragment?: string;
  /** Chat-completion objects, one per turn. */
  responses?: unknown[];
  /** Parsed choice and explanation. */
  results?: Record<string, unknown>;
}

const FILE_NAME = /^(?<fragment>.+?)_(?:results|prompts)_(?<style>[A-Za-z0-9_]+)\.jsonl(?:\.gz)?$/;

/**
 * The text of a chat-completion object's first choice, or a FormatError naming `where`.
 *
 * @example
 * ```ts
 * import { replyText } from "./benchmark.ts";
 * const r = { choices: [{ message: { role: "assistant", content: "Option 1" } }] };
 * if (replyText(r, "example") !== "Option 1") throw new Error("wrong text");
 * ```
 */
export function replyText(response: unknown, where: string): string {
  const content = (response as { choices?: { message?: { content?: unknown } }[] } | null)
    ?.choices?.[0]?.message?.content;
  if (typeof content !== "string") {
    throw new FormatError(`${where}: a response has no choices[0].message.content string`);
  }
  return content;
}

/** Checks one parsed JSONL value and turns it into an item; `where` is "file line N". */
export function itemFromRecord(
  value: unknown,
  where: string,
  defaults: { fragment: string; id: string },
): AmbiguityItem {
  const bad = (what: string): never => {
    throw new FormatError(`${where}: ${what}`);
  };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    bad("expected a JSON object");
  }
  const r = value as Partial<ItemRecord>;
  if (r.label_nr !== 1 && r.label_nr !== 2) {
    bad(`label_nr ${quoteValue(r.label_nr)} is not 1 or 2`);
  }
  if (r.label_name !== "de_dicto" && r.label_name !== "de_re") {
    bad(`label_name ${quoteValue(r.label_name)} is not "de_dicto" or "de_re"`);
  }
  for (const f of ["entity", "property", "prompt_style"] as const) {
    if (typeof r[f] !== "string") bad(`field '${f}' is missing or not a string`);
  }
  let style;
  try {
    style = promptStyle(r.prompt_style!);
  } catch (e) {
    bad((e as Error).message);
  }
  const turns = 1 + style!.followUps.length;
  if (
    !Array.isArray(r.messages) || r.messages.length !== turns ||
    !r.messages.every((m) => typeof m === "string")
  ) {
    bad(`'messages' must be ${turns} string(s) for style '${r.prompt_style}'`);
  }
  const item: AmbiguityItem = {
    id: typeof r.id === "string" ? r.id : defaults.id,
    fragment: typeof r.fragment === "string" ? r.fragment : defaults.fragment,
    style: r.prompt_style!,
    labelNr: r.label_nr as 1 | 2,
    labelName: r.label_name as Reading,
    messages: r.messages!,
    entity: r.entity!,
    property: r.property!,
    source: where,
  };
  if (r.responses !== undefined) {
    if (!Array.isArray(r.responses) || r.responses.length !== turns) {
      bad(`'responses' must hold ${turns} chat completion(s) for style '${r.prompt_style}'`);
    }
    r.responses!.forEach((x) => replyText(x, where));
    item.responses = r.responses!;
  }
  if (r.results !== undefined) {
    const res = r.results as Record<string, unknown>;
    if (typeof res !== "object" || res === null) bad("'results' is not an object");
    if (res.choice !== undefined && res.choice !== null && typeof res.choice !== "string") {
      bad(`results.choice ${quoteValue(res.choice)} is not a string`);
    }
    item.results = {};
    if (typeof res.choice === "string") item.results.choice = res.choice;
    if (typeof res.explanation === "string") item.results.explanation = res.explanation;
  }
  return item;
}

/** The replies of an item, one string per turn (an item without responses is an error). */
export function itemReplies(item: AmbiguityItem): string[] {
  if (!item.responses) throw new FormatError(`${item.source}: the item has no responses`);
  return item.responses.map((r) => replyText(r, item.source));
}

/** The JSON form of an item (inverse of {@linkcode itemFromRecord}). */
export function itemRecord(item: AmbiguityItem): ItemRecord {
  const rec: ItemRecord = {
    id: item.id,
    fragment: item.fragment,
    label_nr: item.labelNr,
    label_name: item.labelName,
    messages: item.messages,
    entity: item.entity,
    property: item.property,
    prompt_style: item.style,
  };
  if (item.responses) rec.responses = item.responses;
  if (item.results) rec.results = item.results;
  return rec;
}

/**
 * Reads the items of one JSONL file. The fragment comes from a name like
 * `P6_P19_results_direct.jsonl` (or a `fragment` field); each item's id is
 * `<fragment>/<style>/<line>` unless the line stores one. Every line is checked: a bad one is a
 * FormatError naming the file and line.
 */
export async function loadItems(path: string): Promise<AmbiguityItem[]> {
  const base = path.split("/").pop()!;
  const m = FILE_NAME.exec(base);
  const fileFragment = m?.groups?.fragment ?? base.replace(/\.jsonl(\.gz)?$/, "");
  const items: AmbiguityItem[] = [];
  for await (const { line, value } of readJsonl(path)) {
    const where = `'${path}' line ${line}`;
    // only a string goes into the id: a deeply nested prompt_style overflowed the stack here
    const raw = (value as { prompt_style?: unknown })?.prompt_style;
    const style = typeof raw === "string" ? raw : "?";
    const item = itemFromRecord(value, where, {
      fragment: fileFragment,
      id: `${fileFragment}/${style}/${line}`,
    });
    if (m?.groups && item.style !== m.groups.style && !(value as ItemRecord).fragment) {
      throw new FormatError(
        `${where}: prompt_style '${item.style}' does not match the file name's '${m.groups.style}'`,
      );
    }
    items.push(item);
  }
  return items;
}

/** The `.jsonl` files directly inside `dir`, sorted. */
export function jsonlFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile && /\.jsonl(\.gz)?$/.test(e.name))
    .map((e) => `${dir}/${e.name}`)
    .sort();
}

/**
 * The answer sets under `path`: a file (one set), a folder of JSONL files (one set named after
 * the folder), or a folder of such folders (one set per model, e.g. chatgpt, koala, oasst).
 */
export async function loadAnswerSets(
  path: string,
): Promise<{ name: string; items: AmbiguityItem[] }[]> {
  const stat = await Deno.stat(path).catch(() => null);
  if (!stat) throw new FormatError(`Cannot read benchmark '${path}': no such file or folder`);
  const nameOf = (p: string) =>
    p.replace(/\/+$/, "").split("/").pop()!.replace(/\.jsonl(\.gz)?$/, "");
  if (stat.isFile) return [{ name: nameOf(path), items: await loadItems(path) }];
  const dir = path.replace(/\/+$/, "");
  const files = jsonlFiles(dir);
  if (files.length > 0) {
    const items = (await Promise.all(files.map(loadItems))).flat();
    return [{ name: nameOf(dir), items }];
  }
  const sets = [];
  const subdirs = [...Deno.readDirSync(dir)].filter((e) => e.isDirectory).map((e) => e.name).sort();
  for (const sub of subdirs) {
    const f = jsonlFiles(`${dir}/${sub}`);
    if (f.length > 0) sets.push({ name: sub, items: (await Promise.all(f.map(loadItems))).flat() });
  }
  if (sets.length === 0) {
    throw new FormatError(
      `Cannot read benchmark '${path}': no .jsonl files in it or its sub-folders`,
    );
  }
  return sets;
}
