// scripts/truth_probes.ts end to end on real Geometry-of-Truth statements (read from ../shared):
// every table written, the hidden-state cache reused, the intervention leaves the blocks before
// the first edited one untouched; bad input fails in one sentence with no output.
import { assert, assertEquals } from "@std/assert";

const assertMatch = (s: string, re: RegExp, msg = "") =>
  assert(re.test(s), `${msg}: ${JSON.stringify(s)} does not match ${re}`);
import { runDeno } from "../_util.ts";

const CITIES = "../shared/data/truth_probes/geometry_of_truth/cities.csv";
const have = await Deno.stat(new URL(`../../${CITIES}`, import.meta.url)).then(
  () => true,
  () => false,
);

function run(tmp: string, args: string[]) {
  return runDeno([
    "run",
    "--no-prompt",
    `--allow-read=data,../shared/data,${tmp}`,
    `--allow-write=${tmp}`,
    "--allow-ffi=ffi/build",
    "--allow-env=LMKIT_BACKEND",
    "scripts/truth_probes.ts",
    "--cache",
    `${tmp}/cache`,
    ...args,
  ]);
}

Deno.test({
  name: "truth_probes.ts: tables, cache reuse, intervention only downstream of the edit",
  ignore: !have,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const args = [
        "--items",
        "24",
        "--methods",
        "lr,mmp,lm",
        "--edit-layers",
        "3-4",
        "--compress",
        "sparsegpt-2:4",
        "--out",
        `${tmp}/a`,
      ];
      const a = await run(tmp, args);
      assertEquals(a.code, 0, a.stderr);
      assertMatch(a.stdout, /best pos-prem probe accuracy \d\.\d{3}/);
      const ra = JSON.parse(await Deno.readTextFile(`${tmp}/a/results.json`));
      // 2 groups × (6 layers × 2 probes + the LM head) × 7 variants
      assertEquals(ra.accuracy.length, 2 * 13 * 7);
      assertEquals(ra.metrics.length, 2 * 13);
      assertEquals(ra.cosine.labels.length, 12);
      ra.cosine.matrix.forEach((row: number[], i: number) => assert(Math.abs(row[i]! - 1) < 1e-9));
      for (const r of ra.intervention) {
        if (r.layer <= 2) assertEquals([r.mean_dp, r.median_dp], [0, 0], `layer ${r.layer} moved`);
      }
      assert(
        ra.intervention.some((r: { layer: number; mean_dp: number }) =>
          r.layer >= 4 && r.mean_dp !== 0
        ),
      );
      for (
        const f of ["accuracy.csv", "metrics.csv", "intervention.csv", "report.md", "report.html"]
      ) {
        assert((await Deno.stat(`${tmp}/a/${f}`)).size > 100, f);
      }
      const b = await run(tmp, [...args.slice(0, -1), `${tmp}/b`]);
      assertEquals(b.code, 0, b.stderr);
      assertEquals((b.stderr.match(/: cached/g) ?? []).length, 14, b.stderr);
      // the compressed copy's table: dense and 2:4 rows per method, the copy really differs
      assertEquals(ra.compression.map((r: { model: string }) => r.model), [
        "dense",
        "dense",
        "dense",
        "sparsegpt-2:4",
        "sparsegpt-2:4",
        "sparsegpt-2:4",
      ]);
      assert(
        ra.compression[0].E3 !== ra.compression[3].E3 ||
          ra.compression[0].acc_pos_prem !== ra.compression[3].acc_pos_prem,
      );
      const rb = JSON.parse(await Deno.readTextFile(`${tmp}/b/results.json`));
      assertEquals(rb.accuracy, ra.accuracy);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test("truth_probes.ts refuses bad input in one sentence and writes nothing", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${tmp}/nolabel.csv`, "statement,premise\nA.,B.\n");
    await Deno.writeTextFile(`${tmp}/nopremise.csv`, "statement,label\nA.,1\nB.,0\nC.,1\nD.,0\n");
    for (
      const [args, want] of [
        [["--data", `${tmp}/nolabel.csv`], "missing column 'label'|no 'label'|label"],
        [["--data", `${tmp}/nopremise.csv`, "--items", "4"], "line 2: no premise"],
        [["--methods", "lr,svm"], "unknown method 'svm'"],
        [["--edit-layers", "5-9"], "--edit-layers '5-9'"],
        [["--compress", "sparsegpt-120"], "--compress: 'sparsegpt-120'"],
        [["--items", "2"], "--items"],
      ] as const
    ) {
      const r = await run(tmp, [...args, "--out", `${tmp}/out`]);
      assertEquals(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assertMatch(r.stderr, new RegExp(want), args.join(" "));
      assertEquals(r.stderr.trim().split("\n").filter((l) => l.startsWith("error:")).length, 1);
      assertEquals(
        await Deno.stat(`${tmp}/out`).then(() => true, () => false),
        false,
        "wrote output",
      );
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
