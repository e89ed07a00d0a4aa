import { assert, assertClose, assertEquals, assertThrows } from "@std/assert";
import { fitRouter, project, route } from "../../lib/sparse/router.ts";
import { ExpertLinear, mlpFlopsPerToken, sparseExpand } from "../../lib/sparse/expansion.ts";
import { matmulRef } from "../../lib/kernels/matmul.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, randn } from "../_util.ts";
import { golden, MODEL_DIR } from "../model/_golden.ts";

Deno.test("router: PCA finds the dominant direction and k-means separates well-spaced blobs", () => {
  const rng = new Rng(freshSeed());
  const centers = [-6, 0, 6], rows: number[][] = [], truth: number[] = [];
  for (let t = 0; t < 300; t++) {
    const c = t % 3;
    truth.push(c);
    rows.push([
      centers[c]! + 0.3 * rng.normal(),
      0.3 * rng.normal(),
      0.3 * rng.normal(),
      centers[c]! + 0.3 * rng.normal(),
    ]);
  }
  const x = Matrix.from(rows);
  const r = fitRouter(x, { k: 3, rank: 1, seed: 1 });
  // the first component is ±(1, 0, 0, 1)/√2
  assertClose([Math.abs(r.components[0]!), Math.abs(r.components[3]!)], [
    Math.SQRT1_2,
    Math.SQRT1_2,
  ], { rtol: 1e-2 });
  const labels = route(r, x);
  const map = new Map<number, number>();
  labels.forEach((l, t) => {
    if (!map.has(truth[t]!)) map.set(truth[t]!, l);
    assertEquals(l, map.get(truth[t]!), `token ${t}`);
  });
  assertEquals(new Set(map.values()).size, 3);
  assertEquals(project(r, x).length, 300);
  assertThrows(
    () => fitRouter(Matrix.zeros(3, 4), { k: 4 }),
    RangeError,
    "more experts than tokens",
  );
  assertThrows(() => route(r, Matrix.zeros(2, 5)), Error, "expects rows of 4");
});

Deno.test("ExpertLinear sends each row through its cluster's expert", () => {
  const rng = new Rng(freshSeed());
  const x = Matrix.from([[-5, 0], [5, 0], [-5.1, 0.1], [4.9, -0.1]]);
  const r = fitRouter(x, { k: 2, rank: 1 });
  const experts = [randn(rng, 3, 2), randn(rng, 3, 2)];
  const lin = new ExpertLinear(r, experts, "cpu");
  const labels = route(r, x), y = lin.forward(x);
  for (let t = 0; t < 4; t++) {
    const want = matmulRef(
      new Matrix(1, 2, x.data.slice(2 * t, 2 * t + 2)),
      experts[labels[t]!]!,
      true,
    );
    assertClose(y.data.subarray(3 * t, 3 * t + 3), want.data, { rtol: 1e-6 });
  }
  assertThrows(
    () => new ExpertLinear(r, [experts[0]!], "cpu"),
    Error,
    "1 experts for a router of 2 clusters",
  );
});

Deno.test("sparseExpand on the bundled model: every expert pruned, routers shared by gate/up, FLOPs counted", async () => {
  const m = await LlamaModel.load(MODEL_DIR, { backend: "cpu" });
  const before = mlpFlopsPerToken(m);
  await sparseExpand(m, golden.val_batch.sequences.slice(0, 4), {
    experts: 2,
    sparsity: 0.5,
    restarts: 2,
    progress: false,
  });
  for (const b of m.blocks) {
    const g = b.linears.gate_proj, u = b.linears.up_proj, d = b.linears.down_proj;
    assert(g instanceof ExpertLinear && u instanceof ExpertLinear && d instanceof ExpertLinear);
    assertEquals(g.router, u.router);
    assert(d.router !== g.router);
    for (const e of [...g.experts, ...d.experts]) {
      const zeros = e.data.reduce((a, v) => a + (v === 0 ? 1 : 0), 0) / e.data.length;
      assert(zeros >= 0.5 && zeros < 0.51, `expert sparsity ${zeros}`);
    }
  }
  const after = mlpFlopsPerToken(m);
  assertClose([after.expert], [before.expert / 2], { rtol: 0.01 });
  assert(after.router > 0);
  const logits = m.forward(golden.prompts[0]!.input_ids, { lastOnly: true });
  assert(logits.data.every(Number.isFinite));
});

Deno.test("an expanded model saves and loads back with identical logits; a broken expert checkpoint fails clearly", async () => {
  const { saveModel, loadExpandedModel } = await import("../../lib/sparse/expansion_io.ts");
  const m = await LlamaModel.load(MODEL_DIR, { backend: "cpu" });
  await sparseExpand(m, golden.val_batch.sequences.slice(0, 2), {
    experts: 2,
    sparsity: 0.5,
    restarts: 1,
    progress: false,
  });
  const dir = await Deno.makeTempDir();
  await saveModel(m, MODEL_DIR, dir);
  const back = await loadExpandedModel(dir, { backend: "cpu" });
  const b0 = back.blocks[0]!;
  assert(
    b0.linears.gate_proj instanceof ExpertLinear &&
      b0.linears.gate_proj.router === (b0.linears.up_proj as ExpertLinear).router,
  );
  const ids = golden.prompts[1]!.input_ids;
  assertEquals(back.forward(ids).data, m.forward(ids).data);
  // a plain LlamaModel.load names the missing dense weight
  const { FormatError } = await import("../../lib/core/errors.ts");
  let msg = "";
  try {
    await LlamaModel.load(dir, { backend: "cpu" });
  } catch (e) {
    if (e instanceof FormatError) msg = e.message;
  }
  assert(msg.includes("lacks tensor 'model.layers.0.mlp.gate_proj.weight'"), msg);
  await Deno.remove(dir, { recursive: true });
});
