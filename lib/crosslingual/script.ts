/**
 * The Unicode Script property of characters and the script mix of a text, read from the
 * JavaScript engine's Unicode tables through `\p{Script=…}` (not hand-made code point ranges).
 *
 * @module
 */

// Script property values (long names) of Unicode 15.1; names this engine does not know are
// skipped. Common and Inherited come first: most punctuation, digits and combining marks.
const SCRIPT_NAMES = (
  "Common Inherited Latin Arabic Cyrillic Han Devanagari Hangul Thai Greek Hebrew Hiragana " +
  "Katakana Ethiopic Bengali Tamil Telugu Kannada Malayalam Gujarati Gurmukhi Oriya Sinhala " +
  "Armenian Georgian Khmer Lao Myanmar Tibetan Mongolian Thaana Syriac Nko Tifinagh Cherokee " +
  "Canadian_Aboriginal Bopomofo Yi Javanese Balinese Sundanese Ogham Runic Adlam Bamum Batak " +
  "Bhaiksuki Buginese Buhid Chakma Cham Coptic Cypriot Deseret Duployan Elbasan Glagolitic " +
  "Gothic Grantha Hanifi_Rohingya Hanunoo Kaithi Kayah_Li Kharoshthi Khojki Khudawadi Lepcha " +
  "Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Mandaic Manichaean Marchen " +
  "Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao " +
  "Modi Mro Multani Nabataean Nandinagari New_Tai_Lue Newa Nushu Nyiakeng_Puachue_Hmong Ol_Chiki " +
  "Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian " +
  "Old_Turkic Old_Uyghur Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician " +
  "Psalter_Pahlavi Rejang Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sogdian " +
  "Sora_Sompeng Soyombo Syloti_Nagri Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tangsa " +
  "Tangut Tirhuta Toto Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Zanabazar_Square Ahom " +
  "Anatolian_Hieroglyphs Avestan Bassa_Vah Brahmi Braille Carian Caucasian_Albanian Chorasmian " +
  "Cuneiform Cypro_Minoan Dives_Akuru Dogra Egyptian_Hieroglyphs Elymaic Gunjala_Gondi " +
  "Imperial_Aramaic Inscriptional_Pahlavi Inscriptional_Parthian Kawi Khitan_Small_Script " +
  "Nag_Mundari Old_Sogdian Garay Gurung_Khema Kirat_Rai Ol_Onal Sunuwar Todhri Tulu_Tigalari"
).split(" ");

const SCRIPTS: { name: string; re: RegExp }[] = [];
for (const name of new Set(SCRIPT_NAMES)) {
  try {
    SCRIPTS.push({ name, re: new RegExp(`^\\p{Script=${name}}$`, "u") });
  } catch { /* not in this engine's Unicode version */ }
}

const cache = new Map<number, string>();

/**
 * The Script property value of one character ("Unknown" for unassigned code points).
 *
 * @example
 * ```ts
 * import { scriptOf } from "./script.ts";
 * const s = ["a", "ж", "北", "ก", "ह", "한", "ع", "1", "\u0301"].map(scriptOf);
 * if (s.join() !== "Latin,Cyrillic,Han,Thai,Devanagari,Hangul,Arabic,Common,Inherited") throw new Error(s.join());
 * ```
 */
export function scriptOf(ch: string): string {
  const cp = ch.codePointAt(0)!;
  let s = cache.get(cp);
  if (s === undefined) {
    s = SCRIPTS.find((x) => x.re.test(ch))?.name ?? "Unknown";
    cache.set(cp, s);
  }
  return s;
}

/** Counts of characters per script in `text` (whitespace excluded). */
export function scriptCounts(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const ch of text) {
    if (/\s/u.test(ch)) continue;
    const s = scriptOf(ch);
    m.set(s, (m.get(s) ?? 0) + 1);
  }
  return m;
}

/**
 * The script mix of `texts`: the share of each script among non-space characters, largest first,
 * and the main script (the largest other than Common, Inherited and Unknown).
 */
export function scriptMix(texts: Iterable<string>): { shares: [string, number][]; main: string } {
  const total = new Map<string, number>();
  let n = 0;
  for (const t of texts) {
    for (const [s, c] of scriptCounts(t)) {
      total.set(s, (total.get(s) ?? 0) + c);
      n += c;
    }
  }
  const shares = [...total].map(([s, c]) => [s, n === 0 ? 0 : c / n] as [string, number])
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const main = shares.find(([s]) => s !== "Common" && s !== "Inherited" && s !== "Unknown")?.[0] ??
    "Common";
  return { shares, main };
}
