/**
 * Toxicity lexicons: the LDNOOBW lists shipped by npm `naughty-words` (the default for en, de,
 * nl, es, tr, ar), HurtLex TSV files by path (category and conservative/inclusive level), the
 * Wiegand abusive-words lexicon (base or expanded), and plain word lists.
 *
 * @module
 */
import ar from "npm:naughty-words@1.2.0/ar.json" with { type: "json" };
import de from "npm:naughty-words@1.2.0/de.json" with { type: "json" };
import en from "npm:naughty-words@1.2.0/en.json" with { type: "json" };
import es from "npm:naughty-words@1.2.0/es.json" with { type: "json" };
import nl from "npm:naughty-words@1.2.0/nl.json" with { type: "json" };
import tr from "npm:naughty-words@1.2.0/tr.json" with { type: "json" };
import { FormatError } from "../core/errors.ts";
import { readLines } from "../io/text.ts";

/** One lexicon entry. */
export interface LexiconEntry {
  /** The word or phrase. */
  term: string;
  /** Its category, when the lexicon has them (HurtLex: e.g. "ps" ethnic slurs). */
  category?: string;
}

/** A named list of terms for one language (or none). */
export interface Lexicon {
  /** Name, e.g. "ldnoobw-en" or "hurtlex-cons-de". */
  name: string;
  /** ISO 639-1 code, when the lexicon is for one language. */
  language?: string;
  /** The entries. */
  entries: LexiconEntry[];
}

/** The six languages of the toxicity papers. */
export const TOXICITY_LANGUAGES = ["en", "de", "nl", "es", "tr", "ar"] as const;

const LDNOOBW: Record<string, string[]> = { en, de, nl, es, tr, ar };

/**
 * The LDNOOBW list for `language` from npm naughty-words (CC-BY-4.0).
 *
 * @example
 * ```ts
 * import { ldnoobw } from "./lexicon.ts";
 * if (ldnoobw("de").entries.length < 10) throw new Error("too short");
 * ```
 */
export function ldnoobw(language: string): Lexicon {
  const list = Object.hasOwn(LDNOOBW, language) ? LDNOOBW[language] : undefined;
  if (!list) {
    throw new RangeError(
      `Unknown lexicon language '${language}' (LDNOOBW lists: ${Object.keys(LDNOOBW).join(", ")})`,
    );
  }
  return { name: `ldnoobw-${language}`, language, entries: list.map((term) => ({ term })) };
}

// quote marks around a word or phrase: a double quote not between two letters/digits (so the
// gershayim of a Hebrew acronym such as תפו"א stays), and a pair of single quotes at word
// boundaries (an apostrophe as in 'ndrangheta or fuckin' stays)
const DOUBLE_QUOTE = /(?<![\p{L}\p{N}])["“”„‟]|["“”„‟](?![\p{L}\p{N}])/gu;
const SINGLE_QUOTES = /(^|[\s(])['‘]([^'‘’\s][^'‘’]*?)['’](?=$|[\s),.;:!?])/gu;

/** `lemma` without the quote marks HurtLex writes around words ("f" word → f word). */
function unquote(lemma: string): string {
  const bare = lemma.replace(SINGLE_QUOTES, "$1$2").replace(DOUBLE_QUOTE, "");
  return bare === lemma ? lemma : bare.replace(/\s+/g, " ").trim();
}

/**
 * A HurtLex TSV (`id pos category stereotype lemma level`): `conservative` keeps the checked
 * core lemmas, `inclusive` every lemma (as the toxic-spans authors' hurtlex-cons / -incl).
 * Quote marks around a word or phrase are dropped so the term can match text: `"f" word` →
 * `f word`, `the word 'fuck'` → `the word fuck`; apostrophes (`'ndrangheta`, `fuckin'`) and a
 * double quote between two letters (the Hebrew acronym `תפו"א`) are kept.
 */
export async function readHurtLex(
  path: string,
  options: { level?: "conservative" | "inclusive"; language?: string; categories?: string[] } = {},
): Promise<Lexicon> {
  const level = options.level ?? "conservative";
  const entries: LexiconEntry[] = [];
  let header: string[] | undefined, line = 0;
  for await (const text of readLines(path)) {
    line++;
    if (text.trim() === "") continue;
    const cols = text.split("\t");
    if (!header) {
      header = cols;
      for (const c of ["lemma", "category", "level"]) {
        if (!header.includes(c)) {
          throw new FormatError(
            `'${path}' line 1: missing column '${c}' (a HurtLex TSV has id pos category stereotype lemma level)`,
          );
        }
      }
      continue;
    }
    if (cols.length !== header.length) {
      throw new FormatError(
        `'${path}' line ${line}: ${cols.length} fields, expected ${header.length}`,
      );
    }
    const get = (c: string) => cols[header!.indexOf(c)]!;
    if (level === "conservative" && get("level") !== "conservative") continue;
    if (options.categories && !options.categories.includes(get("category"))) continue;
    entries.push({ term: unquote(get("lemma")), category: get("category") });
  }
  const language = options.language ?? /hurtlex_([A-Za-z]{2})\.tsv$/.exec(path)?.[1]?.toLowerCase();
  return {
    name: `hurtlex-${level === "conservative" ? "cons" : "incl"}${language ? `-${language}` : ""}`,
    ...(language ? { language } : {}),
    entries,
  };
}

/**
 * The Wiegand et al. abusive-words lexicon: `base` lines are `word_POS<TAB>TRUE|FALSE` (TRUE
 * kept), `expanded` lines `word_POS<TAB>score` (score > 0 kept).
 */
export async function readWiegand(path: string, variant: "base" | "expanded"): Promise<Lexicon> {
  const entries: LexiconEntry[] = [];
  let line = 0;
  for await (const text of readLines(path)) {
    line++;
    if (text.trim() === "") continue;
    const [wordPos, value, ...rest] = text.split("\t");
    const cut = wordPos?.lastIndexOf("_") ?? -1;
    if (value === undefined || rest.length > 0 || cut <= 0) {
      throw new FormatError(
        `'${path}' line ${line}: expected 'word_POS<TAB>${
          variant === "base" ? "TRUE|FALSE" : "score"
        }'`,
      );
    }
    const word = wordPos!.slice(0, cut);
    if (variant === "base") {
      if (value !== "TRUE" && value !== "FALSE") {
        throw new FormatError(`'${path}' line ${line}: '${value}' is not TRUE or FALSE`);
      }
      if (value === "TRUE") entries.push({ term: word });
    } else {
      const score = Number(value);
      if (value.trim() === "" || !Number.isFinite(score)) {
        throw new FormatError(`'${path}' line ${line}: score '${value}' is not a number`);
      }
      if (score > 0) entries.push({ term: word });
    }
  }
  return { name: `wiegand-${variant === "base" ? "base" : "expa"}`, language: "en", entries };
}

/** A plain word list: one term per line; blank lines and lines starting with "#" are skipped. */
export async function readWordList(path: string, language?: string): Promise<Lexicon> {
  const entries: LexiconEntry[] = [];
  for await (const text of readLines(path)) {
    const t = text.trim();
    if (t !== "" && !t.startsWith("#")) entries.push({ term: t });
  }
  if (entries.length === 0) throw new FormatError(`'${path}' has no terms`);
  const name = path.split("/").pop()!.replace(/\.\w+$/, "");
  return { name, ...(language ? { language } : {}), entries };
}
