// Compressed experts: SparseExpertLinear gives the dense-expert layer's outputs (same routing,
// block-sparse products) and stores about 7/4·(1 − s) of the dense bytes per expert.
import { assert, assertEquals } from "@std/assert";
import { assertClose } from "../../lib/std/assert.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { ExpertLinear } from "../../lib/sparse/expansion.ts";
import { fitRouter, project } from "../../lib/sparse/router.ts";
import { SparseExpertLinear } from "../../lib/sparse/sparse_expert.ts";
import { freshSeed, randn } from "../_util.ts";

Deno.test("SparseExpertLinear equals ExpertLinear on fresh random experts and inputs", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const d = 96, out = 130, k = 4;
  const calib = randn(rng, 400, d);
  const router = fitRouter(calib, { k, rank: 3, restarts: 2, seed });
  const experts = Array.from({ length: k }, () => {
    const w = randn(rng, out, d);
    for (let i = 0; i < w.data.length; i++) if (rng.uniform() < 0.7) w.data[i] = 0;
    return w;
  });
  const dense = new ExpertLinear(router, experts, "cpu");
  for (const backend of ["ts", "cpu"] as const) {
    const sparse = SparseExpertLinear.fromExpertLinear(dense, 64, backend);
    const x = randn(rng, 77, d);
    assertClose(sparse.forward(x).data, dense.forward(x).data, { rtol: 1e-5, atol: 1e-6 });
    const nnz = experts.reduce((s, w) => s + w.data.filter((v) => v !== 0).length, 0);
    assertEquals(sparse.bytes, 7 * nnz + k * 4 * (Math.ceil(out / 64) + 1));
    assert(sparse.bytes < 0.6 * k * out * d * 4, `seed ${seed}`);
  }
  const empty = new Matrix(0, d, new Float32Array(0));
  assertEquals(SparseExpertLinear.fromExpertLinear(dense).forward(empty).rows, 0);
});

Deno.test("router projection at model widths (d ≥ 4096) through the f32 kernel equals the f64 loop", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const d = 4096, r = 128, n = 37;
  const router = {
    mean: Float64Array.from({ length: d }, () => rng.normal()),
    components: Float64Array.from({ length: r * d }, () => rng.normal() / 64),
    centroids: new Float64Array(2 * r),
    dim: d,
    rank: r,
    k: 2,
  };
  const x = randn(rng, n, d);
  const fast = project(router, x);
  const exact = project(router, new Matrix(n, d, Float64Array.from(x.data)) as unknown as Matrix);
  assertClose(fast, exact, { rtol: 1e-6 });
});
