// Statistical tests against scipy (fixtures/make_scipy_reference.py) and closed forms computed
// here another way.
import { assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import { incompleteBeta, normalCdf, tTwoSidedP } from "../../lib/stats/distributions.ts";
import {
  bootstrapInterval,
  kendall,
  ranks,
  spearman,
  twoProportionTest,
} from "../../lib/stats/tests.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

const ref = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/scipy_reference.json", import.meta.url)),
);

Deno.test("Spearman and Kendall τ-b with p-values equal scipy, with and without ties", () => {
  for (
    const [name, c] of Object.entries(ref.cases) as [
      string,
      { x: number[]; y: number[]; spearman: number[]; kendall: number[] },
    ][]
  ) {
    const s = spearman(c.x, c.y), k = kendall(c.x, c.y);
    assertAlmostEquals(s.rho, c.spearman[0]!, 1e-12, name);
    assertAlmostEquals(s.p, c.spearman[1]!, 1e-10, name);
    assertAlmostEquals(k.tau, c.kendall[0]!, 1e-12, name);
    assertAlmostEquals(k.p, c.kendall[1]!, 1e-10, name);
  }
});

Deno.test("Spearman without ties equals 1 − 6Σd²/(n(n²−1)) on fresh random data", () => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  for (const n of [3, 5, 20, 77]) {
    const x = Array.from({ length: n }, () => rng.uniform()),
      y = Array.from({ length: n }, () => rng.uniform());
    const rx = ranks(x), ry = ranks(y);
    const d2 = rx.reduce((s, r, i) => s + (r - ry[i]!) ** 2, 0);
    assertAlmostEquals(
      spearman(x, y).rho,
      1 - (6 * d2) / (n * (n * n - 1)),
      1e-12,
      `seed ${seed} n ${n}`,
    );
  }
  assertEquals(ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1]);
});

Deno.test("two-proportion z-test by hand; distributions at known points", () => {
  const t = twoProportionTest(30, 200, 54, 240);
  const pool = 84 / 440, se = Math.sqrt(pool * (1 - pool) * (1 / 200 + 1 / 240));
  assertAlmostEquals(t.z, (54 / 240 - 30 / 200) / se, 1e-12);
  assertAlmostEquals(t.p, 2 * (1 - normalCdf(Math.abs(t.z))), 1e-12);
  assertAlmostEquals(normalCdf(0), 0.5, 1e-16);
  assertAlmostEquals(normalCdf(-1.6448536269514722), 0.05, 1e-14);
  // t with 1 df is Cauchy: P(|T| > 1) = 1/2
  assertAlmostEquals(tTwoSidedP(1, 1), 0.5, 1e-13);
  // I_x(1, 1) = x; I_x(a, 1) = x^a
  assertAlmostEquals(incompleteBeta(0.3, 1, 1), 0.3, 1e-14);
  assertAlmostEquals(incompleteBeta(0.6, 3, 1), 0.216, 1e-14);
  assertThrows(() => twoProportionTest(5, 0, 1, 2), RangeError, "Cannot compare 5/0 with 1/2");
  assertThrows(() => twoProportionTest(1.5, 3, 1, 2), RangeError, "x1 = 1.5 is not a count");
  assertThrows(() => spearman([1, 2], [1, 2]), RangeError, "2 pairs are too few");
});

Deno.test("bootstrap interval of a mean covers it and is seeded", () => {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const x = Array.from({ length: 400 }, () => rng.normal() + 3);
  const mean = (v: number[]) => v.reduce((s, a) => s + a, 0) / v.length;
  const draw = (r: Rng) => mean(Array.from(x, () => x[r.int(x.length)]!));
  const a = bootstrapInterval(draw, { replicates: 300, seed: 1 });
  assertEquals(a, bootstrapInterval(draw, { replicates: 300, seed: 1 }));
  const m = mean(x),
    se = Math.sqrt(x.reduce((s, v) => s + (v - m) ** 2, 0) / (x.length - 1) / x.length);
  // the percentile interval is close to mean ± 1.96 se
  assertAlmostEquals(a[0], m - 1.96 * se, 0.4 * se, `seed ${seed}`);
  assertAlmostEquals(a[1], m + 1.96 * se, 0.4 * se, `seed ${seed}`);
});
