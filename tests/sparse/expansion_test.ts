import { assert, assertClose, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { fitCentroids, fitRouter, projectTokens, routeTokens } from "../../lib/sparse/router.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { ExpertLinear, mlpFlopsPerToken, sparseExpand } from "../../lib/sparse/expansion.ts";
import { matmulRef } from "../../lib/kernels/matmul.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { DenseLinear } from "../../lib/model/linear.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, randn } from "../_util.ts";
import { availableBackends, DeviceBuffer } from "../../ffi/mod.ts";
import { relativeL2Error } from "../../lib/core/numeric.ts";
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
  const labels = routeTokens(r, x);
  const map = new Map<number, number>();
  labels.forEach((l, t) => {
    if (!map.has(truth[t]!)) map.set(truth[t]!, l);
    assertEquals(l, map.get(truth[t]!), `token ${t}`);
  });
  assertEquals(new Set(map.values()).size, 3);
  assertEquals(projectTokens(r, x).length, 300);
  assertThrows(
    () => fitRouter(Matrix.zeros(3, 4), { k: 4 }),
    RangeError,
    "more experts than tokens",
  );
  assertThrows(() => routeTokens(r, Matrix.zeros(2, 5)), Error, "expects rows of 4");
  // the k-means step alone, on the projected tokens: the same centroids as the router's
  const z = projectTokens(r, x);
  assertEquals(fitCentroids(z, 1, { k: 3, seed: 1 }), r.centroids);
  assertThrows(() => fitCentroids(z, 7, { k: 3 }), ShapeError, "300 coordinates");
  assertThrows(() => fitCentroids(z, 1, { k: 301 }), RangeError, "301 clusters to 300 tokens");
  assertThrows(() => fitCentroids(z, 1, { k: 1.5 }), RangeError, "expected a positive integer");
});

Deno.test("router: wide layers route by k linear scores exactly as by the nearest centroid", () => {
  // d ≥ 4096 with f32 tokens and k < r takes the score route; the reference is the f64 projection
  // and f64 distances (a Float64 copy of the tokens takes projectTokens' exact path)
  const seed = freshSeed(), rng = new Rng(seed);
  const d = 4103, r = 24, k = 5, m = 67;
  const unit = (n: number, scale: number) =>
    Float64Array.from(rng.normalArray(n), (v) => v * scale);
  const mean = unit(d, 0.3), components = unit(r * d, 1 / Math.sqrt(d));
  const x = new Matrix(m, d, Float32Array.from(rng.normalArray(m * d)));
  const probe = new Matrix(k, d, Float64Array.from(x.data.subarray(0, k * d)));
  const router = { mean, components, centroids: new Float64Array(k * r), dim: d, rank: r, k };
  router.centroids.set(projectTokens(router, probe)); // centroids at the first k tokens' projections
  for (let i = 0; i < k * r; i++) router.centroids[i]! += 0.3 * rng.normal();
  const z = projectTokens(router, new Matrix(m, d, Float64Array.from(x.data)));
  const labels = routeTokens(router, x);
  let nearTies = 0;
  for (let t = 0; t < m; t++) {
    const dist = Array.from({ length: k }, (_, c) => {
      let s = 0;
      for (let i = 0; i < r; i++) s += (z[t * r + i]! - router.centroids[c * r + i]!) ** 2;
      return s;
    });
    const want = dist.indexOf(Math.min(...dist));
    if (labels[t] === want) continue;
    // only a near tie may differ: f32 scores against f64 distances
    nearTies++;
    assert(
      Math.abs(dist[labels[t]!]! - dist[want]!) < 1e-4 * dist[want]!,
      `seed ${seed} token ${t}: routed to ${labels[t]} (distance ${
        dist[labels[t]!]
      }), nearest ${want} (${dist[want]})`,
    );
  }
  assert(nearTies <= 1, `seed ${seed}: ${nearTies} tokens routed differently`);
  assertEquals(new Set(labels).size > 1, true, `seed ${seed}: every token in one cluster`);
  assertThrows(
    () => routeTokens(router, Matrix.zeros(2, d - 1)),
    ShapeError,
    `expects rows of ${d}`,
  );
});

Deno.test("ExpertLinear sends each row through its cluster's expert", () => {
  const rng = new Rng(freshSeed());
  const x = Matrix.from([[-5, 0], [5, 0], [-5.1, 0.1], [4.9, -0.1]]);
  const r = fitRouter(x, { k: 2, rank: 1 });
  const experts = [randn(rng, 3, 2), randn(rng, 3, 2)];
  const lin = new ExpertLinear(r, experts, "cpu");
  const labels = routeTokens(r, x), y = lin.forward(x);
  for (let t = 0; t < 4; t++) {
    const want = matmulRef(
      new Matrix(1, 2, x.data.slice(2 * t, 2 * t + 2)),
      experts[labels[t]!]!,
      true,
    );
    assertClose(y.data.subarray(3 * t, 3 * t + 3), want.data, { rtol: 1e-6 });
    // one row alone (as in decoding: one cluster, no gather or scatter), and rows of one cluster
    const one = lin.forward(new Matrix(1, 2, x.data.slice(2 * t, 2 * t + 2)));
    assertClose(one.data, want.data, { rtol: 1e-6 });
  }
  const sameCluster = lin.forward(Matrix.from([[-5, 0], [-5.1, 0.1]]));
  assertClose(sameCluster.data, [...y.data.subarray(0, 3), ...y.data.subarray(6, 9)], {
    rtol: 1e-6,
  });
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

Deno.test("sparseExpand refuses a pattern or expert count that does not fit before it replaces any layer", async () => {
  // gate/up take 16 columns, down 8: a 2:16 pattern fits gate and up but not down, so checking each
  // projection only when its turn came would leave gate and up expanded and down not
  const lin = (rows: number, cols: number) => new DenseLinear(Matrix.zeros(rows, cols));
  const mlp = { gate_proj: lin(8, 16), up_proj: lin(8, 16), down_proj: lin(16, 8) };
  const model = {
    backend: "ts",
    config: { numLayers: 2 },
    blocks: [{ linears: { ...mlp } }, { linears: { ...mlp } }],
  } as unknown as LlamaModel;
  await assertRejects(
    () => sparseExpand(model, [[1, 2, 3]], { experts: 2, nm: [2, 16], progress: false }),
    ShapeError,
    "Block 0 down_proj: N:M pattern 2:16 needs M to divide the 8 columns",
  );
  await assertRejects(
    () => sparseExpand(model, [[1, 2], [3]], { experts: 4, sparsity: 0.5, progress: false }),
    RangeError,
    "Cannot fit 4 clusters to 3 tokens: more experts than tokens",
  );
  await assertRejects(
    () => sparseExpand(model, [[1, 2, 3]], { experts: 2, sparsity: 1, progress: false }),
    RangeError,
    "Sparsity 1 is outside (0, 1)",
  );
  for (const b of model.blocks) {
    for (const [name, l] of Object.entries(mlp)) {
      assertEquals(b.linears[name as keyof typeof mlp], l, `${name} was replaced`);
    }
  }
});

/** The bundled model on cpu with every MLP expanded into 2 experts at 50 % (2 calibration windows). */
async function expandedBundled(): Promise<LlamaModel> {
  const m = await LlamaModel.load(MODEL_DIR, { backend: "cpu" });
  await sparseExpand(m, golden.val_batch.sequences.slice(0, 2), {
    experts: 2,
    sparsity: 0.5,
    restarts: 1,
    progress: false,
  });
  return m;
}

Deno.test("an expanded model saves compressed and loads back with the same logits; broken expert checkpoints fail clearly", async () => {
  const { saveModel, loadExpandedModel } = await import("../../lib/sparse/expansion_io.ts");
  const { SparseExpertLinear } = await import("../../lib/sparse/sparse_expert.ts");
  const { SafetensorsFile, writeSafetensors, f16ToF32, f32ToF16 } = await import(
    "../../lib/io/safetensors.ts"
  );
  const { FormatError } = await import("../../lib/core/errors.ts");
  const m = await expandedBundled();
  const ids = golden.prompts[1]!.input_ids;
  const want = m.forward(ids).data;
  const root = await Deno.makeTempDir();
  const sizes: Record<string, number> = {};
  for (const form of ["bitmap", "dense"] as const) {
    const dir = `${root}/${form}`;
    await saveModel(m, MODEL_DIR, dir, { experts: form, dtype: "F32" });
    sizes[form] = (await Deno.stat(`${dir}/model.safetensors`)).size;
    const back = await loadExpandedModel(dir, { backend: "cpu" });
    const b0 = back.blocks[0]!;
    const g = b0.linears.gate_proj, u = b0.linears.up_proj;
    assert(g instanceof SparseExpertLinear && u instanceof SparseExpertLinear, form);
    assert(g.router === u.router, "gate and up share one router");
    // 50 % kept: the bitmap form computes fastest at this density
    assert(g.experts.every((e) => e.format === "bitmap"), g.experts.map((e) => e.format).join());
    assertClose(back.forward(ids).data, want, { rtol: 1e-4, atol: 1e-4 });
  }
  // held as bitmaps for decoding: the same logits
  const gen = await loadExpandedModel(`${root}/bitmap`, { backend: "cpu", experts: "bitmap" });
  const down = gen.blocks[1]!.linears.down_proj as InstanceType<typeof SparseExpertLinear>;
  assert(down.experts.every((e) => e.format === "bitmap"));
  assertClose(gen.forward(ids).data, want, { rtol: 1e-4, atol: 1e-4 });
  // a loaded model saves back to the same bytes (bitmap experts written as held)
  await saveModel(gen, MODEL_DIR, `${root}/resaved`, { dtype: "F32" });
  assertEquals(
    await Deno.readFile(`${root}/resaved/model.safetensors`),
    await Deno.readFile(`${root}/bitmap/model.safetensors`),
  );
  // by default in the source's dtype (F16 here): values and weights rounded to the nearest half,
  // routers kept in F32, and the loaded experts hold exactly the rounded values
  await saveModel(m, MODEL_DIR, `${root}/f16`);
  const half = await loadExpandedModel(`${root}/f16`, { backend: "cpu", experts: "bitmap" });
  {
    using f = await SafetensorsFile.open(`${root}/f16/model.safetensors`);
    assertEquals(f.info("model.layers.0.mlp.up_proj.experts.1.values").dtype, "F16");
    assertEquals(f.info("model.layers.0.self_attn.q_proj.weight").dtype, "F16");
    assertEquals(f.info("model.layers.0.mlp.router_down.centroids").dtype, "F32");
  }
  const heldF32 = (gen.blocks[1]!.linears.up_proj as InstanceType<typeof SparseExpertLinear>)
    .experts[0]!;
  const heldF16 = (half.blocks[1]!.linears.up_proj as InstanceType<typeof SparseExpertLinear>)
    .experts[0]!;
  assert(heldF32.format === "bitmap" && heldF16.format === "bitmap");
  assertEquals(
    heldF16.matrix.val,
    heldF32.matrix.val.map((v) => f16ToF32(f32ToF16(v))),
  );
  assertClose(half.forward(ids).data, want, { rtol: 2e-2, atol: 2e-2 });
  // a sharded source checkpoint (HF's index + shards) gives the same file
  {
    const shards = `${root}/sharded`,
      all: Record<string, import("../../lib/io/safetensors.ts").Tensor>[] = [{}, {}];
    await Deno.mkdir(shards);
    using f = await SafetensorsFile.open(`${MODEL_DIR}/model.safetensors`);
    const weightMap: Record<string, string> = {};
    for (const [i, name] of f.names().entries()) {
      all[i % 2]![name] = await f.read(name);
      weightMap[name] = `model-0000${i % 2 + 1}-of-00002.safetensors`;
    }
    for (const k of [0, 1]) {
      await writeSafetensors(`${shards}/model-0000${k + 1}-of-00002.safetensors`, all[k]!);
    }
    await Deno.writeTextFile(
      `${shards}/model.safetensors.index.json`,
      JSON.stringify({ weight_map: weightMap }),
    );
    await Deno.copyFile(`${MODEL_DIR}/config.json`, `${shards}/config.json`);
    await saveModel(m, shards, `${root}/from_shards`);
    assertEquals(
      await Deno.readFile(`${root}/from_shards/model.safetensors`),
      await Deno.readFile(`${root}/f16/model.safetensors`),
    );
  }
  const sizeF16 = (await Deno.stat(`${root}/f16/model.safetensors`)).size;
  assert(sizeF16 < 0.55 * sizes.bitmap!, `F16 file ${sizeF16} bytes, F32 ${sizes.bitmap}`);
  // E = 2 experts at 50 %: the MLP experts take about 2 × 0.53 of one dense MLP in the bitmap file
  const mlp = m.config.numLayers * 3 * m.config.hiddenSize * m.config.intermediateSize * 4;
  const saved = sizes.dense! - sizes.bitmap!;
  assertClose([saved / mlp], [2 * (1 - 0.5 * 4 / 4 - 1 / 32)], { rtol: 0.02 });

  // a plain LlamaModel.load names the missing dense weight
  const dir = `${root}/bitmap`;
  const fails = async (f: () => Promise<unknown>, text: string) => {
    let msg = "";
    try {
      await f();
    } catch (e) {
      if (e instanceof FormatError) msg = e.message;
    }
    assert(msg.includes(text), `expected '${text}', got '${msg}'`);
  };
  await fails(
    () => LlamaModel.load(dir, { backend: "cpu" }),
    "lacks tensor 'model.layers.0.mlp.gate_proj.weight'",
  );
  // a values tensor one short, and a bitmap of the wrong width
  const tensors: Record<string, import("../../lib/io/safetensors.ts").Tensor> = {};
  {
    using f = await SafetensorsFile.open(`${dir}/model.safetensors`);
    for (const name of f.names()) tensors[name] = await f.read(name);
  }
  const key = "model.layers.0.mlp.up_proj.experts.1";
  const vals = tensors[`${key}.values`]!;
  const broken = {
    ...tensors,
    [`${key}.values`]: {
      ...vals,
      shape: [vals.shape[0]! - 1],
      data: (vals.data as Float32Array).subarray(1),
    },
  };
  await writeSafetensors(`${dir}/model.safetensors`, broken);
  await fails(
    () => loadExpandedModel(dir),
    `Expert '${key}' in '${dir}': ${vals.shape[0]! - 1} values for ${vals.shape[0]} set bits`,
  );
  const bits = tensors[`${key}.bitmap`]!;
  const narrow = {
    ...tensors,
    [`${key}.bitmap`]: { ...bits, shape: [bits.shape[0]! * 2, bits.shape[1]! / 2] },
  };
  await writeSafetensors(`${dir}/model.safetensors`, narrow);
  await fails(() => loadExpandedModel(dir), `Tensor '${key}.bitmap' in '${dir}' is U8[`);
  const { [`${key}.values`]: _, ...noValues } = tensors;
  await writeSafetensors(`${dir}/model.safetensors`, noValues);
  await fails(() => loadExpandedModel(dir), `has '${key}.bitmap' but lacks '${key}.values'`);

  // experts that are 2:4 sparse are saved as bitmaps and held packed N:M on load (the fastest
  // form for batched tokens), with the same logits
  for (const b of m.blocks) {
    for (const n of ["gate_proj", "up_proj", "down_proj"] as const) {
      for (const e of (b.linears[n] as ExpertLinear).experts) {
        for (let i = 0; i < e.data.length; i++) {
          if (i % 4 < 2) e.data[i] = 0;
          else if (e.data[i] === 0) e.data[i] = 0.01 * (i % 3 - 1) || 0.01; // every group full
        }
      }
    }
  }
  const want24 = m.forward(ids).data;
  await saveModel(m, MODEL_DIR, `${root}/twofour`, { dtype: "F32" });
  const nm = await loadExpandedModel(`${root}/twofour`, { backend: "cpu" });
  const up = nm.blocks[0]!.linears.up_proj as InstanceType<typeof SparseExpertLinear>;
  assert(up.experts.every((e) => e.format === "nm" && e.matrix.n === 2 && e.matrix.m === 4));
  assertClose(nm.forward(ids).data, want24, { rtol: 1e-4, atol: 1e-4 });
  await Deno.remove(root, { recursive: true });
});

Deno.test({
  name:
    "an expanded model saved and loaded on cuda (bitmap and 2:4 experts routed on the device in bf16) gives the cpu logits",
  ignore: !availableBackends().cuda.ok,
  async fn() {
    const { saveModel, loadExpandedModel } = await import("../../lib/sparse/expansion_io.ts");
    const { SparseExpertLinear } = await import("../../lib/sparse/sparse_expert.ts");
    const { expertStorage } = await import("../../lib/sparse/sparse_expert_cuda.ts");
    const m = await expandedBundled();
    const ids = golden.prompts[1]!.input_ids;
    const root = await Deno.makeTempDir();
    try {
      for (const pattern of ["bitmap", "2:4"] as const) {
        if (pattern === "2:4") {
          // every expert made 2:4 (two of each four kept): held as 2:4 weights on the device
          for (const b of m.blocks) {
            for (const n of ["gate_proj", "up_proj", "down_proj"] as const) {
              for (const e of (b.linears[n] as ExpertLinear).experts) {
                for (let i = 0; i < e.data.length; i++) {
                  if (i % 4 < 2) e.data[i] = 0;
                  else if (e.data[i] === 0) e.data[i] = 0.01;
                }
              }
            }
          }
        }
        const want = m.forward(ids).data;
        await saveModel(m, MODEL_DIR, `${root}/${pattern}`, { dtype: "F32" });
        const live = DeviceBuffer.live;
        const onGpu = await loadExpandedModel(`${root}/${pattern}`, { backend: "cuda" });
        for (const b of onGpu.blocks) {
          for (const l of Object.values(b.linears)) {
            if (!(l instanceof SparseExpertLinear)) continue;
            assertEquals(expertStorage(l.experts), pattern, "the storage the device layer takes");
          }
        }
        const got = onGpu.forward(ids).data;
        // bf16 weights and activations in the routed layers: about 2⁻⁸ relative per product
        const err = relativeL2Error(got, want);
        assert(err < 1e-2, `${pattern}: relative L2 error ${err}`);
        // and the same next-token choice at nearly every position
        const vocab = got.length / ids.length;
        let same = 0;
        for (let t = 0; t < ids.length; t++) {
          const arg = (a: ArrayLike<number>) => {
            let best = 0;
            for (let v = 1; v < vocab; v++) if (a[t * vocab + v]! > a[t * vocab + best]!) best = v;
            return best;
          };
          same += arg(got) === arg(want) ? 1 : 0;
        }
        assert(same >= 0.9 * ids.length, `${pattern}: ${same} of ${ids.length} argmaxes agree`);
        // the model's dispose frees every device copy, the routed layers' included
        onGpu.dispose();
        assertEquals(DeviceBuffer.live, live, `${pattern}: device buffers left after dispose`);
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  },
});
