/**
 * Romanisation through npm `any-ascii` (ISC; transliteration tables for every script). What it
 * does to each script (examples checked in tests/crosslingual):
 *
 * - Latin: drops diacritics and expands ligatures (İstanbul'da ağaç → Istanbul'da agac, ß → ss);
 * - Cyrillic, Greek: letter by letter (Привет мир → Privet mir, Ελληνικά → Ellinika);
 * - Arabic: the written consonant skeleton, short vowels are not written (مرحبا بالعالم → mrhb bl`lm,
 *   ع → `);
 * - Devanagari: per akshara with the inherent vowel dropped before a virama (नमस्ते दुनिया →
 *   nmste duniya);
 * - Thai: per character, no spaces appear inside a phrase (สวัสดีครับ → swasdikhrab);
 * - Hangul: Revised Romanisation per syllable, each syllable capitalised (안녕하세요 → AnNyeongHaSeYo);
 * - Han: toneless pinyin per character, capitalised, no spaces (北京大学 → BeiJingDaXue);
 * - Ethiopic (Fidel, the paper's Amharic case): per syllable (ክፍል ሁለት → kfl hulet).
 *
 * @module
 */
import anyAscii from "npm:any-ascii@0.3.2";

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
