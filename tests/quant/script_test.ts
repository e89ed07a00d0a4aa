// scripts/quantize.ts end to end: a GPTQ run saved as compressed-tensors reloads to the same
// held-out score; RTN beats nothing it should not; bad options fail in one sentence before any
// work and leave no output.
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
  runDeno(["run", "--no-prompt", ...flags(tmp), "scripts/quantize.ts", ...args]);

Deno.test("quantize.ts: GPTQ saved as compressed-tensors reloads to the same bits/byte", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const r = await run(tmp, [
      ...["--methods", "gptq", "--bits", "4", "--groups", "64", "--act-order", "on"],
      ...["--calib-windows", "2", "--context", "64", "--names", "down_proj,o_proj"],
      ...["--save", `${tmp}/q`, "--format", "compressed-tensors", "--out", `${tmp}/out`],
    ]);
    assertEquals(r.code, 0, r.stderr);
    const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
    assertEquals(res.rows.map((x: { method: string }) => x.method), ["dense", "gptq"]);
    const [dense, q] = res.rows as { bitsPerByte: number; bytes: number }[];
    assert(q!.bytes < dense!.bytes, "the quantized model is smaller");
    assert(Math.abs(res.saved.bitsPerByte - q!.bitsPerByte) < 1e-5, JSON.stringify(res));
    for (const f of ["results.csv", "report.md", "report.html"]) {
      assert((await Deno.stat(`${tmp}/out/${f}`)).size > 0, f);
    }
    await assertReport(`${tmp}/out`, ["quality-vs-bits"]);
    const config = JSON.parse(await Deno.readTextFile(`${tmp}/q/config.json`));
    assertEquals(config.quantization_config.format, "pack-quantized");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("quantize.ts: bad options fail in one sentence, before any work, with no output", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const cases: [string[], string][] = [
      [["--bits", "9"], "error: --bits '9' is not an integer in [2, 8]"],
      [["--groups", "0"], "error: --groups has 0: expected -1 or a size ≥ 1"],
      [["--methods", "awq"], "error: --methods has 'awq': expected rtn or gptq"],
      [["--act-order", "maybe"], "error: --act-order has 'maybe': expected off or on"],
      [["--format", "exl2"], "error: --format 'exl2': expected gptq or compressed-tensors"],
      [["--names", "mlp"], "error: --names has 'mlp': expected projections among"],
      [["--nm", "4:2"], "error: --nm '4:2' is not N:M with 1 ≤ N < M"],
      [["--save", `${tmp}/q`], "error: --save needs exactly one configuration"],
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
