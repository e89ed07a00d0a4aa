// W1 of 1,000,000 samples against N(0,1) (`deno task bench`): the quantile form (sort + Φ⁻¹ grid)
// and scipy's two-sample form against the same quantile grid. scipy's own time on the same data is
// measured by bench/scipy_peer.py (run separately; the project needs no Python).
import { Rng } from "../lib/core/rng.ts";
import { normalQuantiles, w1ToNormal, wasserstein1, zscore } from "../lib/wasserstein/distance.ts";

const rng = new Rng(11);
const x = Float64Array.from({ length: 1_000_000 }, () => rng.normal() ** 3);
const z = zscore(x)!;

Deno.bench({
  name: "w1ToNormal, 1M samples (quantile form)",
  group: "w1",
  baseline: true,
  fn: () => void w1ToNormal(z),
});
Deno.bench({
  name: "wasserstein1(sample, Φ⁻¹ grid), 1M vs 1M (scipy's definition)",
  group: "w1",
  fn: () => void wasserstein1(z, normalQuantiles(z.length)),
});
