/**
 * Romanisation through npm `any-ascii` (ISC; transliteration tables for every script):
 * Latin loses its diacritics (ß → ss, İ → I), Cyrillic and Greek are transliterated letter by
 * letter, Arabic keeps its consonant skeleton (short vowels are not written; ع → `), Devanagari
 * and Thai are transliterated per character with inherent vowels, Hangul by the Revised
 * Romanisation per syllable, and Han by toneless pinyin per character, capitalised and joined
 * without spaces (北京 → BeiJing). Ethiopic (Fidel) is romanised per syllable (ክፍል → kfl).
 *
 * @module
 */
import anyAscii from "any-ascii";

/**
 * The romanised (ASCII) form of `text`.
 *
 * @example
 * ```ts
 * import { romanize } from "./romanize.ts";
 * if (romanize("Straße 北京") !== "Strasse BeiJing") throw new Error(romanize("Straße 北京"));
 * ```
 */
export function romanize(text: string): string {
  return anyAscii(text);
}
