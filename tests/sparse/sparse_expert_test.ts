// Compressed experts: SparseExpertLinear gives the dense-expert layer's outputs (same routing,
// sparse products in every stored form) in a fraction of the dense bytes.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { ShapeError } from "../../lib/core/errors.ts";
import { assertClose } from "../../lib/std/assert.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { ExpertLinear } from "../../lib/sparse/expansion.ts";
import { fitRouter, projectTokens } from "../../lib/sparse/router.ts";
import { SparseExpertLinear } from "../../lib/sparse/sparse_expert.ts";
import { freshSeed, randn } from "../_util.ts";

Deno.test("SparseExpertLinear equals ExpertLinear on fresh random experts in every stored form", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const d = 96, out = 130, k = 4;
  const calib = randn(rng, 400, d);
  const router = fitRouter(calib, { k, rank: 3, restarts: 2, seed });
  const experts = (nm: boolean) =>
    Array.from({ length: k }, () => {
      const w = randn(rng, out, d);
      for (let i = 0; i < w.data.length; i++) {
        if (nm ? i % 4 < 2 : rng.uniform() < 0.7) w.data[i] = 0;
      }
      return w;
    });
  const unstructured = new ExpertLinear(router, experts(false), "cpu");
  const twoFour = new ExpertLinear(router, experts(true), "cpu");
  const dense = d * out * 4 * k;
  const cases = [
    [unstructured, "auto", "block-sparse", 0.6], // 30 % kept: 7 bytes per nonzero
    [unstructured, "block-sparse", "block-sparse", 0.6],
    [unstructured, "bitmap", "bitmap", 0.35],
    [unstructured, "csr", "csr", 0.55],
    [twoFour, "auto", "nm", 0.54], // 2:4: packed N:M
    [twoFour, "nm", "nm", 0.54],
  ] as const;
  for (const [layer, format, stored, maxShare] of cases) {
    for (const backend of ["ts", "cpu"] as const) {
      const sparse = SparseExpertLinear.fromExpertLinear(layer, {
        format,
        nm: { n: 2, m: 4 },
        blockRows: 64,
        backend,
      });
      const at = `seed ${seed} ${format} ${backend}`;
      assert(sparse.experts.every((e) => e.format === stored), at);
      const x = randn(rng, 77, d);
      assertClose(sparse.forward(x).data, layer.forward(x).data, { rtol: 1e-5, atol: 1e-5 });
      assert(sparse.bytes < maxShare * dense, `${at}: ${sparse.bytes / dense} of dense bytes`);
    }
  }
  const bsc = SparseExpertLinear.fromExpertLinear(unstructured, { blockRows: 64 });
  const nnz = unstructured.experts.reduce((s, w) => s + w.data.filter((v) => v !== 0).length, 0);
  assertEquals(bsc.bytes, 7 * nnz + k * 4 * (Math.ceil(out / 64) + 1));
  const empty = new Matrix(0, d, new Float32Array(0));
  assertEquals(bsc.forward(empty).rows, 0);
  assertThrows(
    () => SparseExpertLinear.fromExpertLinear(unstructured, { format: "nm", nm: { n: 2, m: 4 } }),
    ShapeError,
    "not 2:4 sparse",
  );
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
  const fast = projectTokens(router, x);
  const exact = projectTokens(
    router,
    new Matrix(n, d, Float64Array.from(x.data)) as unknown as Matrix,
  );
  assertClose(fast, exact, { rtol: 1e-6 });
});
