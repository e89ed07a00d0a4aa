// toxicity_stats.ts and toxic_spans.ts end to end: outputs on success, one sentence and no
// output on bad input, skipped rows counted in the summary.
import { assert, assertEquals } from "@std/assert";
import { runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

const FIX = new URL("./fixtures/", import.meta.url).pathname;
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("toxicity_stats.ts: events, topics and depth from a zstd file; bad timestamps fail or are counted", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(
    `${tmp}/events.csv`,
    "event,date,language\nnew year,2021-01-20,\nderby,2021-02-01,de\n",
  );
  await Deno.writeTextFile(
    `${tmp}/topics.csv`,
    "community,topic\nnews,news\npics,images\npolitics,politics\n",
  );
  const base = [
    "run",
    "--no-prompt",
    `--allow-read=${FIX},${tmp}`,
    `--allow-write=${tmp}`,
    "scripts/toxicity_stats.ts",
  ];
  const args = [
    "--language-field",
    "lang",
    "--languages",
    "en,de,tr",
    "--events",
    `${tmp}/events.csv`,
    "--topics",
    `${tmp}/topics.csv`,
    "--min-topic-comments",
    "5",
    "--bootstrap",
    "50",
  ];
  let r = await runDeno([
    ...base,
    "--input",
    `${FIX}comments.jsonl.zst`,
    ...args,
    "--out",
    `${tmp}/out`,
  ]);
  assertEquals(r.code, 0, r.stderr);
  const summary = JSON.parse(await Deno.readTextFile(`${tmp}/out/summary.json`));
  assertEquals(summary.comments, 300);
  const events = (await Deno.readTextFile(`${tmp}/out/events.csv`)).trim().split("\n");
  assertEquals(events.length, 1 + 3 + 1); // new year × 3 languages, derby × de
  assert(r.stdout.includes("## Do languages rank topics alike?"));
  await assertReport(`${tmp}/out`, ["event-1", "event-2", "topic-language", "depth"]);
  // a bad timestamp: one sentence and nothing written; with --skip-bad-rows it is counted
  const bad = `${tmp}/bad.jsonl`;
  await Deno.writeTextFile(
    bad,
    (await Deno.readTextFile(`${FIX}comments.jsonl`)).replace(
      '"created_utc": 1609484400',
      '"created_utc": "tomorrow"',
    ),
  );
  r = await runDeno([...base, "--input", bad, ...args, "--out", `${tmp}/out2`]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    `error: '${bad}' line 2: timestamp "tomorrow" in field 'created_utc' is not Unix seconds or an ISO 8601 date`,
  );
  assertEquals(await exists(`${tmp}/out2`), false);
  r = await runDeno([...base, "--input", bad, ...args, "--skip-bad-rows", "--out", `${tmp}/out3`]);
  assertEquals(r.code, 0, r.stderr);
  const s3 = JSON.parse(await Deno.readTextFile(`${tmp}/out3/summary.json`));
  assertEquals([s3.comments, s3.skipped], [299, { "unparseable timestamp": 1 }]);
  await Deno.writeTextFile(`${tmp}/events.csv`, "event,date\nx,someday\n");
  r = await runDeno([...base, "--input", `${FIX}comments.jsonl`, ...args, "--out", `${tmp}/out4`]);
  assertEquals(
    r.stderr.trim(),
    `error: '${tmp}/events.csv' line 2: date 'someday' is not an ISO 8601 date`,
  );
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("toxic_spans.ts --quick writes every table; a malformed span list fails with file and line", async () => {
  const tmp = await Deno.makeTempDir();
  const flags = [
    "run",
    "--no-prompt",
    "--allow-read=data,../shared/data",
    `--allow-read=${tmp}`,
    `--allow-write=${tmp}`,
    "scripts/toxic_spans.ts",
  ];
  let r = await runDeno([...flags, "--quick", "--out", `${tmp}/out`]);
  assertEquals(r.code, 0, r.stderr);
  const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
  assert(res.inDomain.length >= 3, JSON.stringify(res.inDomain));
  assertEquals(res.cross.f1.length, res.cross.rows.length);
  assert(res.cross.cols.includes("semeval") && res.cross.cols.includes("acl"));
  for (const row of res.cross.f1) for (const v of row) assert(v >= 0 && v <= 1);
  // a broken copy of the data
  const data = `${tmp}/data`;
  await Deno.mkdir(`${data}/toxic_spans/semeval2021`, { recursive: true });
  await Deno.writeTextFile(
    `${data}/toxic_spans/semeval2021/tsd_train.csv`,
    'spans,text\n"[0, 1]",ab\n"[0 1]",ab\n',
  );
  r = await runDeno([...flags, "--data", data, "--out", `${tmp}/out2`]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    `error: '${data}/toxic_spans/semeval2021/tsd_train.csv' line 3: malformed span list '[0 1]' (expected a JSON list of character offsets)`,
  );
  assertEquals(await exists(`${tmp}/out2`), false);
  // a --shared folder that is not there: the run goes on without it and says why
  r = await runDeno([...flags, "--quick", "--shared", `${tmp}/none`, "--out", `${tmp}/out3`]);
  assertEquals(r.code, 0, r.stderr);
  const report = await Deno.readTextFile(`${tmp}/out3/report.md`);
  assert(
    report.includes(`'${tmp}/none' does not exist: HurtLex and OffensEval are left out.`),
    report.slice(0, 2000),
  );
  await Deno.remove(tmp, { recursive: true });
});
