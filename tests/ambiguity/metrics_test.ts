// Scoring: scikit-learn's classification_report semantics on hand-built cases and fresh random
// labels (checked against counts computed another way), and on the released benchmark against
// the reference written by scikit-learn itself (fixtures/make_sklearn_reference.py).
import { assert, assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { loadAnswerSets } from "../../lib/ambiguity/benchmark.ts";
import {
  classificationReport,
  type Label,
  LABELS,
  reportByStyle,
  scoreItems,
} from "../../lib/ambiguity/metrics.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";
import { BENCHMARK, haveBenchmark } from "./_shared.ts";

const near = (a: number, b: number, msg?: string) =>
  assertAlmostEquals(a, b, 1e-12 * Math.max(1, Math.abs(b)), msg);

Deno.test("classification report of a hand-built case", () => {
  // truth: 3 de_dicto, 2 de_re; predictions include one "neither"
  const truth: Label[] = ["de_dicto", "de_dicto", "de_dicto", "de_re", "de_re"];
  const pred: Label[] = ["de_dicto", "de_re", "neither", "de_re", "de_dicto"];
  const r = classificationReport(truth, pred);
  // de_dicto: tp 1, predicted 2, support 3 → p 1/2, r 1/3, f1 2·(1/6)/(5/6) = 0.4
  near(r.classes.de_dicto.precision, 0.5);
  near(r.classes.de_dicto.recall, 1 / 3);
  near(r.classes.de_dicto.f1, 0.4);
  // de_re: tp 1, predicted 2, support 2 → p 1/2, r 1/2, f1 1/2
  assertEquals(r.classes.de_re, { precision: 0.5, recall: 0.5, f1: 0.5, support: 2 });
  // neither: no support, predicted once → all zero
  assertEquals(r.classes.neither, { precision: 0, recall: 0, f1: 0, support: 0 });
  near(r.accuracy, 0.4);
  near(r.macro.precision, 1 / 3);
  near(r.macro.f1, 0.3);
  near(r.weighted.recall, (3 * (1 / 3) + 2 * 0.5) / 5);
  assertEquals(r.confusion.de_dicto, { de_dicto: 1, de_re: 1, neither: 1 });
});

Deno.test("classification report on fresh random labels equals a direct count", () => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  for (const n of [1, 2, 7, 500]) {
    const truth = Array.from({ length: n }, () => LABELS[rng.int(2)]!);
    const pred = Array.from({ length: n }, () => LABELS[rng.int(3)]!);
    const r = classificationReport(truth, pred);
    let correct = 0;
    for (let i = 0; i < n; i++) if (truth[i] === pred[i]) correct++;
    near(r.accuracy, correct / n, `seed ${seed}`);
    for (const c of LABELS) {
      const tp = truth.filter((t, i) => t === c && pred[i] === c).length;
      const fp = truth.filter((t, i) => t !== c && pred[i] === c).length;
      const fn = truth.filter((t, i) => t === c && pred[i] !== c).length;
      // F1 as 2tp / (2tp + fp + fn), another way to the same number
      const f1 = 2 * tp + fp + fn === 0 ? 0 : (2 * tp) / (2 * tp + fp + fn);
      near(r.classes[c].f1, f1, `seed ${seed} class ${c}`);
    }
  }
});

Deno.test("mismatched lengths and unknown labels fail", () => {
  assertThrows(() => classificationReport(["de_re"], []), RangeError, "1 labels but 0 predictions");
  assertThrows(
    () => classificationReport(["de_re"], ["maybe" as Label]),
    RangeError,
    "Unknown label 'maybe'",
  );
});

Deno.test({
  name: "re-scoring the released answers: accuracies, agreement with the stored choices, sklearn",
  ignore: !haveBenchmark,
  fn: async () => {
    const ref = JSON.parse(
      await Deno.readTextFile(new URL("./fixtures/sklearn_reference.json", import.meta.url)),
    ).reports as Record<string, Record<string, unknown>>;
    const sets = await loadAnswerSets(`${BENCHMARK}benchmark`);
    assertEquals(sets.map((s) => s.name), ["chatgpt", "koala", "oasst"]);
    const acc: Record<string, number> = {};
    let checked = 0;
    for (const set of sets) {
      assertEquals(set.items.length, 1000);
      for (const st of reportByStyle(scoreItems(set.items))) {
        acc[`${set.name}/${st.style}`] = st.overall.accuracy;
        assertEquals(st.overall.disagreements, 0, `${set.name} ${st.style}`);
        const groups = { ...st.fragments, overall: st.overall };
        for (const [frag, g] of Object.entries(groups)) {
          const key = `${set.name}/${st.style}/${frag}`;
          const want = ref[key] as Record<string, Record<string, number>> & { accuracy: number };
          assert(want, `no reference for ${key}`);
          near(g.accuracy, want.accuracy, key);
          for (const c of LABELS) {
            for (
              const [ours, theirs] of [["precision", "precision"], ["recall", "recall"], [
                "f1",
                "f1-score",
              ]] as const
            ) {
              near(
                g.classes[c][ours],
                want[c]![theirs]!,
                `${key} ${c} ${ours}`,
              );
            }
            assertEquals(g.classes[c].support, want[c]!.support, key);
          }
          for (
            const [avg, theirs] of [["macro", "macro avg"], ["weighted", "weighted avg"]] as const
          ) {
            near(
              g[avg].f1,
              want[theirs]!["f1-score"]!,
              `${key} ${avg}`,
            );
          }
          const confusion = want.confusion as unknown as number[][];
          assertEquals(LABELS.map((t) => LABELS.map((p) => g.confusion[t][p])), confusion, key);
          checked++;
        }
      }
    }
    assertEquals(checked, 36);
    // the figures for chatgpt
    near(acc["chatgpt/direct"]!, 0.548);
    near(acc["chatgpt/step_by_step5"]!, 0.648);
  },
});
