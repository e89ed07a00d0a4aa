// Runs: each run writes its own folder out/<script>/<run-id>/, says where, leaves nothing when it
// fails, and never overwrites an earlier run unless --overwrite is given.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { runFolder, runId, settleRunFolders } from "../../lib/core/run_folder.ts";
import { runDeno } from "../_util.ts";

Deno.test("runId is the UTC start time; runs in the same second get -2, -3", async () => {
  assertEquals(runId(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), "20260102-030405");
  const root = await Deno.makeTempDir();
  try {
    const now = new Date(Date.UTC(2026, 11, 8, 23, 59, 59));
    const got = [];
    for (let i = 0; i < 3; i++) got.push(await runFolder("s", { root, now, announce: false }));
    assertEquals(got, [
      `${root}/s/20261208-235959`,
      `${root}/s/20261208-235959-2`,
      `${root}/s/20261208-235959-3`,
    ]);
    await settleRunFolders(true);
    // a failed run's empty folder goes; one it wrote into stays (e.g. a live run's answers)
    const failed = await runFolder("s", { root, now, announce: false });
    const wrote = await runFolder("s", { root, now, announce: false });
    await Deno.writeTextFile(`${wrote}/answers.jsonl`, "{}\n");
    await settleRunFolders(false);
    await assertRejects(() => Deno.stat(failed), Deno.errors.NotFound);
    assert(Deno.statSync(`${wrote}/answers.jsonl`).isFile);
    assertEquals([...Deno.readDirSync(`${root}/s`)].length, 4);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a chosen --out must be new or empty unless overwrite; a file is refused", async () => {
  const root = await Deno.makeTempDir();
  try {
    assertEquals(await runFolder("s", { out: `${root}/a/`, announce: false }), `${root}/a`);
    await Deno.writeTextFile(`${root}/a/report.md`, "# old\n");
    await Deno.writeTextFile(`${root}/a/.lmkit-lock-1-1765000000000`, ""); // lmkit's own: ignored
    const e = await assertRejects(
      () => runFolder("s", { out: `${root}/a`, announce: false }),
      Deno.errors.AlreadyExists,
    );
    assertEquals(
      e.message,
      `--out '${root}/a' already holds files (report.md): choose a new folder, or add --overwrite to write over them`,
    );
    assertEquals(
      await runFolder("s", { out: `${root}/a`, overwrite: true, announce: false }),
      `${root}/a`,
    );
    await assertRejects(
      () => runFolder("s", { out: `${root}/a/report.md`, announce: false }),
      Deno.errors.AlreadyExists,
      "is a file, not a folder",
    );
    await settleRunFolders(true);
    assert(Deno.statSync(`${root}/a/report.md`).isFile); // never removed
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a script's runs each get a folder under out/<script>/, and --out is not overwritten", async () => {
  const cwd = await Deno.makeTempDir();
  const root = new URL("../../", import.meta.url).pathname;
  const script = `${root}scripts/tokenizer_stats.ts`;
  const flags = [
    "run",
    "--config",
    `${root}deno.json`,
    "--no-prompt",
    "--allow-read",
    `--allow-write=${cwd}`,
  ];
  const args = ["--data", `${root}data/multilingual_text/ud_pud`, "--languages", "en"];
  const small = [...args, "--tokenizers", "bytes", "--limit", "5"];
  try {
    const runs = [];
    for (let i = 0; i < 2; i++) {
      const r = await runDeno([...flags, script, ...small], { cwd });
      assertEquals(r.code, 0, r.stderr);
      const said = /output folder: (\S+)/.exec(r.stderr);
      assert(said, r.stderr);
      runs.push(said[1]!);
    }
    assert(/^out\/tokenizer_stats\/\d{8}-\d{6}(-\d+)?$/.test(runs[0]!), runs[0]);
    assert(runs[0] !== runs[1], "two runs wrote one folder");
    for (const d of runs) assert(Deno.statSync(`${cwd}/${d}/report.md`).isFile);
    // a chosen --out: the second run is refused before any work, then --overwrite is honoured
    const out = ["--out", `${cwd}/mine`];
    assertEquals((await runDeno([...flags, script, ...small, ...out], { cwd })).code, 0);
    const again = await runDeno([...flags, script, ...small, ...out], { cwd });
    assertEquals(again.code, 1);
    assert(again.stderr.includes(`--out '${cwd}/mine' already holds files`), again.stderr);
    const over = await runDeno([...flags, script, ...small, ...out, "--overwrite"], { cwd });
    assertEquals(over.code, 0, over.stderr);
    // a failing run leaves no folder behind
    const bad = await runDeno([...flags, script, ...args, "--tokenizers", "nope"], { cwd });
    assertEquals(bad.code, 1);
    assertEquals([...Deno.readDirSync(`${cwd}/out/tokenizer_stats`)].length, 2);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
