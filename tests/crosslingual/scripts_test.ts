// tokenizer_stats.ts and transfer_factors.ts end to end: figures recomputed here by plain
// counting or known coefficients, and bad input failing in one sentence with no output.
import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { parse } from "@std/csv";
import { runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("tokenizer_stats.ts: chars fertility equals code points per UD word, counted here", async () => {
  const tmp = await Deno.makeTempDir();
  const r = await runDeno([
    "run",
    "--no-prompt",
    "--allow-read=data",
    `--allow-read=${tmp}`,
    `--allow-write=${tmp}`,
    "scripts/tokenizer_stats.ts",
    "--languages",
    "en,zh,th",
    "--tokenizers",
    "bytes,chars,cl100k",
    "--limit",
    "20",
    "--out",
    tmp,
  ]);
  assertEquals(r.code, 0, r.stderr);
  const rows = parse(await Deno.readTextFile(`${tmp}/stats.csv`), { skipFirstRow: true }) as Record<
    string,
    string
  >[];
  assertEquals(rows.length, 3 * 3 * 2);
  for (const lang of ["en", "zh", "th"]) {
    const lines =
      (await Deno.readTextFile(`${ROOT}data/multilingual_text/ud_pud/pud_${lang}.jsonl`))
        .trim().split("\n").slice(0, 20).map((l) =>
          JSON.parse(l) as { text: string; words: string[] }
        );
    let cps = 0, words = 0, bytes = 0;
    for (const s of lines) {
      cps += Array.from(s.text).length;
      bytes += new TextEncoder().encode(s.text).length;
      words += s.words.length;
    }
    const row = (tok: string) =>
      rows.find((x) => x.tokenizer === tok && x.language === lang && x.form === "native")!;
    assertAlmostEquals(Number(row("chars").fertility), cps / words, 1e-12, lang);
    assertAlmostEquals(Number(row("bytes").fertility), bytes / words, 1e-12, lang);
    assert(Number(row("cl100k").fertility) < Number(row("bytes").fertility), lang);
  }
  assertEquals(rows.find((x) => x.language === "zh")!.main_script, "Han");
  assertEquals(
    rows.find((x) => x.language === "zh" && x.form === "romanised")!.main_script,
    "Latin",
  );
  const overlap = (await Deno.readTextFile(`${tmp}/overlap.csv`)).trim().split("\n");
  assertEquals(overlap.length, 1 + 3 * 2 * 3);
  await assertReport(tmp, ["fertility-native", "fertility-romanised", "romanised-over-native"]);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("tokenizer_stats.ts: a language with no text or an unknown tokenizer fails in one sentence", async () => {
  const tmp = await Deno.makeTempDir();
  const run = (extra: string[]) =>
    runDeno([
      "run",
      "--no-prompt",
      "--allow-read=data",
      `--allow-read=${tmp}`,
      `--allow-write=${tmp}`,
      "scripts/tokenizer_stats.ts",
      "--out",
      `${tmp}/o`,
      ...extra,
    ]);
  let r = await run(["--languages", "en,am", "--tokenizers", "chars"]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    "error: No text for language 'am': 'data/multilingual_text/ud_pud/pud_am.jsonl' does not exist (have: ar, de, en, es, hi, ko, ru, th, tr, zh)",
  );
  r = await run(["--languages", "en", "--tokenizers", "chars,gpt5"]);
  assert(r.stderr.startsWith("error: Unknown tokenizer 'gpt5'"), r.stderr);
  assertEquals(await exists(`${tmp}/o`), false);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("transfer_factors.ts recovers known coefficients; a missing value fails with file, line and column", async () => {
  const tmp = await Deno.makeTempDir();
  const fert: Record<string, number> = { de: 1.6, ru: 2.9, zh: 2.3, es: 1.4, ar: 3.2, hi: 4.6 };
  const params: Record<string, number> = { m1: 110, m2: 340, m3: 560 };
  const scripts: Record<string, string> = {
    de: "Latin",
    es: "Latin",
    ru: "Cyrillic",
    zh: "Han",
    ar: "Arabic",
    hi: "Devanagari",
  };
  let csv = "model,source,target,task,score\n";
  for (const m of Object.keys(params)) {
    for (const t of Object.keys(fert)) {
      const match = scripts[t] === "Latin" ? 1 : 0;
      csv += `${m},en,${t},ner,${0.9 - 0.1 * fert[t]! + 0.0002 * params[m]! + 0.05 * match}\n`;
    }
  }
  await Deno.writeTextFile(`${tmp}/results.csv`, csv);
  await Deno.writeTextFile(
    `${tmp}/tok.csv`,
    "language,fertility\n" + Object.entries(fert).map(([l, f]) => `${l},${f}`).join("\n") + "\n",
  );
  await Deno.writeTextFile(
    `${tmp}/size.csv`,
    "model,params\n" + Object.entries(params).map(([m, p]) => `${m},${p}`).join("\n") + "\n",
  );
  const flags = [
    "run",
    "--no-prompt",
    "--allow-read=data",
    `--allow-read=${tmp}`,
    `--allow-write=${tmp}`,
    "scripts/transfer_factors.ts",
  ];
  const args = [
    "--results",
    `${tmp}/results.csv`,
    "--factor-tables",
    `${tmp}/tok.csv,${tmp}/size.csv`,
    "--factors",
    "fertility,params,script_match",
    "--bootstrap",
    "50",
  ];
  let r = await runDeno([...flags, ...args, "--out", `${tmp}/out`]);
  assertEquals(r.code, 0, r.stderr);
  const fit = JSON.parse(await Deno.readTextFile(`${tmp}/out/fit.json`));
  assertEquals(fit.n, 18);
  [-0.1, 0.0002, 0.05].forEach((b, j) => assertAlmostEquals(fit.coefficients[j], b, 1e-9));
  assertAlmostEquals(fit.r2, 1, 1e-12);
  assertAlmostEquals(fit.lmg.reduce((s: number, v: number) => s + v, 0), 1, 1e-12);
  assert(r.stdout.includes("en Latin") && r.stdout.includes("zh Han"), r.stdout);
  await Deno.writeTextFile(`${tmp}/size.csv`, "model,params\nm1,110\nm2,\nm3,560\n");
  r = await runDeno([...flags, ...args, "--out", `${tmp}/out2`]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    `error: '${tmp}/size.csv' line 3: missing value in column 'params'`,
  );
  assertEquals(await exists(`${tmp}/out2`), false);
  await Deno.remove(tmp, { recursive: true });
});
