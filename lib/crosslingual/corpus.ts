/**
 * Word-segmented sentences per language: the UD PUD JSONL files (`{"sent_id", "text", "words"}`,
 * `words` the gold syntactic words) in one folder, one `pud_<lang>.jsonl` per language.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { readJsonl } from "../io/text.ts";

/** One sentence with its gold words. */
export interface Sentence {
  /** Id shared by the translations of one sentence. */
  id: string;
  /** The running text. */
  text: string;
  /** The gold word segmentation (UD syntactic words). */
  words: string[];
}

/** The languages with a `pud_<lang>.jsonl` file in `dir`. */
export function availableLanguages(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => /^pud_(.+)\.jsonl$/.exec(e.name)?.[1])
    .filter((x): x is string => x !== undefined).sort();
}

/**
 * Reads the sentences of `lang` from `dir`; a missing file, an empty one, or a line without
 * `text` and `words` is an error naming the language, file and line.
 */
export async function readSentences(
  dir: string,
  lang: string,
  limit = Infinity,
): Promise<Sentence[]> {
  const path = `${dir}/pud_${lang}.jsonl`;
  try {
    await Deno.stat(path);
  } catch {
    const have = (() => {
      try {
        return availableLanguages(dir).join(", ") || "none";
      } catch {
        return "none: the folder cannot be read";
      }
    })();
    throw new RangeError(
      `No text for language '${lang}': '${path}' does not exist (have: ${have})`,
    );
  }
  const out: Sentence[] = [];
  for await (const { line, value } of readJsonl<Record<string, unknown>>(path)) {
    if (out.length >= limit) break;
    const { text, words } = value ?? {};
    if (
      typeof text !== "string" || !Array.isArray(words) ||
      !words.every((w) => typeof w === "string")
    ) {
      throw new FormatError(
        `'${path}' line ${line}: expected "text" (a string) and "words" (a list of strings)`,
      );
    }
    if (words.length === 0 || text.trim() === "") continue;
    const sid = value.sent_id;
    const id = typeof sid === "string" || typeof sid === "number" ? String(sid) : String(line);
    out.push({ id, text, words: words as string[] });
  }
  if (out.length === 0) {
    throw new FormatError(`No text for language '${lang}': '${path}' has no sentences`);
  }
  return out;
}
