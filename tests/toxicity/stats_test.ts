// Toxicity statistics: readers for JSONL, gzip and zstd (a fixture compressed by the zstd tool)
// give the same comments; aggregates, event windows, peaks, topic agreement and depth equal
// counts made here directly; bad rows fail with file and line or are skipped and counted.
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { parseTime, readComments, type SkipCounts } from "../../lib/toxicity/comments.ts";
import { ToxicityStats } from "../../lib/toxicity/stats.ts";
import { spearman, twoProportionTest } from "../../lib/stats/tests.ts";
import { FormatError } from "../../lib/core/errors.ts";

const FIX = new URL("./fixtures/", import.meta.url).pathname;
const FIELDS = {
  text: "body",
  time: "created_utc",
  community: "subreddit",
  language: "lang",
  id: "id",
  parent: "parent_id",
};
const TOXIC = new Set([
  "you are a fucking idiot",
  "shit happens",
  "du bist ein arschloch",
  "siktir git",
]);

Deno.test("JSONL, .gz and .zst give the same comments; timestamps parse", async () => {
  const plain = await Array.fromAsync(readComments(`${FIX}comments.jsonl`, FIELDS));
  assertEquals(plain.length, 300);
  assertEquals(await Array.fromAsync(readComments(`${FIX}comments.jsonl.gz`, FIELDS)), plain);
  assertEquals(await Array.fromAsync(readComments(`${FIX}comments.jsonl.zst`, FIELDS)), plain);
  assertEquals(parseTime("2021-01-01"), 1609459200);
  assertEquals(parseTime("2021-01-01T01:00:00+01:00"), 1609459200);
  assertEquals(parseTime(1609459200000), 1609459200);
  assertEquals(parseTime("1609459200"), 1609459200);
  assertEquals(parseTime("2021-02-30"), null);
  assertEquals(parseTime("yesterday"), null);
  // out of a Date's range: was returned as it stood, and the daily tables died on "Invalid time
  // value" with no file or line, even with skipBadRows
  assertEquals(parseTime(99999999999999999999), null);
  assertEquals(parseTime("99999999999999999999"), null);
  assertEquals(parseTime(-9e15), null);
  assertEquals(parseTime(8.64e15), 8.64e12); // milliseconds (above 1e11): the last Date
  assertEquals(parseTime(8.64e15 + 1000), null);
});

Deno.test("aggregates equal direct counts; depth follows the reply chains", async () => {
  const comments = await Array.fromAsync(readComments(`${FIX}comments.jsonl`, FIELDS));
  const st = new ToxicityStats({ languages: ["en", "de", "tr"], depth: true });
  for (const c of comments) st.add(c, "fixture");
  for (const lang of ["en", "de", "tr"]) {
    const mine = comments.filter((c) => c.language === lang);
    const rows = st.daily().filter((r) => r.language === lang);
    assertEquals(rows.reduce((s, r) => s + r.n, 0), mine.length);
    assertEquals(
      rows.reduce((s, r) => s + r.toxic, 0),
      mine.filter((c) => TOXIC.has(c.text)).length,
      lang,
    );
    const weekly = st.weekly().filter((r) => r.language === lang);
    assertEquals(
      weekly.reduce((s, r) => s + r.toxic, 0),
      mine.filter((c) => TOXIC.has(c.text)).length,
    );
  }
  // depth: parent c(i−3) unless i % 4 == 0 or i < 3
  const depthOf = new Map<number, number>();
  for (let i = 0; i < 300; i++) depthOf.set(i, i >= 3 && i % 4 ? depthOf.get(i - 3)! + 1 : 1);
  for (const row of st.depthTable()) {
    const want = comments.filter((c, i) =>
      depthOf.get(i) === row.depth && c.language === row.language
    );
    assertEquals(row.n, want.length, `depth ${row.depth} ${row.language}`);
    assertEquals(row.toxic, want.filter((c) => TOXIC.has(c.text)).length);
  }
});

function comment(day: number, text: string, community = "news", language = "en", line = 1) {
  return { line, text, time: day * 86400 + 3600, community, language };
}

Deno.test("event windows: ratios, the two-proportion test, interval and delayed peak", () => {
  const st = new ToxicityStats({ languages: ["en"] });
  const E = 19000;
  for (let d = E - 7; d < E + 7; d++) {
    // 20 comments a day; 2 toxic before the event, 4 after, 12 on day E + 3
    const toxic = d < E ? 2 : d === E + 3 ? 12 : 4;
    for (let k = 0; k < 20; k++) {
      st.add(comment(d, k < toxic ? "shit happens" : "what a nice day"), "x");
    }
  }
  const { rows, series } = st.events([{ event: "e", day: E }], { replicates: 200 });
  const r = rows[0]!;
  assertEquals([r.before_n, r.before_toxic, r.after_n, r.after_toxic], [140, 14, 140, 36]);
  const t = twoProportionTest(14, 140, 36, 140);
  assertAlmostEquals(r.z as number, t.z, 1e-12);
  assertAlmostEquals(r.p as number, t.p, 1e-12);
  assert(
    (r.ci_low as number) < (r.difference as number) &&
      (r.difference as number) < (r.ci_high as number),
  );
  assertEquals([r.peak_lag_days, r.peak_ratio], [3, 0.6]);
  assertEquals(series.length, 14);
  assertEquals(series.find((s) => s.offset === 3)!.ratio, 0.6);
});

Deno.test("topic × language tables and rank agreement equal direct computation", () => {
  const topics = new Map([["a", "politics"], ["b", "sports"], ["c", "gaming"], ["d", "news"]]);
  const st = new ToxicityStats({ languages: ["en", "de"], topics });
  // en toxic ratios by community: a .5, b .1, c .3, d .2; de: a .4, b .2, c .1, d .3
  const ratios: Record<string, Record<string, number>> = {
    en: { a: 5, b: 1, c: 3, d: 2 },
    de: { a: 4, b: 2, c: 1, d: 3 },
  };
  for (const [lang, byCom] of Object.entries(ratios)) {
    for (const [com, tox] of Object.entries(byCom)) {
      for (let k = 0; k < 10; k++) {
        const text = lang === "en"
          ? (k < tox ? "shit happens" : "what a nice day")
          : (k < tox ? "du bist ein arschloch" : "danke dir");
        st.add(comment(19000, text, com, lang), "x");
      }
    }
  }
  const table = st.topicTable();
  assertEquals(table.find((r) => r.topic === "politics" && r.language === "en")!.ratio, 0.5);
  const agree = st.topicAgreement(5)[0]!;
  const s = spearman([0.5, 0.1, 0.3, 0.2], [0.4, 0.2, 0.1, 0.3]); // order: a b c d
  assertEquals(agree.topics, 4);
  assertAlmostEquals(agree.spearman, s.rho, 1e-12);
  assertEquals(st.topicAgreement(11)[0]!.topics, 0);
});

Deno.test("bad rows: one sentence with file and line, or skipped and counted", async () => {
  const dir = await Deno.makeTempDir();
  const p = `${dir}/c.jsonl`;
  await Deno.writeTextFile(
    p,
    '{"body": "hi", "created_utc": 1609459200, "lang": "en"}\n{"body": "x", "created_utc": "soon", "lang": "en"}\n{oops\n{"created_utc": 1, "lang": "en"}\n{"body": "hallo", "created_utc": 1609459200, "lang": "xx"}\n',
  );
  await assertRejects(
    () => Array.fromAsync(readComments(p, FIELDS)),
    FormatError,
    `'${p}' line 2: timestamp "soon" in field 'created_utc' is not Unix seconds or an ISO 8601 date`,
  );
  const skipped: SkipCounts = {};
  const kept = await Array.fromAsync(readComments(p, FIELDS, { skipBadRows: true, skipped }));
  assertEquals(kept.length, 2);
  assertEquals(skipped, { "unparseable timestamp": 1, "malformed JSON": 1, "no 'body' text": 1 });
  const st = new ToxicityStats({ languages: ["en"] });
  st.add(kept[0]!, p);
  let err: unknown;
  try {
    st.add(kept[1]!, p);
  } catch (e) {
    err = e;
  }
  assert(
    err instanceof FormatError &&
      err.message === `'${p}' line 5: unknown language code 'xx' (expected en)`,
    String(err),
  );
  const lenient = new ToxicityStats({ languages: ["en"], skipBadRows: true });
  assertEquals(lenient.add(kept[1]!, p), false);
  assertEquals(lenient.skipped, { "unknown language": 1 });
  await Deno.writeTextFile(`${dir}/c.csv`, "text,created_utc\nhi,1\n");
  await assertRejects(
    () => Array.fromAsync(readComments(`${dir}/c.csv`, FIELDS)),
    FormatError,
    "missing column 'body'",
  );
  await assertRejects(
    () => Array.fromAsync(readComments(`${dir}/c.parquet`, FIELDS)),
    FormatError,
    "expected .csv, .tsv, .jsonl",
  );
});
