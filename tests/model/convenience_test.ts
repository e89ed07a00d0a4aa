// The convenience entry points against independent references: perplexity() against what
// scripts/perplexity.ts computes on the same input and against golden.json; pruneLayers and
// quantizeLayers against the whole-model pipelines the scripts run (pruneModel, quantizeModel) on
// the same projections; bad input fails with one sentence.
import { assert, assertAlmostEquals, assertEquals, assertRejects } from "@std/assert";
import { LlamaModel } from "../../lib/model/llama.ts";
import { checkGolden, loadGoldenBatch } from "../../lib/model/golden.ts";
import { perplexity } from "../../lib/model/text_perplexity.ts";
import { selectLinears } from "../../lib/model/layer_names.ts";
import type { DenseLinear } from "../../lib/model/linear.ts";
import { pruneLayers } from "../../lib/sparse/prune_layers.ts";
import { pruneModel } from "../../lib/sparse/prune_model.ts";
import { magnitudePrune } from "../../lib/sparse/baselines.ts";
import { quantizeLayers } from "../../lib/quant/quantize_layers.ts";
import { quantizeModel } from "../../lib/quant/quantize_model.ts";
import { rtn } from "../../lib/quant/gptq.ts";
import type { LinearName } from "../../lib/model/llama.ts";
import { runDeno } from "../_util.ts";
import { MODEL_DIR } from "./_golden.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const PUD_DE = `${ROOT}data/multilingual_text/ud_pud/pud_de.jsonl`;
const load = () => LlamaModel.load(MODEL_DIR, { backend: "cpu" });
const weightOf = (m: LlamaModel, layer: number, name: LinearName) =>
  (m.blocks[layer]!.linears[name] as DenseLinear).weight.data;

/** Calibration: three short windows of German text (bytes), as the scripts would feed. */
const CALIB: number[][] = (() => {
  const enc = new TextEncoder();
  return [
    "Die Stadt Paris liegt in Frankreich und ist ihre Hauptstadt.",
    "Der Fluss fließt durch die Stadt, und viele Brücken überqueren ihn.",
    "Im Sommer kommen viele Besucher, um die Museen zu sehen.",
  ].map((t) => [256, ...enc.encode(t), 257]);
})();

/** scripts/perplexity.ts on the cpu backend; its results.json. */
async function script(args: string[]): Promise<Record<string, number>> {
  const out = await Deno.makeTempDir();
  try {
    const r = await runDeno([
      "run",
      "--no-prompt",
      "--allow-read",
      `--allow-write=${out}`,
      "--allow-ffi=ffi/build",
      // the same build of the CPU library as this process (ffi/cpu/avx2_check.sh sets it)
      "--allow-env=LMKIT_BACKEND,LMKIT_CPU_BUILD",
      "scripts/perplexity.ts",
      "--backend",
      "cpu",
      "--out",
      out,
      "--overwrite",
      ...args,
    ]);
    assertEquals(r.code, 0, r.stderr);
    return JSON.parse(await Deno.readTextFile(`${out}/results.json`));
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test("perplexity: a text file, the text itself and its JSONL records give what perplexity.ts gives", async () => {
  const file = await Deno.makeTempFile({ suffix: ".txt" });
  const lines: string[] = [];
  for (const l of (await Deno.readTextFile(PUD_DE)).split("\n").slice(0, 6)) {
    if (l.trim()) lines.push(JSON.parse(l).text);
  }
  const text = lines.join("\n");
  await Deno.writeTextFile(file, text);
  try {
    const ref = await script(["--text", file, "--context", "64", "--stride", "48"]);
    const model = await load();
    const a = await perplexity(model, { file }, { context: 64, stride: 48 });
    const b = await perplexity(model, text, { context: 64, stride: 48 });
    for (const r of [a, b]) {
      assertEquals(r.tokens, ref.tokens);
      assertEquals(r.windows, ref.windows);
      assertEquals(r.meanNats, ref.meanNats);
      assertEquals(r.bitsPerByte, ref.bitsPerByte);
      assertEquals(r.byteTargets, ref.byteTargets);
      assertAlmostEquals(r.perplexity, Math.exp(ref.meanNats!), 1e-12);
      assertAlmostEquals(r.nats, ref.meanNats! * ref.tokens!, 1e-9);
    }
    // the JSONL field and the same records as a list of documents
    const refJ = await script(["--jsonl", PUD_DE, "--context", "96", "--max-windows", "5"]);
    const j = await perplexity(model, { jsonl: PUD_DE, field: "text" }, {
      context: 96,
      maxWindows: 5,
    });
    const all: string[] = (await Deno.readTextFile(PUD_DE)).split("\n").filter((l) => l.trim())
      .map((l) => JSON.parse(l).text);
    const d = await perplexity(model, all, { context: 96, maxWindows: 5 });
    for (const r of [j, d]) {
      assertEquals([r.tokens, r.meanNats, r.bitsPerByte], [
        refJ.tokens,
        refJ.meanNats,
        refJ.bitsPerByte,
      ]);
    }
  } finally {
    await Deno.remove(file);
  }
});

Deno.test("perplexity: a model folder and a short text scored whole", async () => {
  const r = await perplexity(MODEL_DIR, "Hallo Welt", { backend: "cpu" });
  assertEquals([r.windows, r.tokens, r.context, r.byteTargets], [1, 11, 11, 10]);
  const model = await load();
  const direct = await perplexity(model, {
    sequences: [[256, ...new TextEncoder().encode("Hallo Welt"), 257]],
  });
  assertEquals(r.meanNats, direct.meanNats);
});

Deno.test("golden batch: the loader's figures, perplexity.ts's first windows, and golden.json's loss to 1e-4", async () => {
  const g = await loadGoldenBatch(MODEL_DIR);
  assertEquals(g.sequences.length, 64);
  assertEquals(g.inputs[3], g.sequences[3]!.slice(0, 256));
  assertEquals(g.targets[3], g.sequences[3]!.slice(1));
  assertEquals(g.reference.tokens, 64 * 256);
  assert(g.byteLevel);
  // the same file read as a path to golden.json
  assertEquals((await loadGoldenBatch(`${MODEL_DIR}/golden.json`)).reference, g.reference);

  const ref = await script(["--max-windows", "4"]);
  const model = await load();
  const first = await perplexity(model, { sequences: g.sequences }, { maxWindows: 4 });
  assertEquals([first.tokens, first.meanNats, first.bitsPerByte], [
    ref.tokens,
    ref.meanNats,
    ref.bitsPerByte,
  ]);

  const c = await checkGolden(model);
  assert(c.ok, `|Δ| = ${c.absDelta}`);
  assertAlmostEquals(c.meanNats, g.reference.meanNats, 1e-4);
  assertAlmostEquals(c.bitsPerByte, g.reference.bitsPerByte, 1.5e-4);
  console.log(
    `golden batch: ${c.meanNats} nats/token (golden ${g.reference.meanNats}, |Δ| ${
      c.absDelta.toExponential(2)
    }), ${c.bitsPerByte} bits/byte (golden ${g.reference.bitsPerByte})`,
  );
  // a model that does not reproduce it fails the check
  (model.blocks[0]!.linears.down_proj as DenseLinear).setWeight(
    magnitudePrune((model.blocks[0]!.linears.down_proj as DenseLinear).weight, { sparsity: 0.9 })
      .weight,
  );
  const bad = await checkGolden(model, { golden: `${MODEL_DIR}/golden.json` });
  assert(!bad.ok && bad.absDelta > 1e-3, `${bad.absDelta}`);
});

Deno.test("pruneLayers: one layer with SparseGPT is pruneModel's result for that layer", async () => {
  const a = await load(), b = await load();
  const [s] = await pruneLayers(a, {
    layers: "model.layers.0.mlp.down_proj",
    method: "sparsegpt",
    sparsity: 0.5,
    calibration: CALIB,
    progress: false,
  });
  const ref = await pruneModel(b, CALIB, {
    method: "sparsegpt",
    sparsity: 0.5,
    names: ["down_proj"],
    progress: false,
  });
  assertEquals(weightOf(a, 0, "down_proj"), weightOf(b, 0, "down_proj"));
  assertEquals(s!.sparsity, ref[0]!.sparsity);
  assertEquals([s!.module, s!.layer, s!.name], ["model.layers.0.mlp.down_proj", 0, "down_proj"]);
  assert(s!.outputError! > 0 && s!.relativeOutputError! < 0.5, JSON.stringify(s));
  // nothing else changed
  const fresh = await load();
  assertEquals(weightOf(a, 1, "down_proj"), weightOf(fresh, 1, "down_proj"));
  assertEquals(weightOf(a, 0, "up_proj"), weightOf(fresh, 0, "up_proj"));
});

Deno.test("pruneLayers: a '*' pattern over every block with Wanda 2:4 is pruneModel's result, block by block", async () => {
  const a = await load(), b = await load();
  const stats = await pruneLayers(a, {
    layers: "model.layers.*.mlp.up_proj",
    method: "wanda",
    nm: [2, 4],
    calibration: CALIB,
    progress: false,
  });
  await pruneModel(b, CALIB, { method: "wanda", nm: [2, 4], names: ["up_proj"], progress: false });
  assertEquals(stats.map((s) => s.layer), [0, 1, 2, 3, 4, 5]);
  for (let l = 0; l < 6; l++) assertEquals(weightOf(a, l, "up_proj"), weightOf(b, l, "up_proj"));
  for (const s of stats) assertEquals(s.sparsity, 0.5);
  // magnitude needs no calibration and is magnitudePrune of the layer
  const c = await load(), fresh = await load();
  const [m] = await pruneLayers(c, {
    layers: ["model.layers.2.self_attn.q_proj.weight"],
    method: "magnitude",
    sparsity: 0.3,
  });
  assertEquals(
    weightOf(c, 2, "q_proj"),
    magnitudePrune((fresh.blocks[2]!.linears.q_proj as DenseLinear).weight, { sparsity: 0.3 })
      .weight.data,
  );
  assertEquals(m!.outputError, undefined);
  assert(m!.weightError > 0 && m!.weightError < 1);
});

Deno.test("quantizeLayers: GPTQ on named layers is quantizeModel's result on them (true-sequential)", async () => {
  const a = await load(), b = await load();
  const opts = { bits: 4, groupSize: 64, actOrder: true };
  const stats = await quantizeLayers(a, {
    layers: ["model.layers.0.self_attn.o_proj", "model.layers.0.self_attn.k_proj"],
    method: "gptq",
    calibration: CALIB,
    progress: false,
    ...opts,
  });
  const ref = await quantizeModel(b, CALIB, {
    ...opts,
    names: ["k_proj", "o_proj"],
    progress: false,
  });
  assertEquals(stats.map((s) => s.name), ["k_proj", "o_proj"]);
  for (const s of stats) {
    const r = ref.find((q) => q.layer === 0 && q.name === s.name)!;
    assertEquals(s.quantized.levels, r.quantized.levels);
    assertEquals(s.quantized.scales, r.quantized.scales);
    assertEquals(s.outputError, r.error);
    assertEquals(weightOf(a, 0, s.name), weightOf(b, 0, s.name));
  }
  // a bare projection name is every block; RTN is rtn() of each weight
  const c = await load(), fresh = await load();
  const rt = await quantizeLayers(c, { layers: "gate_proj", method: "rtn", bits: 3 });
  assertEquals(rt.length, 6);
  assertEquals(
    weightOf(c, 4, "gate_proj"),
    rtn((fresh.blocks[4]!.linears.gate_proj as DenseLinear).weight, { bits: 3 }).weight.data,
  );
});

Deno.test("bad input fails with one sentence naming it", async () => {
  const model = await load();
  const fails = async (p: Promise<unknown>, start: string) => {
    const e = await assertRejects(() => p);
    const msg = (e as Error).message;
    assert(msg.startsWith(start), msg);
    assert(!msg.includes("\n"), msg);
  };
  await fails(
    pruneLayers(model, {
      layers: "model.layers.9.mlp.down_proj",
      method: "magnitude",
      sparsity: 0.5,
    }),
    "Unknown layer 'model.layers.9.mlp.down_proj': expected a module name such as 'model.layers.0.self_attn.q_proj'",
  );
  await fails(
    quantizeLayers(model, { layers: ["lm_head"], method: "rtn", bits: 4 }),
    "Unknown layer 'lm_head'",
  );
  await fails(
    pruneLayers(model, { layers: /layers\.7\./, method: "magnitude", sparsity: 0.5 }),
    "Layer pattern /layers\\.7\\./ matches no projection",
  );
  await fails(
    pruneLayers(model, { layers: [], method: "magnitude", sparsity: 0.5 }),
    "The list of layers is empty",
  );
  await fails(
    pruneLayers(model, { layers: "down_proj", method: "magnitude", sparsity: 1.5 }),
    "Sparsity 1.5 is outside (0, 1)",
  );
  await fails(
    pruneLayers(model, { layers: "down_proj", method: "magnitude", sparsity: 0 }),
    "Sparsity 0 is outside (0, 1)",
  );
  await fails(
    pruneLayers(model, { layers: "down_proj", method: "magnitude", nm: [3, 7] }),
    "Layer 'model.layers.0.mlp.down_proj': N:M pattern 3:7 needs M to divide",
  );
  await fails(
    pruneLayers(model, { layers: "down_proj", method: "obs" as "wanda", sparsity: 0.5 }),
    `Unknown pruning method "obs"`,
  );
  await fails(
    pruneLayers(model, { layers: "down_proj", method: "sparsegpt", sparsity: 0.5 }),
    "Pruning with sparsegpt needs calibration token sequences",
  );
  await fails(
    quantizeLayers(model, { layers: "down_proj", bits: 4 }),
    "GPTQ needs calibration token sequences",
  );
  await fails(
    quantizeLayers(model, { layers: "down_proj", method: "rtn", bits: 9 }),
    "Layer 'model.layers.0.mlp.down_proj': Cannot quantize to 9 bits",
  );
  await fails(perplexity(model, ""), "The text is empty");
  await fails(perplexity(model, ["", "  "]), "The 2 documents are all empty");
  await fails(
    perplexity(model, "Hallo", { context: 64 }),
    "The text (5 characters) gives 7 tokens, fewer than one window of 65",
  );
  await fails(
    perplexity(model, "Hallo", { context: 0 }),
    "Context 0 is not an integer from 1 to 512",
  );
  await fails(
    perplexity(model, { sequences: [[256, 300, 1]] }),
    "Sequence 0 has token 300 at position 1, outside the vocabulary [0, 258)",
  );
  await fails(
    perplexity(model, "Hallo", { backend: "ts" }),
    "Backend 'ts' was asked for a model already loaded on 'cpu'",
  );
  await fails(
    loadGoldenBatch("no/such/model"),
    "'no/such/model' has no golden.json validation batch",
  );
  // a failed prune changed nothing
  const fresh = await load();
  assertEquals(weightOf(model, 0, "down_proj"), weightOf(fresh, 0, "down_proj"));
  assertEquals(selectLinears(model, "down_proj").length, 6);
});
