// scripts/quik.ts end to end on the bundled model with a small calibration: every setting
// reported, QUIK-8B next to dense, the saved QUIK-4B reloads to identical logits; bad options fail
// in one sentence before any work and leave no output.
import { assert, assertEquals } from "@std/assert";
import { runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

const flags = (tmp: string) => [
  `--allow-read=data,${tmp}`,
  `--allow-write=${tmp}`,
  "--allow-ffi=ffi/build",
  "--allow-env=LMKIT_BACKEND",
];
const run = (tmp: string, args: string[]) =>
  runDeno(["run", "--no-prompt", ...flags(tmp), "scripts/quik.ts", ...args]);

Deno.test("quik.ts: every setting reported; the saved QUIK-4B reloads to identical logits", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const r = await run(tmp, [
      ...["--calib-windows", "2", "--context", "64", "--outlier-sweep", "0", "--no-clip"],
      ...["--save", `${tmp}/q`, "--out", `${tmp}/out`],
    ]);
    assertEquals(r.code, 0, r.stderr);
    const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
    type Row = { setting: string; outliers: string; bitsPerByte: number; paperPpl: number | "" };
    const rows = res.rows as Row[];
    assertEquals(rows.map((x) => x.setting), [
      "dense",
      "GPTQ W4A16 (per row, asym)",
      "QUIK-4B (int8 down_proj)",
      "QUIK-4B, down_proj 4-bit",
      "QUIK-8B",
      "QUIK-4B",
    ]);
    const [dense, , q4, all4, q8, none] = rows;
    assertEquals([dense!.paperPpl, q4!.paperPpl, all4!.paperPpl, q8!.paperPpl], [
      5.47,
      5.84,
      8.87,
      5.48,
    ]);
    assert(
      Math.abs(q8!.bitsPerByte - dense!.bitsPerByte) < 0.01 * dense!.bitsPerByte,
      "8-bit ≈ dense",
    );
    assert(q4!.bitsPerByte < all4!.bitsPerByte, "int8 down_proj helps");
    assertEquals(none!.outliers, "0 every layer");
    assert(q4!.bitsPerByte < none!.bitsPerByte, "outliers help");
    assertEquals(res.saved.identicalLogits, true);
    assert(Math.abs(res.saved.bitsPerByte - q4!.bitsPerByte) < 1e-5, JSON.stringify(res.saved));
    for (const f of ["results.csv", "report.md", "report.html"]) {
      assert((await Deno.stat(`${tmp}/out/${f}`)).size > 0, f);
    }
    await assertReport(`${tmp}/out`, ["change-vs-paper", "outlier-sweep"]);
    const config = JSON.parse(await Deno.readTextFile(`${tmp}/q/config.json`));
    assertEquals(config.quantization_config.quant_method, "quik");
    assertEquals(config.quantization_config.bits.down_proj, 8);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quik.ts: bad options fail in one sentence, before any work, with no output", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cases: [string[], string][] = [
      [["--outlier-sweep", "8,-1"], "error: --outlier-sweep '-1' is not an integer"],
      [["--outlier-fraction", "2"], "error: --outlier-fraction '2': expected 0 to 1"],
      [["--calib-windows", "0"], "error: --calib-windows '0' is not an integer"],
      [["--bits", "3"], "error: "],
      [["--model", `${tmp}/nowhere`], "does not exist"],
    ];
    for (const [args, msg] of cases) {
      const r = await run(tmp, [...args, "--out", `${tmp}/out`]);
      assertEquals(r.code, 1, args.join(" "));
      assert(r.stderr.trim().startsWith(msg.startsWith("error") ? msg : "error: "), r.stderr);
      assert(r.stderr.includes(msg.replace(/^error: /, "")), r.stderr);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    const left = [];
    for await (const e of Deno.readDir(tmp)) left.push(e.name);
    assertEquals(left, [], "no output files");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
