// Comment collections made of real texts for the distributed toxicity statistics: no Reddit dump
// ships here, so the texts are real posts (en: SemEval-2021 toxic spans; de: GermEval-2018;
// es: UD PUD; and, when ../shared/data is present, nl: UD LassySmall, tr and ar:
// OffensEval-2020), resampled with a seeded generator into NDJSON comments with timestamps over
// 70 days, 40 communities and reply chains (a parent up to 400 comments back, so reply links
// cross the cuts between ranks), as bench/toxicity_bench.ts makes them.
import { Rng } from "../../lib/core/rng.ts";
import { readGermEval, readOffensEval, readSemEval } from "../../lib/toxicity/datasets.ts";
import { readJsonl } from "../../lib/io/text.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SHARED = `${ROOT}../shared/data`;

async function optional(load: () => Promise<string[]>): Promise<string[]> {
  try {
    return await load();
  } catch {
    return [];
  }
}

let cache: Record<string, string[]> | undefined;

/** Real texts by language (nl, tr and ar only where ../shared/data has them). */
export async function realTexts(): Promise<Record<string, string[]>> {
  if (cache) return cache;
  const jsonl = async (p: string) =>
    (await Array.fromAsync(readJsonl<{ text: string }>(p))).map((r) => r.value.text);
  const texts: Record<string, string[]> = {
    en: (await readSemEval(`${ROOT}data/toxic_spans/semeval2021/tsd_train.csv`)).map((p) => p.text),
    de: (await readGermEval(
      `${ROOT}data/toxicity_labelled/germeval2018/germeval2018.training.txt`,
    )).map((p) => p.text),
    es: await jsonl(`${ROOT}data/multilingual_text/ud_pud/pud_es.jsonl`),
    nl: await optional(() => jsonl(`${SHARED}/multilingual_text/ud_nl_lassysmall_test.jsonl`)),
    tr: await optional(async () =>
      (await readOffensEval(`${SHARED}/toxicity_labelled/offenseval2020/tr_dev.tsv`)).map((p) =>
        p.text
      )
    ),
    ar: await optional(async () =>
      (await readOffensEval(`${SHARED}/toxicity_labelled/offenseval2020/ar_dev.tsv`)).map((p) =>
        p.text
      )
    ),
  };
  for (const l of Object.keys(texts)) if (texts[l]!.length === 0) delete texts[l];
  return cache = texts;
}

/** The first day of the collections (2021-03-01). */
export const DAY0 = Date.UTC(2021, 2, 1) / 86400000;

/**
 * `n` NDJSON comment lines (without newlines) of real texts in the languages present (or those
 * of `only` that are); ids `${prefix}${i}`.
 */
export async function realCommentLines(
  n: number,
  seed: number,
  options: { prefix?: string; only?: readonly string[] } = {},
): Promise<{ lines: string[]; languages: string[] }> {
  const texts = await realTexts(), prefix = options.prefix ?? "r";
  const langs = Object.keys(texts).filter((l) => !options.only || options.only.includes(l));
  const rng = new Rng(seed);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const l = langs[rng.int(langs.length)]!, pool = texts[l]!;
    const parent = i === 0 || rng.int(5) < 2
      ? `t3_p${rng.int(3000)}`
      : `t1_${prefix}${i - 1 - rng.int(Math.min(i, 400))}`;
    lines.push(JSON.stringify({
      id: `${prefix}${i}`,
      parent_id: parent,
      body: pool[rng.int(pool.length)],
      created_utc: (DAY0 + rng.int(70)) * 86400 + rng.int(86400),
      subreddit: `r${rng.int(40)}`,
      lang: l,
    }));
  }
  return { lines, languages: langs };
}
