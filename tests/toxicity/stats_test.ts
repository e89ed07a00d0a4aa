// Toxicity statistics: readers for JSONL, gzip and zstd (a fixture compressed by the zstd tool)
// give the same comments; aggregates, event windows, peaks, topic agreement and depth equal
// counts made here directly; bad rows fail with file and line or are skipped and counted. Exact
// sums against a BigInt reference; partial statistics of consecutive parts (real texts), merged
// through their bytes, equal one pass in every table to the last bit.
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { parseTime, readComments, type SkipCounts } from "../../lib/toxicity/comments.ts";
import { ToxicityStats } from "../../lib/toxicity/stats.ts";
import { spearman, twoProportionTest } from "../../lib/stats/tests.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import {
  decodePartial,
  encodePartial,
  exactAdd,
  exactMerge,
  exactValue,
} from "../../lib/toxicity/partial.ts";
import { SentimentScorer } from "../../lib/toxicity/sentiment.ts";
import { freshSeed } from "../_util.ts";
import { DAY0, realCommentLines } from "./_real_comments.ts";

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

// ---- exact sums and partial statistics (the merge behind toxicity_stats --dist) ----

/** The sum of `xs`, computed exactly with BigInt and rounded once (ties to even). */
function exactReference(xs: readonly number[]): number {
  const dv = new DataView(new ArrayBuffer(8));
  let s = 0n;
  for (const x of xs) {
    dv.setFloat64(0, x);
    const hi = dv.getUint32(0), lo = dv.getUint32(4);
    const exp = (hi >>> 20) & 0x7ff, frac = (BigInt(hi & 0xfffff) << 32n) | BigInt(lo);
    const m = exp === 0 ? frac : frac | (1n << 52n);
    const v = m << BigInt(Math.max(exp, 1) - 1); // in units of 2^-1074
    s += hi >>> 31 ? -v : v;
  }
  if (s === 0n) return 0;
  const neg = s < 0n, a = neg ? -s : s, bits = a.toString(2).length;
  const shift = Math.max(bits - 53, 0);
  let q = a >> BigInt(shift);
  if (shift > 0) {
    const r = a - (q << BigInt(shift)), half = 1n << BigInt(shift - 1);
    if (r > half || (r === half && (q & 1n) === 1n)) q++;
  }
  const v = Number(q) * 2 ** (shift - 1074);
  return neg ? -v : v;
}

Deno.test("exact sums: correctly rounded, the same for every order and split of the terms", () => {
  const rng = new Rng(freshSeed());
  for (let trial = 0; trial < 300; trial++) {
    const n = 1 + rng.int(60);
    const xs = Array.from({ length: n }, () => {
      switch (rng.int(4)) {
        case 0: // comparative sentiment: a valence sum over a word count
          return (rng.int(21) - 10) / (1 + rng.int(300));
        case 1:
          return (rng.uniform() - 0.5) * 2 ** (rng.int(80) - 40);
        case 2: // cancellation
          return rng.int(2) ? 1e16 : -1e16;
        default:
          return rng.uniform() * 1e-3;
      }
    });
    const want = exactReference(xs);
    const p: number[] = [];
    for (const x of xs) exactAdd(p, x);
    assertEquals(exactValue(p), want, `terms ${JSON.stringify(xs)}`);
    // another order, in three parts merged
    const shuffled = rng.shuffle([...xs]);
    const cut1 = rng.int(n + 1), cut2 = cut1 + rng.int(n - cut1 + 1);
    const parts = [shuffled.slice(0, cut1), shuffled.slice(cut1, cut2), shuffled.slice(cut2)]
      .map((ys) => {
        const q: number[] = [];
        for (const y of ys) exactAdd(q, y);
        return q;
      });
    const merged: number[] = [];
    for (const q of parts.reverse()) exactMerge(merged, q);
    assertEquals(exactValue(merged), want);
  }
  // the classic: naive summation gives 0
  const p: number[] = [];
  for (const x of [1e100, 1, -1e100, 1e-100]) exactAdd(p, x);
  assertEquals(exactValue(p), 1);
});

/** Every table of `st`, for comparison. */
function tables(st: ToxicityStats) {
  return {
    daily: st.daily(),
    weekly: st.weekly(),
    perDay: [...st.perDay()].map(([l, m]) => [l, [...m]]),
    events: st.events([{ event: "e", day: DAY0 + 30 }, { event: "f", day: DAY0 + 50 }], {
      replicates: 100,
      minDayComments: 5,
    }),
    topics: st.topicTable(),
    agreement: st.topicAgreement(20),
    depth: st.depthTable(),
    counted: st.counted,
    skipped: Object.entries(st.skipped),
  };
}

Deno.test("partial statistics of consecutive parts, merged in order through bytes, equal one pass to the last bit", async () => {
  const { lines, languages } = await realCommentLines(6000, 11, { only: ["en", "de", "es"] });
  // every fifth comment repeats an earlier id: the later one wins the reply tree, as in one pass
  const comments = lines.map((l, i) => {
    const v = JSON.parse(l);
    if (i % 5 === 4) v.id = `r${i - 3}`;
    if (i % 97 === 0) v.lang = "xx"; // skipped as unknown
    if (i % 89 === 0) delete v.id;
    return {
      line: i + 1,
      text: v.body,
      time: v.created_utc,
      community: v.subreddit,
      language: v.lang,
      ...(v.id === undefined ? {} : { id: v.id }),
      parent: v.parent_id,
    };
  });
  const topics = new Map(Array.from({ length: 40 }, (_, i) => [`r${i}`, `t${i % 7}`]));
  const options = { languages, depth: true, skipBadRows: true, topics };
  const whole = new ToxicityStats(options);
  for (const c of comments) whole.add(c, "x");
  const want = tables(whole);
  // parts of one comment first and in the middle
  for (const cuts of [[0, 1, 2999, 3000, 6000]]) {
    const parts = cuts.slice(1).map((end, k) => {
      const st = new ToxicityStats(options);
      for (const c of comments.slice(cuts[k]!, end)) st.add(c, "x");
      return st;
    });
    const [first, ...rest] = parts;
    for (const st of rest) {
      first!.mergePartial(decodePartial(encodePartial(st.toPartial(), null), "test").partial);
    }
    assertEquals(tables(first!), want, `cuts ${cuts}`);
    // to the last bit, NaN included
    const a = JSON.stringify(tables(first!), (_, v) => Object.is(v, -0) ? "-0" : v);
    assertEquals(a, JSON.stringify(want, (_, v) => Object.is(v, -0) ? "-0" : v));
  }
  // the test has teeth: summing each part's sentiments in floating point and adding the part
  // sums would change the last bits of some cells
  const naive = (from: number, to: number) => {
    const m = new Map<string, number>();
    for (const c of comments.slice(from, to)) {
      const k = `${c.language}/${Math.floor(c.time / 86400)}/${c.community}`;
      m.set(k, (m.get(k) ?? 0) + sentimentOf(c.text, c.language));
    }
    return m;
  };
  const one = naive(0, 6000), a = naive(0, 1), b = naive(1, 3000), c = naive(3000, 6000);
  let differ = 0;
  for (const [k, v] of one) {
    if (((a.get(k) ?? 0) + (b.get(k) ?? 0)) + (c.get(k) ?? 0) !== v) differ++;
  }
  assert(differ > 0, "naive part sums never differ on this data");
});

const scorers = new Map<string, SentimentScorer>();
function sentimentOf(text: string, language: string): number {
  let s = scorers.get(language);
  if (!s) {
    try {
      scorers.set(language, s = new SentimentScorer(language));
    } catch {
      return 0;
    }
  }
  return s.score(text).comparative;
}
