// toxicity_stats end to end over 4.5 million comments in six languages (`deno task bench`): no
// real Reddit dump is available, so the comments are resampled from the real texts we have (en:
// SemEval-2021 + ACL-2022 Civil Comments; de: GermEval-2018; es: UD PUD; nl: UD LassySmall; tr, ar:
// OffensEval-2020 — the last three read from ../shared/data) and given timestamps over 2020–2023,
// 60 communities and reply chains. They are produced as NDJSON bytes by a stream, so the measured
// path is the script's: bytes → lines → JSON → comment → language lexicon, sentiment, aggregation,
// reply tree; then every table. The generator alone is the baseline of its group.
import { Rng } from "../lib/core/rng.ts";
import { commentsFromJsonLines } from "../lib/toxicity/comments.ts";
import { readGermEval, readOffensEval, readSemEval } from "../lib/toxicity/datasets.ts";
import { ToxicityStats } from "../lib/toxicity/stats.ts";
import { readJsonl } from "../lib/io/text.ts";

const N = 4_500_000;
const texts: Record<string, string[]> = {
  en: (await readSemEval("data/toxic_spans/semeval2021/tsd_train.csv")).map((p) => p.text),
  de: (await readGermEval("data/toxicity_labelled/germeval2018/germeval2018.training.txt")).map((
    p,
  ) => p.text),
  es: (await Array.fromAsync(
    readJsonl<{ text: string }>("data/multilingual_text/ud_pud/pud_es.jsonl"),
  )).map((r) => r.value.text),
};
const SHARED = "../shared/data";
const optional = async (lang: string, load: () => Promise<string[]>) => {
  try {
    texts[lang] = await load();
  } catch {
    console.error(`toxicity bench: no ${lang} text under ${SHARED}; the bench runs without it`);
  }
};
await optional(
  "nl",
  async () =>
    (await Array.fromAsync(
      readJsonl<{ text: string }>(`${SHARED}/multilingual_text/ud_nl_lassysmall_test.jsonl`),
    )).map((r) => r.value.text),
);
await optional(
  "tr",
  async () =>
    (await readOffensEval(`${SHARED}/toxicity_labelled/offenseval2020/tr_dev.tsv`)).map((p) =>
      p.text
    ),
);
await optional(
  "ar",
  async () =>
    (await readOffensEval(`${SHARED}/toxicity_labelled/offenseval2020/ar_dev.tsv`)).map((p) =>
      p.text
    ),
);
const langs = Object.keys(texts);
// pre-encode each text's JSON string once; the stream then only joins them
const bodies: Record<string, string[]> = Object.fromEntries(
  langs.map((l) => [l, texts[l]!.map((t) => JSON.stringify(t))]),
);
const T0 = Date.UTC(2020, 0, 1) / 1000, SPAN = 4 * 365 * 86400;

function comments(): ReadableStream<Uint8Array> {
  const rng = new Rng(7), enc = new TextEncoder();
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= N) return c.close();
      let s = "";
      for (let k = 0; k < 2000 && i < N; k++, i++) {
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

const FIELDS = {
  text: "body",
  time: "created_utc",
  community: "subreddit",
  language: "lang",
  id: "id",
  parent: "parent_id",
};

Deno.bench({
  name: `generator alone: ${N / 1e6}M NDJSON comments`,
  group: "toxicity_stats 4.5M",
  baseline: true,
  n: 1,
  warmup: 0,
  async fn() {
    const r = comments().getReader();
    while (!(await r.read()).done);
  },
});

Deno.bench({
  name: `toxicity_stats end to end, ${langs.length} languages (${langs.join(", ")})`,
  group: "toxicity_stats 4.5M",
  n: 1,
  warmup: 0,
  async fn() {
    const st = new ToxicityStats({ languages: langs, depth: true });
    for await (const c of commentsFromJsonLines(comments(), "bench", FIELDS)) st.add(c, "bench");
    if (st.counted !== N) throw new Error(`counted ${st.counted}`);
    st.weekly();
    st.events([{ event: "e", day: 18700 }], { replicates: 1000 });
    st.topicAgreement();
    st.depthTable();
  },
});
