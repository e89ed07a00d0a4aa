// toxicity_stats end to end over 4.5 million comments in six languages (`deno task bench`): no
// real Reddit dump is available, so the comments are resampled from the real texts we have (en:
// SemEval-2021 + ACL-2022 Civil Comments; de: GermEval-2018; es: UD PUD; nl: UD LassySmall; tr, ar:
// OffensEval-2020 — the last three read from ../shared/data) and given timestamps over 2020–2023,
// 60 communities and reply chains. They are produced as NDJSON bytes by a stream, so the measured
// path is the script's: bytes → lines → JSON → comment → language lexicon, sentiment, aggregation,
// reply tree; then every table. The generator alone is the baseline of its group.
import { commentsFromJsonLines } from "../lib/toxicity/comments.ts";
import { ToxicityStats } from "../lib/toxicity/stats.ts";
import { benchComments, benchTexts } from "./_toxicity_input.ts";

const N = 4_500_000;
const texts = await benchTexts();
const langs = Object.keys(texts);
const comments = () => benchComments(texts, N);

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
