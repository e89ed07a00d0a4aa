// scripts/truth_probes.ts end to end on real Geometry-of-Truth statements (read from ../shared):
// every table written for the four training groups, the hidden-state cache reused (and a cached
// copy not compressed again), the intervention leaves the blocks before the first edited one
// untouched, SparseGPT and Sparse Expansion copies in the drift table; bad input fails in one
// sentence with no output.
import { assert, assertEquals } from "@std/assert";

const assertMatch = (s: string, re: RegExp, msg = "") =>
  assert(re.test(s), `${msg}: ${JSON.stringify(s)} does not match ${re}`);
import { runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

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
  name:
    "truth_probes.ts: four training groups, cache reuse, intervention only downstream of the edit, compressed copies",
  ignore: !have,
  async fn() {
    const tmp = await Deno.makeTempDir();
    try {
      const args = [
        "--items",
        "24",
        "--methods",
        "lr,mmp,ccr,lm",
        "--edit-layers",
        "3-4",
        "--compress",
        "sparsegpt-2:4,expand-50x2,gptq-3g64",
        "--calib-windows",
        "4",
        "--out",
        `${tmp}/a`,
      ];
      const a = await run(tmp, args);
      assertEquals(a.code, 0, a.stderr);
      assertMatch(a.stdout, /best pos-prem probe accuracy \d\.\d{3}/);
      const ra = JSON.parse(await Deno.readTextFile(`${tmp}/a/results.json`));
      // pos-prem and no-prem: 6 layers × 3 probes + the LM head; same and combined: the
      // unsupervised ones only (6 layers × CCR + the LM head); each evaluated on 7 variants
      const perGroup = { "pos-prem": 19, "no-prem": 19, same: 7, combined: 7 };
      assertEquals(ra.groups, Object.keys(perGroup));
      for (const [group, n] of Object.entries(perGroup)) {
        const ms = ra.metrics.filter((r: { group: string }) => r.group === group);
        assertEquals(ms.length, n, group);
        for (const r of ms) {
          for (const k of ["E3", "E4", "error_sv", "acc_pos_prem", "acc_no_prem"]) {
            assert(k in r, `${group} ${r.method} ${r.layer}: no ${k}`);
          }
        }
        assertEquals(
          ra.accuracy.filter((r: { group: string }) => r.group === group).length,
          n * 7,
          group,
        );
      }
      assertEquals(
        [
          ...new Set(
            ra.metrics.filter((r: { group: string }) => r.group === "same").map((
              r: { method: string },
            ) => r.method),
          ),
        ].sort(),
        ["ccr", "lm"],
        "same: the unsupervised probes only",
      );
      // same: each variant's row from the probe trained on it; combined: one train set
      for (const r of ra.accuracy) {
        if (r.group === "same") assertEquals(r.train, r.variant);
        if (r.group === "combined") assertEquals(r.train, "combined");
      }
      // the same-group probe trained on original_pos_prem is the pos-prem group's probe
      const acc = (g: string, v: string) =>
        ra.accuracy.filter((r: { group: string; method: string; variant: string }) =>
          r.group === g && r.method === "ccr" && r.variant === v
        ).map((r: { accuracy: number }) => r.accuracy);
      assertEquals(acc("same", "original_pos_prem"), acc("pos-prem", "original_pos_prem"));
      assertEquals(acc("same", "no_prem"), acc("no-prem", "no_prem"));
      // the combined set: the authors' recipe scaled to a train half of 12 items
      assertEquals(
        ra.combinedRecipe.map((p: { count: number; supervised: boolean }) => [
          p.count,
          p.supervised,
        ]),
        [[6, true], [6, false], [2, true], [2, true], [2, true], [2, true], [5, true]],
      );
      assertEquals(
        ra.best.map((b: { group: string; eval: string }) => `${b.group} ${b.eval}`),
        Object.keys(perGroup).flatMap((g) => [`${g} original_pos_prem`, `${g} no_prem`]),
      );
      for (const b of ra.best) assert(b.accuracy >= 0 && b.accuracy <= 1, JSON.stringify(b));
      assertMatch(a.stdout, /same \d\.\d{3} \(ccr layer \d\), combined \d\.\d{3} \(ccr layer \d\)/);
      assertEquals(ra.cosine.labels.length, 18);
      // CCR directions across the seven variants and the combined set, per layer
      assertEquals(ra.cosineVariants.length, 6);
      assertEquals(ra.cosineVariants[0].labels.length, 8);
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
        const f of [
          "accuracy.csv",
          "metrics.csv",
          "best.csv",
          "intervention.csv",
          "compression.csv",
          "report.md",
          "report.html",
        ]
      ) {
        assert((await Deno.stat(`${tmp}/a/${f}`)).size > 100, f);
      }
      await assertReport(`${tmp}/a`, [
        "accuracy-original_pos_prem",
        "accuracy-no_prem",
        ...["pos-prem", "no-prem", "same", "combined"].map((g) => `e-metrics-${g}`),
        "cosine-directions",
        "cosine-train-sets",
      ]);
      const b = await run(tmp, [...args.slice(0, -1), `${tmp}/b`]);
      assertEquals(b.code, 0, b.stderr);
      assertEquals((b.stderr.match(/: cached/g) ?? []).length, 28, b.stderr);
      assert(!/compressed in/.test(b.stderr), "a cached copy was compressed again");
      // the compressed copies' table: dense, 2:4 and Sparse Expansion rows per method, and
      // each copy really differs from the dense model
      const models = ["dense", "sparsegpt-2:4", "expand-50x2", "gptq-3g64"];
      assertEquals(
        ra.compression.map((r: { model: string; method: string }) => `${r.model} ${r.method}`),
        models.flatMap((m) => ["lr", "mmp", "ccr", "lm"].map((x) => `${m} ${x}`)),
      );
      const key = (r: Record<string, unknown>) => JSON.stringify([r.E3, r.acc_pos_prem, r.scale]);
      for (let i = 4; i < 16; i++) {
        assert(key(ra.compression[i]) !== key(ra.compression[i % 4]), `row ${i} = dense`);
      }
      assertMatch(await Deno.readTextFile(`${tmp}/a/report.md`), /\| expand-50x2 \| ccr \| 6 \|/);
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
        [["--compress", "expand-50x0"], "--compress: 'expand-50x0' is not"],
        [["--compress", "sparsegpt-50x4"], "--compress: 'sparsegpt-50x4' is not"],
        [["--compress", "wanda-50"], "--compress: 'wanda-50' is not"],
        [["--compress", "gptq-9g64"], "--compress: 'gptq-9g64' is not gptq-B"],
        [["--compress", "expand-3:5"], "--compress: 'expand-3:5x4' does not fit the model"],
        [["--compress", "expand-50x9999999"], "'expand-50x9999999' does not fit.*more experts"],
        [["--calib-windows", "0"], "--calib-windows"],
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
