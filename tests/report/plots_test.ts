// Chart builders on large inputs: the histogram of the Wasserstein report takes 2 × windows ×
// context values per neuron (300k at --calib-windows 600), which Math.min(...values) could not.
import { assert, assertEquals } from "@std/assert";
import { histogramChart } from "../../lib/report/plots.ts";
import { Rng } from "../../lib/core/rng.ts";

Deno.test("histogramChart bins 300,000 values over their whole range", () => {
  const values = new Rng(3).normalArray(300_000);
  values[7] = -9; // the extremes must set the range
  values[8] = 11;
  const c = histogramChart({ name: "big", title: "z", series: [{ label: "x", values }], bins: 20 });
  // the x scale spans the data, and the densities integrate to 1 over the 20 bins
  const x = JSON.stringify(c.spec).match(/"domain":\[(-?[\d.e-]+),(-?[\d.e-]+)\]/);
  assert(x, "no x domain");
  assertEquals([Number(x[1]), Number(x[2])], [-9, 11]);
  const dens = [...JSON.stringify(c.spec).matchAll(/"x":(-?[\d.e-]+),"density":([\d.e-]+)/g)]
    .map((m) => Number(m[2])).slice(0, 20);
  assertEquals(dens.length, 20);
  const area = dens.reduce((a, d) => a + d, 0) * 1; // bins of width (11 − (−9)) / 20
  assert(Math.abs(area - 1) < 1e-9, `area ${area}`);
  assertEquals(c.name, "big");
});
