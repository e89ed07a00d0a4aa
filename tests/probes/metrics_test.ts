// The context-sensitivity metrics and their aggregates on hand-computed cases and on predictions
// with planted premise effects.
import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import {
  aggregate,
  authorsColumns,
  contextErrors,
  contextMetrics,
  mean,
  median,
  numpyPercentile,
  trimMean,
} from "../../lib/probes/mod.ts";

const close = (a: ArrayLike<number>, b: number[], tol = 1e-12) => {
  assertEquals(a.length, b.length);
  for (let i = 0; i < b.length; i++) assertAlmostEquals(a[i]!, b[i]!, tol, `[${i}]`);
};

Deno.test("per-item errors E1–E4, E3+4 and error_sv by hand", () => {
  const p = {
    noPrem: [0.5, 0.5, 0.25],
    originalPos: [0.75, 0.25, 0.5], // PE = +0.25, −0.25, +0.25
    originalNeg: [0.25, 0.375, 0.75],
    randomPos: [0.625, 0.5, 0],
    randomNeg: [0.5, 0.25, 0.25],
    shufflePos: [0, 1, 0.25],
  };
  const y = [1, 1, 0];
  const e = contextErrors(p, y);
  close(e.premiseEffect, [0.25, -0.25, 0.25]);
  close(e.e1Pos!, [0.5, 0, 1]); // |p_r − p_h| / |PE|
  close(e.e1Neg!, [0, 1, 0]);
  close(e.e2Pos!, [2, 2, 0]);
  assertEquals(e.e2Neg, null);
  // E3 = max(0, (p₋ − p_h)/PE): (−0.25/0.25) → 0, (−0.125/−0.25) = 0.5, (0.5/0.25) = 2
  close(e.e3, [0, 0.5, 2]);
  // E4 = |p₋ − p₊| / |PE|: 0.5/0.25, 0.125/0.25, 0.25/0.25
  close(e.e4, [2, 0.5, 1]);
  close(e.e34, [2, 1, 3]);
  // error_sv: y = 1 with PE < 0 (item 1) and y = 0 with PE > 0 (item 2) are errors
  close(e.errorSv1, [0, 0.25, 0]);
  close(e.errorSv0, [0, 0, 0.25]);
  close(e.errorSv, [0, 0.25, 0.25]);
});

Deno.test("aggregated metrics by hand: E1 averages the asserted and negated variants, accuracies, mean p", () => {
  const p = {
    noPrem: [0.5, 0.5, 0.25],
    originalPos: [0.75, 0.25, 0.5],
    originalNeg: [0.25, 0.375, 0.75],
    randomPos: [0.625, 0.5, 0],
    randomNeg: [0.5, 0.25, 0.25],
  };
  const m = contextMetrics(p, [1, 1, 0]);
  // E1 pos = [0.5, 0, 1] (mean 0.5, median 0.5), E1 neg = [0, 1, 0] (mean 1/3, median 0)
  assertAlmostEquals(m.e1!.mean, (0.5 + 1 / 3) / 2, 1e-15);
  assertEquals(m.e1!.median, 0.25);
  // n = 3: trim cuts ⌊0.6⌋ = 0, so trimmed mean = mean; percentiles at positions 0.4 and 1.6
  assertAlmostEquals(m.e1!.trimMean, m.e1!.mean, 1e-15);
  assertAlmostEquals(m.e1!.p20, (0.2 + 0) / 2, 1e-15);
  assertAlmostEquals(m.e1!.p80, (0.5 + 0.6 * 0.5 + 0.6) / 2, 1e-15);
  assertEquals(m.e2, null);
  assertAlmostEquals(m.e3.mean, 2.5 / 3, 1e-15);
  assertEquals([m.e3.median, m.e4.median, m.e34.median], [0.5, 1, 2]);
  assertAlmostEquals(m.errorSv, 0.5 / 3, 1e-15);
  assertAlmostEquals(m.premiseSensitivity, 0.25, 1e-15);
  assertAlmostEquals(m.meanPremiseEffect, 0.25 / 3, 1e-15);
  assertAlmostEquals(m.relErrorSv, (0.5 / 3) / 0.25, 1e-15);
  // p₊ > 0.5 = [yes, no, no] vs y [1, 1, 0] → 2/3; p_h > 0.5 = [no, no, no] → 1/3
  assertAlmostEquals(m.accuracyPosPrem, 2 / 3, 1e-15);
  assertAlmostEquals(m.accuracyNoPrem, 1 / 3, 1e-15);
  assertEquals(m.meanP, {
    posPremTrue: 0.5,
    posPremFalse: 0.5,
    negPremTrue: 0.3125,
    negPremFalse: 0.75,
    noPrem: 1.25 / 3,
  });
  const cols = authorsColumns(m);
  assertEquals(cols["median_error_1"], 0.25);
  assertEquals(cols["mean_error_2"], undefined);
  assertEquals(cols["p(h|-p;c)"], 0.75);
  assertEquals(Object.keys(cols).length, 4 * 5 + 1 + 5 + 7);
});

Deno.test("analysis.md test vector: p₋ = p_h gives E3 = 0 and E4 = 1", () => {
  const e = contextErrors(
    { noPrem: [0.4, 0.7], originalPos: [0.9, 0.2], originalNeg: [0.4, 0.7] },
    [
      1,
      0,
    ],
  );
  close(e.e3, [0, 0]);
  close(e.e4, [1, 1]);
});

Deno.test("planted premise effects are recovered exactly: ideal premises, inert random / shuffled premises, negation", () => {
  // y = 1 items move up by 0.3 with the premise, y = 0 items down; random premises change
  // nothing (E1 = 0), shuffled premises move by a tenth of PE (E2 = 0.1), the negated premise
  // pushes back by half of PE (E3 = 0, E4 = 1.5); no supervised error
  const n = 40, y = Array.from({ length: n }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
  const h = y.map((_, i) => 0.4 + 0.005 * i);
  const pe = y.map((yi) => (yi ? 0.3 : -0.3));
  const m = contextMetrics({
    noPrem: h,
    originalPos: h.map((v, i) => v + pe[i]!),
    originalNeg: h.map((v, i) => v - 0.5 * pe[i]!),
    randomPos: h,
    randomNeg: h,
    shufflePos: h.map((v, i) => v + 0.1 * pe[i]!),
    shuffleNeg: h.map((v, i) => v - 0.1 * pe[i]!),
  }, y);
  for (const k of ["mean", "median", "trimMean", "p20", "p80"] as const) {
    assertAlmostEquals(m.e1![k], 0, 1e-12, `E1 ${k}`);
    assertAlmostEquals(m.e2![k], 0.1, 1e-12, `E2 ${k}`);
    assertEquals(m.e3[k], 0, `E3 ${k}`);
    assertAlmostEquals(m.e4[k], 1.5, 1e-12, `E4 ${k}`);
    assertAlmostEquals(m.e34[k], 1.5, 1e-12, `E3+4 ${k}`);
  }
  assertEquals(m.errorSv, 0);
  assertEquals(m.relErrorSv, 0);
  assertAlmostEquals(m.premiseSensitivity, 0.3, 1e-12);
  assertEquals(m.accuracyPosPrem, 1);
  // the wrong-way negation: p₋ moves with the premise by 0.8·PE → E3 = 0.8, E4 = 0.2
  const w = contextErrors({
    noPrem: h,
    originalPos: h.map((v, i) => v + pe[i]!),
    originalNeg: h.map((v, i) => v + 0.8 * pe[i]!),
  }, y);
  close(w.e3, new Array(n).fill(0.8));
  close(w.e4, new Array(n).fill(0.2));
});

Deno.test("zero premise effect: ±∞ and NaN per item as in numpy, aggregates follow numpy", () => {
  const m = contextMetrics({
    noPrem: [0.5, 0.5],
    originalPos: [0.5, 0.75],
    originalNeg: [0.5, 0.5],
    randomPos: [0.75, 0.5],
    randomNeg: [0.5, 0.5],
  }, [1, 0]);
  assertEquals(Array.from(m.items.e1Pos!), [Infinity, 0]);
  assertEquals(Array.from(m.items.e1Neg!), [NaN, 0]); // 0/0
  assertEquals(Array.from(m.items.e3), [NaN, 0]);
  assertEquals(Array.from(m.items.e4), [NaN, 1]);
  // E1 = pandas mean of the two variants' aggregates, skipping the NaN one
  assertEquals(m.e1!.mean, Infinity);
  assertEquals(m.e1!.median, Infinity);
  assertEquals(m.e3.mean, NaN);
});

Deno.test("aggregates by hand: median, numpy percentile, scipy trim_mean (⌊0.2·n⌋ cut)", () => {
  assertEquals(median([5, 1, 3]), 3);
  assertEquals(median([5, 1, 3, 2]), 2.5);
  assertEquals(mean([1, 2, 3, 10]), 4);
  assertEquals(numpyPercentile([4, 1, 3, 2], 0), 1);
  assertEquals(numpyPercentile([4, 1, 3, 2], 100), 4);
  assertAlmostEquals(numpyPercentile([4, 1, 3, 2], 20), 1.6, 1e-15); // position 0.6
  assertAlmostEquals(numpyPercentile([4, 1, 3, 2], 80), 3.4, 1e-15); // position 2.4
  assertEquals(numpyPercentile([7], 20), 7);
  assertEquals(trimMean([1, 2, 3, 100]), 26.5); // ⌊0.8⌋ = 0: nothing cut
  assertEquals(trimMean([1, 2, 3, 4, 100]), 3); // ⌊1.0⌋ = 1
  assertEquals(trimMean([NaN, 1, 2, 3, 4]), 3); // NaN sorts last and is cut
  assertEquals(numpyPercentile([NaN, 1], 50), NaN);
  const a = aggregate([10, 0, 5]);
  assertEquals([a.mean, a.median, a.trimMean], [5, 5, 5]);
  assert(Math.abs(a.p20 - 2) < 1e-12 && Math.abs(a.p80 - 8) < 1e-12);
});
