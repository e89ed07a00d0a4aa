import { assertAlmostEquals, assertEquals, assertThrows } from "@std/assert";
import {
  normalQuantile,
  percentile,
  w1ToGaussianSample,
  w1ToNormal,
  wasserstein1,
  zscore,
} from "../../lib/wasserstein/distance.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

const ref = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/scipy_reference.json", import.meta.url)),
);

Deno.test("closed forms: two point masses, shifted copies, quantile coupling of equal-size samples", () => {
  assertEquals(wasserstein1([2], [7.5]), 5.5);
  assertEquals(wasserstein1([0, 1], [0, 1], { uWeights: [1, 0], vWeights: [0, 1] }), 1);
  const rng = new Rng(freshSeed());
  const x = Array.from({ length: 333 }, () => rng.normal());
  assertAlmostEquals(wasserstein1(x, x.map((v) => v + 2.25)), 2.25, 1e-12);
  assertAlmostEquals(wasserstein1(x, x), 0, 0);
  const y = Array.from({ length: 333 }, () => rng.normal() * 3);
  const xs = x.slice().sort((a, b) => a - b), ys = y.slice().sort((a, b) => a - b);
  const coupling = xs.reduce((s, v, i) => s + Math.abs(v - ys[i]!), 0) / xs.length;
  assertAlmostEquals(wasserstein1(x, y), coupling, 1e-12);
  // mixed sizes: u = {0, 1} vs v = {0, 0, 1, 1, 1}: |F_u − F_v| = |1/2 − 2/5| on [0, 1)
  assertAlmostEquals(wasserstein1([0, 1], [0, 0, 1, 1, 1]), 0.1, 1e-15);
});

Deno.test("agreement with scipy.stats.wasserstein_distance and scipy.special.ndtri (fixture computed with scipy 1.10.1)", () => {
  const { u, v, uw, vw, ties, x } = ref.inputs;
  assertAlmostEquals(wasserstein1(u, v), ref.w1_u_v, 1e-13);
  assertAlmostEquals(
    wasserstein1(u, v, { uWeights: uw, vWeights: vw }),
    ref.w1_u_v_weighted,
    1e-13,
  );
  assertAlmostEquals(wasserstein1(ties, u), ref.w1_ties_u, 1e-13);
  assertAlmostEquals(w1ToNormal(zscore(x)!), ref.w1_zx_to_normal_quantiles, 1e-8);
  for (const [p, q] of Object.entries(ref.ndtri as Record<string, number>)) {
    assertAlmostEquals(normalQuantile(Number(p)), q, 1.2e-9 * Math.abs(q) + 1e-15, `Φ⁻¹(${p})`);
  }
});

Deno.test("w1ToNormal and the seeded-Gaussian form agree for large normal samples, and a skewed sample is far", () => {
  const rng = new Rng(freshSeed());
  const g = Array.from({ length: 20000 }, () => rng.normal());
  const skew = g.map((v) => Math.exp(v));
  const wq = w1ToNormal(zscore(g)!), ws = w1ToGaussianSample(zscore(g)!, { seed: 3 });
  if (!(wq < 0.03 && ws < 0.05)) throw new Error(`normal sample too far: ${wq}, ${ws}`);
  if (!(w1ToNormal(zscore(skew)!) > 0.2)) {
    throw new Error("a lognormal sample should be far from N(0,1)");
  }
  assertEquals(
    w1ToGaussianSample([1, 2, 3], { seed: 5 }),
    w1ToGaussianSample([1, 2, 3], { seed: 5 }),
  );
});

Deno.test("percentile matches numpy's linear interpolation", () => {
  assertEquals(percentile([1, 2, 3, 4], 50), 2.5);
  assertAlmostEquals(percentile([10, 0, 5], 97), 9.7, 1e-12);
  assertEquals(percentile([7], 3), 7);
});

Deno.test("bad input: empty samples, NaN, bad weights, zero variance", () => {
  assertThrows(() => wasserstein1([], [1]), RangeError, "Sample u is empty");
  assertThrows(() => wasserstein1([1], [2, NaN]), NumericalError, "v[1] is NaN");
  assertThrows(() => wasserstein1([1, 2], [1], { uWeights: [1] }), ShapeError);
  assertThrows(
    () => wasserstein1([1, 2], [1], { uWeights: [1, -1] }),
    RangeError,
    "expected a finite number ≥ 0",
  );
  assertThrows(() => wasserstein1([1, 2], [1], { uWeights: [0, 0] }), RangeError, "sum to 0");
  assertEquals(zscore([3, 3, 3]), null);
  assertThrows(() => w1ToNormal([Infinity]), NumericalError);
  assertThrows(() => normalQuantile(1.5), RangeError);
  assertThrows(() => percentile([1], 101), RangeError);
});
