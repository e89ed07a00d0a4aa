// ambiguity_eval.ts and ambiguity_fragment.ts end to end: the released answers re-scored, a live
// run killed with SIGKILL and resumed against a scripted local server, and bad input failing in
// one sentence without partial reports.
import { assert, assertEquals } from "@std/assert";
import { itemRecord, loadItems } from "../../lib/ambiguity/benchmark.ts";
import { runDeno } from "../_util.ts";
import { startServer } from "./_server.ts";
import { DEFINITION, row, testItems } from "./_items.ts";
import { haveBenchmark } from "./_shared.ts";
import { assertReport } from "../report/_check.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const evalArgs = (
  flags: string[],
  args: string[],
) => ["run", "--no-prompt", ...flags, "scripts/ambiguity_eval.ts", ...args];

async function writeItems(dir: string, style: string, pairs: number) {
  await Deno.mkdir(dir, { recursive: true });
  const items = testItems(style, pairs);
  await Deno.writeTextFile(
    `${dir}/T1_T2_prompts_${style}.jsonl`,
    items.map((it) => JSON.stringify(itemRecord(it))).join("\n") + "\n",
  );
  return items;
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test({
  name: "ambiguity_eval.ts rescore: the released answers, report files, chatgpt 0.548 / 0.648",
  ignore: !haveBenchmark,
  fn: async () => {
    const tmp = await Deno.makeTempDir();
    const r = await runDeno(evalArgs(
      [`--allow-read=../shared/data/ambiguity,${tmp}`, `--allow-write=${tmp}`],
      ["rescore", "--out", `${tmp}/out`],
    ));
    assertEquals(r.code, 0, r.stderr);
    const csv = (await Deno.readTextFile(`${tmp}/out/metrics.csv`)).trim().split("\n");
    assertEquals(csv.length, 1 + 3 * 2 * 6);
    const acc = (model: string, style: string) =>
      Number(csv.find((l) => l.startsWith(`${model},${style},overall,`))!.split(",")[4]);
    assertEquals([acc("chatgpt", "direct"), acc("chatgpt", "step_by_step5")], [0.548, 0.648]);
    assert(r.stdout.includes("Parses that differ from the stored `results.choice`: 0."));
    await assertReport(`${tmp}/out`, ["accuracy"]);
    await Deno.remove(tmp, { recursive: true });
  },
});

Deno.test("ambiguity_eval.ts: a malformed line or an unknown style fails in one sentence, no report", async () => {
  const tmp = await Deno.makeTempDir();
  await writeItems(`${tmp}/bench`, "direct", 2);
  const f = `${tmp}/bench/T1_T2_prompts_direct.jsonl`;
  const lines = (await Deno.readTextFile(f)).split("\n");
  lines[1] = lines[1]!.slice(0, 30);
  await Deno.writeTextFile(f, lines.join("\n"));
  const flags = [`--allow-read=${tmp}`, `--allow-write=${tmp}`];
  let r = await runDeno(
    evalArgs(flags, ["rescore", "--benchmark", `${tmp}/bench`, "--out", `${tmp}/out`]),
  );
  assertEquals(r.code, 1);
  assert(r.stderr.startsWith(`error: Cannot parse '${f}' line 2: `), r.stderr);
  assertEquals(r.stderr.trim().split("\n").length, 1);
  await writeItems(`${tmp}/bench`, "direct", 2);
  r = await runDeno(
    evalArgs(flags, [
      "rescore",
      "--benchmark",
      `${tmp}/bench`,
      "--styles",
      "cot",
      "--out",
      `${tmp}/out`,
    ]),
  );
  assertEquals(
    r.stderr.trim(),
    "error: --styles: unknown prompt style 'cot' (expected direct, step_by_step5)",
  );
  r = await runDeno(
    evalArgs(flags, ["rescore", "--benchmark", `${tmp}/bench`, "--out", `${tmp}/out`]),
  );
  assertEquals(r.stderr.trim(), `error: '${f}' line 1: the item has no responses`);
  assertEquals(await exists(`${tmp}/out`), false);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("ambiguity_eval.ts live: killed with SIGKILL mid-run, resumed without asking twice", async () => {
  const tmp = await Deno.makeTempDir();
  const items = await writeItems(`${tmp}/bench`, "direct", 10);
  const s = startServer();
  s.delayMs = 40;
  const answers = `${tmp}/out/answers-tiny.jsonl`;
  const args = evalArgs(
    [`--allow-read=${tmp}`, `--allow-write=${tmp}`, `--allow-net=127.0.0.1:${s.port}`],
    [
      "live",
      "--base-url",
      s.baseUrl,
      "--model",
      "tiny",
      "--benchmark",
      `${tmp}/bench`,
      "--out",
      `${tmp}/out`,
      "--concurrency",
      "2",
      "--backoff-ms",
      "1",
    ],
  );
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    })
      .spawn();
    const lines = async () =>
      (await Deno.readTextFile(answers).catch(() => "")).split("\n").filter((l) => l).length;
    for (let i = 0; i < 600 && (await lines()) < 4; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill("SIGKILL");
    await child.status;
    const kept = await lines();
    assert(kept >= 4 && kept < 20, `kept ${kept}`);
    // a write cut off by the kill leaves an unterminated line: simulate one
    await Deno.writeTextFile(answers, '{"id": "T1_T2/dir', { append: true });
    const before = s.requests.length;
    s.delayMs = 0;
    // the answers are in the --out folder, so resuming there writes over it: asked for
    const refused = await runDeno(args);
    assertEquals(refused.code, 1);
    assert(refused.stderr.includes("add --overwrite"), refused.stderr);
    const r = await runDeno([...args, "--overwrite"]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes(`20 items, ${kept} already in ${answers}`), r.stderr);
    assert(r.stderr.includes("dropped an incomplete last line (17 bytes)"), r.stderr);
    assertEquals(s.requests.length - before, 20 - kept);
    const ids = (await Deno.readTextFile(answers)).trim().split("\n").map((l) => JSON.parse(l).id);
    assertEquals(ids.slice().sort(), items.map((it) => it.id).sort());
    // the server always says "Option 1": accuracy is the share of items whose answer is option 1
    const metrics = JSON.parse(await Deno.readTextFile(`${tmp}/out/metrics.json`));
    assertEquals(
      metrics[0].styles[0].overall.accuracy,
      items.filter((it) => it.labelNr === 1).length / 20,
    );
    // an uninterrupted run into a new --out: its own answers there do not block its report
    const fresh = args.map((a) => a === `${tmp}/out` ? `${tmp}/fresh` : a);
    const f = await runDeno(fresh);
    assertEquals(f.code, 0, f.stderr);
    assert(await exists(`${tmp}/fresh/answers-tiny.jsonl`));
    assertEquals(JSON.parse(await Deno.readTextFile(`${tmp}/fresh/metrics.json`)), metrics);
  } finally {
    await s.close();
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("ambiguity_eval.ts live: no --allow-net, or an unreachable endpoint, fail in one sentence", async () => {
  const tmp = await Deno.makeTempDir();
  await writeItems(`${tmp}/bench`, "direct", 2);
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const live = [
    "live",
    "--base-url",
    `http://127.0.0.1:${port}/v1`,
    "--model",
    "m",
    "--benchmark",
    `${tmp}/bench`,
    "--out",
    `${tmp}/out`,
    "--retries",
    "1",
    "--backoff-ms",
    "1",
  ];
  let r = await runDeno(evalArgs([`--allow-read=${tmp}`, `--allow-write=${tmp}`], live));
  assertEquals(r.code, 1);
  assert(
    r.stderr.startsWith(`error: ambiguity_eval.ts needs --allow-net=127.0.0.1:${port}`),
    r.stderr,
  );
  r = await runDeno(
    evalArgs(
      [`--allow-read=${tmp}`, `--allow-write=${tmp}`, `--allow-net=127.0.0.1:${port}`],
      live,
    ),
  );
  assertEquals(r.code, 1);
  const last = r.stderr.trim().split("\n").pop()!;
  assert(
    last.startsWith(`error: http://127.0.0.1:${port}/v1/chat/completions: cannot connect`),
    last,
  );
  assert(
    last.endsWith(
      `(2 attempts); 0 of 4 answers are kept in '${tmp}/out/answers-m.jsonl' and a rerun resumes from there`,
    ),
    last,
  );
  assertEquals(await exists(`${tmp}/out/report.md`), false);
  await Deno.remove(tmp, { recursive: true });
});

const YAML = `name: mayor birth place
query: "SELECT ?entity ?entityLabel WHERE {
  ?entity p:P6 ?s.
}"
datetime_strf: "%B %Y"
explicit_regularity: ${DEFINITION.explicit_regularity}
entity_relation_string: "${DEFINITION.entity_relation_string}"
relation_property_string: "${DEFINITION.relation_property_string}"
question_strings:
  - "${DEFINITION.question_strings[0]}"
interpretation_strings:
  - de_dicto: "${DEFINITION.interpretation_strings[0]!.de_dicto}"
    de_re: "${DEFINITION.interpretation_strings[0]!.de_re}"
`;

Deno.test("ambiguity_fragment.ts builds loadable items from YAML and SPARQL JSON; bad results fail", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(`${tmp}/T1_T2.yaml`, YAML);
  const rows = Array.from({ length: 6 }, (_, k) => [
    row(`Town${k}`, `Anna${k}`, "Lyon", "1990-01-01", "1995-06-30"),
    row(`Town${k}`, `Bert${k}`, "Graz", "2001-03-01", "2010-12-31"),
  ]).flat();
  const vars = [
    "entityLabel",
    "relationLabel",
    "property",
    "propertyLabel",
    "startTimeLabel",
    "endTimeLabel",
  ];
  const bindings = rows.map((r) => ({
    entityLabel: { type: "literal", value: r.entityLabel },
    relationLabel: { type: "literal", value: r.relationLabel },
    property: { type: "uri", value: r.property },
    propertyLabel: { type: "literal", value: r.propertyLabel },
    startTimeLabel: { type: "literal", value: r.startTime },
    endTimeLabel: { type: "literal", value: r.endTime },
  }));
  await Deno.writeTextFile(
    `${tmp}/r.json`,
    JSON.stringify({ head: { vars }, results: { bindings } }),
  );
  const flags = [
    "run",
    "--no-prompt",
    `--allow-read=${tmp}`,
    `--allow-write=${tmp}`,
    "scripts/ambiguity_fragment.ts",
  ];
  let r = await runDeno([
    ...flags,
    "--definition",
    `${tmp}/T1_T2.yaml`,
    "--results",
    `${tmp}/r.json`,
    "--sample",
    "8",
    "--out",
    `${tmp}/out`,
  ]);
  assertEquals(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assertEquals([summary.pairs, summary.items, summary.rows], [6, 8, 12]);
  for (const style of ["direct", "step_by_step5"]) {
    const items = await loadItems(`${tmp}/out/T1_T2_prompts_${style}.jsonl`);
    assertEquals(items.length, 8);
    assertEquals(items.filter((i) => i.labelName === "de_re").length, 4);
    assert(items.every((i) => i.fragment === "T1_T2" && i.style === style));
  }
  await Deno.writeTextFile(
    `${tmp}/bad.json`,
    JSON.stringify({ head: { vars: vars.slice(0, 5) }, results: { bindings } }),
  );
  r = await runDeno([
    ...flags,
    "--definition",
    `${tmp}/T1_T2.yaml`,
    "--results",
    `${tmp}/bad.json`,
    "--out",
    `${tmp}/out2`,
  ]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    `error: '${tmp}/bad.json': the results have no variable 'endTimeLabel' (they have ${
      vars.slice(0, 5).join(", ")
    })`,
  );
  assertEquals(await exists(`${tmp}/out2`), false);
  await Deno.remove(tmp, { recursive: true });
});
