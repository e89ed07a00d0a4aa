// The toxicity benches' input (bench/toxicity_bench.ts, bench/toxicity_dist_bench.ts): no real
// Reddit dump is available, so comments are resampled from the real texts we have (en:
// SemEval-2021 + ACL-2022 Civil Comments; de: GermEval-2018; es: UD PUD; nl: UD LassySmall; tr,
// ar: OffensEval-2020 — the last three read from ../shared/data, skipped with a line when
// absent) and given timestamps over 2020–2023, 60 communities and reply chains, as a stream of
// NDJSON bytes (seed 7: the same comments every run).
import { Rng } from "../lib/core/rng.ts";
import { readJsonl } from "../lib/io/text.ts";
import { readGermEval, readOffensEval, readSemEval } from "../lib/toxicity/datasets.ts";

const SHARED = "../shared/data";

/** The real texts per language (paths relative to the repository root). */
export async function benchTexts(
  warn: (line: string) => void = console.error,
): Promise<Record<string, string[]>> {
  const texts: Record<string, string[]> = {
    en: (await readSemEval("data/toxic_spans/semeval2021/tsd_train.csv")).map((p) => p.text),
    de: (await readGermEval("data/toxicity_labelled/germeval2018/germeval2018.training.txt"))
      .map((p) => p.text),
    es: (await Array.fromAsync(
      readJsonl<{ text: string }>("data/multilingual_text/ud_pud/pud_es.jsonl"),
    )).map((r) => r.value.text),
  };
  const optional = async (lang: string, load: () => Promise<string[]>) => {
    try {
      texts[lang] = await load();
    } catch {
      warn(`toxicity bench: no ${lang} text under ${SHARED}; the bench runs without it`);
    }
  };
  await optional("nl", async () =>
    (await Array.fromAsync(
      readJsonl<{ text: string }>(`${SHARED}/multilingual_text/ud_nl_lassysmall_test.jsonl`),
    )).map((r) => r.value.text));
  for (const lang of ["tr", "ar"]) {
    await optional(
      lang,
      async () =>
        (await readOffensEval(`${SHARED}/toxicity_labelled/offenseval2020/${lang}_dev.tsv`)).map((
          p,
        ) => p.text),
    );
  }
  return texts;
}

/** `n` comments as NDJSON bytes, resampled from `texts`. */
export function benchComments(
  texts: Record<string, string[]>,
  n: number,
): ReadableStream<Uint8Array> {
  const langs = Object.keys(texts);
  // pre-encode each text's JSON string once; the stream then only joins them
  const bodies: Record<string, string[]> = Object.fromEntries(
    langs.map((l) => [l, texts[l]!.map((t) => JSON.stringify(t))]),
  );
  const T0 = Date.UTC(2020, 0, 1) / 1000, SPAN = 4 * 365 * 86400;
  const rng = new Rng(7), enc = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= n) return c.close();
      let s = "";
      for (let k = 0; k < 2000 && i < n; k++, i++) {
        const l = langs[i % langs.length]!, b = bodies[l]!;
        const parent = rng.int(5) < 2 || i === 0
          ? "t3_p" + rng.int(30000)
          : "t1_c" + (i - 1 - rng.int(Math.min(i, 500)));
        s += `{"id":"c${i}","parent_id":"${parent}","body":${b[rng.int(b.length)]},"created_utc":${
          T0 + rng.int(SPAN)
        },"subreddit":"r${rng.int(60)}","lang":"${l}"}\n`;
      }
      c.enqueue(enc.encode(s));
    },
  });
}
