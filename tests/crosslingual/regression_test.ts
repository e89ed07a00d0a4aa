// Factor regression against closed forms: two-predictor least squares by Cramer's rule on fresh
// random data, LMG's closed form for two predictors and r² for orthogonal ones, LMG over all 3!
// orders computed here from independent normal-equation fits; bootstrap intervals; bad input.
import { assert, assertAlmostEquals, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { fitFactors, fitFactorsWithCi } from "../../lib/crosslingual/regression.ts";
import { readTransferData } from "../../lib/crosslingual/transfer.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
const cov = (a: number[], b: number[]) => {
  const ma = mean(a), mb = mean(b);
  return a.reduce((s, x, i) => s + (x - ma) * (b[i]! - mb), 0);
};

/** R² of y on the given columns by normal equations and Gaussian elimination (independent of QR). */
function r2(y: number[], cols: number[][]): number {
  const p = cols.length;
  if (p === 0) return 0;
  const A = cols.map((a) => cols.map((b) => cov(a, b)));
  const r = cols.map((a) => cov(a, y));
  for (let k = 0; k < p; k++) {
    for (let i = k + 1; i < p; i++) {
      const f = A[i]![k]! / A[k]![k]!;
      for (let j = k; j < p; j++) A[i]![j]! -= f * A[k]![j]!;
      r[i]! -= f * r[k]!;
    }
  }
  const b = new Array<number>(p).fill(0);
  for (let i = p - 1; i >= 0; i--) {
    let s = r[i]!;
    for (let j = i + 1; j < p; j++) s -= A[i]![j]! * b[j]!;
    b[i] = s / A[i]![i]!;
  }
  return b.reduce((s, bj, j) => s + bj * cov(cols[j]!, y), 0) / cov(y, y);
}

function data(seed: number, n: number) {
  const rng = new Rng(seed);
  const x1 = Array.from({ length: n }, () => rng.normal());
  const x2 = x1.map((v) => 0.6 * v + rng.normal());
  const x3 = Array.from({ length: n }, () => rng.uniform() * 4);
  const y = x1.map((v, i) => 1.5 + 2 * v - 0.7 * x2[i]! + 0.3 * x3[i]! + 0.5 * rng.normal());
  return { x1, x2, x3, y };
}

Deno.test("two factors: coefficients by Cramer's rule, standardised ones, R², LMG closed form", () => {
  const seed = freshSeed();
  const { x1, x2, y } = data(seed, 57);
  const f = fitFactors(y, [x1, x2], ["a", "b"]);
  const s11 = cov(x1, x1), s22 = cov(x2, x2), s12 = cov(x1, x2), s1y = cov(x1, y), s2y = cov(x2, y);
  const det = s11 * s22 - s12 * s12;
  const b1 = (s22 * s1y - s12 * s2y) / det, b2 = (s11 * s2y - s12 * s1y) / det;
  const tol = (v: number) => 1e-10 * Math.max(1, Math.abs(v));
  assertAlmostEquals(f.coefficients[0]!, b1, tol(b1), `seed ${seed}`);
  assertAlmostEquals(f.coefficients[1]!, b2, tol(b2), `seed ${seed}`);
  assertAlmostEquals(f.intercept, mean(y) - b1 * mean(x1) - b2 * mean(x2), 1e-10, `seed ${seed}`);
  const sy = Math.sqrt(cov(y, y));
  assertAlmostEquals(f.standardized[0]!, (b1 * Math.sqrt(s11)) / sy, 1e-10);
  assertAlmostEquals(f.standardized[1]!, (b2 * Math.sqrt(s22)) / sy, 1e-10);
  const full = r2(y, [x1, x2]), r1 = r2(y, [x1]), r2b = r2(y, [x2]);
  assertAlmostEquals(f.r2, full, 1e-10);
  assertAlmostEquals(f.lmg[0]!, (r1 + full - r2b) / 2, 1e-10);
  assertAlmostEquals(f.lmg[1]!, (r2b + full - r1) / 2, 1e-10);
});

Deno.test("orthogonal factors: LMG is each factor's r²", () => {
  const x1 = [1, -1, 1, -1, 1, -1, 1, -1], x2 = [1, 1, -1, -1, 1, 1, -1, -1];
  const y = [3, 1, 2.5, -0.5, 2, 0.2, 1.1, -1];
  const f = fitFactors(y, [x1, x2], ["a", "b"]);
  const r = (x: number[]) => cov(x, y) ** 2 / (cov(x, x) * cov(y, y));
  assertAlmostEquals(f.lmg[0]!, r(x1), 1e-12);
  assertAlmostEquals(f.lmg[1]!, r(x2), 1e-12);
});

Deno.test("three factors: LMG equals the average R² gain over all 3! orders of entry", () => {
  const seed = freshSeed();
  const { x1, x2, x3, y } = data(seed, 40);
  const cols = [x1, x2, x3];
  const f = fitFactors(y, cols, ["a", "b", "c"]);
  const orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
  const want = [0, 0, 0];
  for (const o of orders) {
    for (let k = 0; k < 3; k++) {
      const before = o.slice(0, k).map((j) => cols[j]!);
      want[o[k]!]! += (r2(y, [...before, cols[o[k]!]!]) - r2(y, before)) / 6;
    }
  }
  want.forEach((w, j) => assertAlmostEquals(f.lmg[j]!, w, 1e-10, `seed ${seed} factor ${j}`));
  assertAlmostEquals(f.lmg.reduce((s, v) => s + v, 0), f.r2, 1e-12);
});

Deno.test("bootstrap: seeded, intervals around the estimate; bad input fails in one sentence", () => {
  const { x1, x2, y } = data(11, 80);
  const a = fitFactorsWithCi(y, [x1, x2], ["a", "b"], { replicates: 200, seed: 5 });
  const b = fitFactorsWithCi(y, [x1, x2], ["a", "b"], { replicates: 200, seed: 5 });
  assertEquals(a, b);
  assertEquals(a.replicates, 200);
  a.standardized.forEach((v, j) => {
    const [lo, hi] = a.standardizedCi[j]!;
    assert(lo < v && v < hi, `${lo} < ${v} < ${hi}`);
  });
  assertThrows(
    () => fitFactors([1, 2], [[1, 2]], ["a"]),
    RangeError,
    "2 rows are too few to fit 1 factor(s): need at least 3",
  );
  assertThrows(
    () => fitFactors([1, 2, 3, 4], [[1, 1, 1, 1]], ["a"]),
    RangeError,
    "Factor 'a' is constant in these rows",
  );
  assertThrows(
    () => fitFactors([1, 2, 3, 5], [[1, 2, 3, 4], [2, 4, 6, 8]], ["a", "b"]),
    RangeError,
    "The factors a, b are collinear",
  );
  assertThrows(
    () => fitFactors([1, 2, 3, 4], [[1, NaN, 3, 4]], ["a"]),
    RangeError,
    "Factor 'a' row 2 is not a finite number",
  );
  assertThrows(
    () => fitFactorsWithCi(y, [x1], ["a"], { replicates: 5 }),
    RangeError,
    "must be an integer ≥ 10",
  );
});

Deno.test("transfer tables: joins, script_match, and missing values named by file, line and column", async () => {
  const dir = await Deno.makeTempDir();
  const results = `${dir}/results.csv`, tok = `${dir}/tok.csv`, size = `${dir}/size.csv`;
  await Deno.writeTextFile(
    results,
    "model,source,target,task,score\nm1,en,de,ner,0.8\nm1,en,ru,ner,0.6\nm2,en,de,ner,0.7\nm2,en,ru,ner,0.5\n",
  );
  await Deno.writeTextFile(tok, "language,fertility\nde,1.6\nru,2.9\n");
  await Deno.writeTextFile(size, "model,params\nm1,110\nm2,340\n");
  const scripts: Record<string, string> = { en: "Latin", de: "Latin", ru: "Cyrillic" };
  const d = await readTransferData(results, [tok, size], ["fertility", "params", "script_match"], {
    scriptOf: (l) => scripts[l],
  });
  assertEquals(d.y, [0.8, 0.6, 0.7, 0.5]);
  assertEquals(d.x, [[1.6, 2.9, 1.6, 2.9], [110, 110, 340, 340], [1, 0, 1, 0]]);
  assertEquals(d.keys[1], { model: "m1", source: "en", target: "ru", task: "ner" });
  await Deno.writeTextFile(
    `${dir}/roman.csv`,
    "source,target,form,score\nen,ru,native,0.5\nen,ru,romanised,0.6\nen,de,native,0.7\n",
  );
  const rd = await readTransferData(`${dir}/roman.csv`, [], ["script_match"], {
    scriptOf: (l) => scripts[l],
  });
  assertEquals(rd.x, [[0, 1, 1]]);
  await Deno.writeTextFile(tok, "language,fertility\nde,1.6\nru,\n");
  await assertRejects(
    () => readTransferData(results, [tok], ["fertility"]),
    FormatError,
    `'${tok}' line 3: missing value in column 'fertility'`,
  );
  await Deno.writeTextFile(tok, "language,fertility\nde,1.6\nru,NA\n");
  await assertRejects(
    () => readTransferData(results, [tok], ["fertility"]),
    FormatError,
    `'${tok}' line 3: missing value`,
  );
  await Deno.writeTextFile(tok, "language,fertility\nde,1.6\n");
  await assertRejects(
    () => readTransferData(results, [tok], ["fertility"]),
    FormatError,
    `'${results}' line 3: no row in '${tok}' for language=ru`,
  );
  await Deno.writeTextFile(tok, "language,fertility\nde,1.6\nde,1.7\n");
  await assertRejects(
    () => readTransferData(results, [tok], ["fertility"]),
    FormatError,
    `'${tok}' line 3: a second row for language=de`,
  );
  await assertRejects(
    () => readTransferData(results, [size], ["depth"]),
    FormatError,
    `Factor 'depth' is in none of '${results}', '${size}'`,
  );
  await assertRejects(
    () => readTransferData(results, [], ["x"], { score: "f1" }),
    FormatError,
    "no score column 'f1'",
  );
  await Deno.writeTextFile(results, "model,source,target,task,score\nm1,en,de,ner,high\n");
  await assertRejects(
    () => readTransferData(results, [size], ["params"]),
    FormatError,
    `'${results}' line 2: 'high' in column 'score' is not a number`,
  );
  await Deno.remove(dir, { recursive: true });
});
