// The model scripts end to end: outputs on success; one sentence, exit 1 and no output files on
// bad input.
import { assert, assertClose, assertEquals } from "@std/assert";
import { runDeno } from "../_util.ts";
import { assertReport } from "../report/_check.ts";

function run(script: string, args: string[], flags: string[]) {
  return runDeno(["run", "--no-prompt", ...flags, `scripts/${script}`, ...args]);
}

const TMP_FLAGS = (tmp: string) => [
  `--allow-read=data,${tmp}`,
  `--allow-write=${tmp}`,
  "--allow-ffi=ffi/build",
  "--allow-env=LMKIT_BACKEND",
];

Deno.test("perplexity.ts on a JSONL field writes results.json, windows.csv and report.md", async () => {
  const tmp = await Deno.makeTempDir();
  const text = "The city of Paris is in France. Die Stadt Paris liegt in Frankreich. ".repeat(12);
  await Deno.writeTextFile(
    `${tmp}/docs.jsonl`,
    `${JSON.stringify({ body: text })}\n${JSON.stringify({ body: text })}\n`,
  );
  const r = await run(
    "perplexity.ts",
    [
      "--jsonl",
      `${tmp}/docs.jsonl`,
      "--field",
      "body",
      "--context",
      "128",
      "--out",
      `${tmp}/out`,
      "--json",
    ],
    TMP_FLAGS(tmp),
  );
  assertEquals(r.code, 0, r.stderr);
  const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
  assertEquals(res.windows, Math.floor((2 * (text.length + 2) - 1) / 128));
  assert(res.bitsPerByte > 0 && res.bitsPerByte < 8, `bits/byte ${res.bitsPerByte}`);
  assertEquals(
    (await Deno.readTextFile(`${tmp}/out/windows.csv`)).trim().split("\n").length,
    res.windows + 1,
  );
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("perplexity.ts: a record without the field fails in one sentence and writes nothing", async () => {
  const tmp = await Deno.makeTempDir();
  await Deno.writeTextFile(`${tmp}/docs.jsonl`, '{"body":"hello"}\n{"text":"x"}\n');
  const r = await run("perplexity.ts", [
    "--jsonl",
    `${tmp}/docs.jsonl`,
    "--field",
    "body",
    "--out",
    `${tmp}/out`,
  ], TMP_FLAGS(tmp));
  assertEquals(r.code, 1);
  assertEquals(r.stderr.trim(), `error: '${tmp}/docs.jsonl' line 2 has no string field "body"`);
  let exists = true;
  try {
    await Deno.stat(`${tmp}/out`);
  } catch {
    exists = false;
  }
  assertEquals(exists, false);
  // a --golden file without a validation batch
  await Deno.writeTextFile(`${tmp}/golden.json`, '{"prompts": []}');
  const g = await run(
    "perplexity.ts",
    ["--golden", `${tmp}/golden.json`, "--out", `${tmp}/out`],
    TMP_FLAGS(tmp),
  );
  assertEquals(g.code, 1);
  assertEquals(
    g.stderr.trim(),
    `error: '${tmp}/golden.json' has no val_batch.sequences array of token id lists`,
  );
  // a file that is not there: said plainly by the script harness, not in the system's words
  const m = await run(
    "perplexity.ts",
    ["--text", `${tmp}/none.txt`, "--out", `${tmp}/out`],
    TMP_FLAGS(tmp),
  );
  assertEquals(m.code, 1);
  assertEquals(m.stderr.trim(), `error: '${tmp}/none.txt' does not exist`);
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("deno task demo -- --out DIR checks kernels, loss and continuation against golden.json; a wrong golden figure fails", async () => {
  const tmp = await Deno.makeTempDir({ dir: "out" }); // the task may write under out/ only
  try {
    const r = await runDeno(["task", "demo", "--", "--out", `${tmp}/run`]);
    assertEquals(r.code, 0, r.stderr);
    assert(
      r.stdout.includes("   matches golden.json: 1.254608 nats/token, 1.8279 bits/byte"),
      r.stdout,
    );
    assert(r.stdout.includes("identical to golden.json's (50 tokens)"), r.stdout);
    const res = JSON.parse(await Deno.readTextFile(`${tmp}/run/results.json`));
    assert(res.ok && res.validation.absDelta <= 1e-4, JSON.stringify(res.validation));
    // a model folder whose golden.json says another loss: the demo says so and exits 1
    await Deno.mkdir(`${tmp}/model`);
    for (const f of ["config.json", "model.safetensors"]) {
      await Deno.copyFile(`data/models/tinyllama-bytes/${f}`, `${tmp}/model/${f}`);
    }
    const g = JSON.parse(await Deno.readTextFile("data/models/tinyllama-bytes/golden.json"));
    g.val_batch.mean_loss_nats += 0.01;
    await Deno.writeTextFile(`${tmp}/model/golden.json`, JSON.stringify(g));
    const bad = await runDeno([
      "task",
      "demo",
      "--",
      "--model",
      `${tmp}/model`,
      "--out",
      `${tmp}/bad`,
    ]);
    assertEquals(bad.code, 1);
    assert(bad.stdout.includes("DIFFERS FROM golden.json: 1.264608"), bad.stdout);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("generate.ts: bad options fail in one sentence before the prompt is printed", async () => {
  const flags = ["--allow-read=data", "--allow-ffi=ffi/build", "--allow-env=LMKIT_BACKEND"];
  const k = await run("generate.ts", ["--top-k", "0"], flags);
  assertEquals([k.code, k.stdout, k.stderr.trim()], [
    1,
    "",
    "error: --top-k '0' is not an integer ≥ 1",
  ]);
  const long = await run("generate.ts", ["--prompt", "Hi", "--max-new-tokens", "510"], flags);
  assertEquals(long.code, 1);
  assertEquals(long.stdout, "");
  assertEquals(
    long.stderr.trim(),
    "error: 3 prompt tokens + 510 new tokens exceed the model's context of 512 positions (max_position_embeddings)",
  );
});

Deno.test("generate.ts --json reproduces the golden greedy continuation", async () => {
  const r = await run("generate.ts", ["--json"], [
    "--allow-read=data",
    "--allow-ffi=ffi/build",
    "--allow-env=LMKIT_BACKEND",
  ]);
  assertEquals(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout);
  assertEquals(res.text, "  The problem with the problem with the problem wi");
});

Deno.test("sparse_expand.ts --save writes a pruned checkpoint that loads back; bad options fail in one sentence", async () => {
  const tmp = await Deno.makeTempDir();
  const flags = TMP_FLAGS(tmp);
  const r = await run(
    "sparse_expand.ts",
    [
      "--methods",
      "magnitude",
      "--sparsities",
      "0.5",
      "--calib-windows",
      "1",
      "--save",
      `${tmp}/pruned`,
      "--out",
      `${tmp}/out`,
    ],
    flags,
  );
  assertEquals(r.code, 0, r.stderr);
  const { LlamaModel } = await import("../../lib/model/llama.ts");
  const m = await LlamaModel.load(`${tmp}/pruned`, { backend: "cpu" });
  const w =
    (m.blocks[0]!.linears.gate_proj as unknown as { weight: { data: Float32Array } }).weight.data;
  assertEquals(w.reduce((a, v) => a + (v === 0 ? 1 : 0), 0), w.length / 2);
  const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
  assertEquals(res.rows.map((x: { method: string }) => x.method), ["dense", "magnitude"]);
  const bad = await run("sparse_expand.ts", ["--sparsities", "1.2", "--out", `${tmp}/o2`], flags);
  assertEquals(bad.code, 1);
  assertEquals(
    bad.stderr.trim(),
    "error: --sparsities '1.2' is not a number in [1e-9, 0.999999999]",
  );
  // the N:M pattern runs after the unstructured sparsities, but is checked before any of them
  const nm = await run("sparse_expand.ts", [
    "--methods",
    "magnitude",
    "--nm",
    "3:7",
    "--calib-windows",
    "1",
    "--out",
    `${tmp}/o3`,
  ], flags);
  assertEquals(nm.code, 1);
  assertEquals(
    nm.stderr.trim(),
    "error: Block 0 gate_proj: N:M pattern 3:7 needs M to divide the 256 columns",
  );
  const data = await run(
    "sparse_expand.ts",
    ["--data", `${tmp}/none`, "--out", `${tmp}/o5`],
    flags,
  );
  assertEquals(data.code, 1);
  assertEquals(
    data.stderr.trim(),
    `error: '${tmp}/none/toxic_spans/acl2022_raw/comments.csv' does not exist`,
  );
  const names = await run(
    "sparse_expand.ts",
    ["--names", "gate_proj,mlp.up", "--out", `${tmp}/o4`],
    flags,
  );
  assertEquals(names.code, 1);
  assertEquals(
    names.stderr.trim(),
    "error: --names has 'mlp.up': expected projections among q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
  );
  // experts are saved compressed and load back as SparseExpertLinear
  const se = await run("sparse_expand.ts", [
    "--methods",
    "expand",
    "--experts",
    "2",
    "--sparsities",
    "0.5",
    "--calib-windows",
    "2",
    "--restarts",
    "1",
    "--save",
    `${tmp}/expanded`,
    "--out",
    `${tmp}/o5`,
  ], flags);
  assertEquals(se.code, 0, se.stderr);
  const { loadExpandedModel } = await import("../../lib/sparse/expansion_io.ts");
  const { SparseExpertLinear } = await import("../../lib/sparse/sparse_expert.ts");
  const back = await loadExpandedModel(`${tmp}/expanded`, { backend: "cpu" });
  assert(back.blocks.every((b) => b.linears.down_proj instanceof SparseExpertLinear));
  // and generate.ts continues a prompt with it (experts as bitmaps: the decoding form)
  const gen = await run("generate.ts", [
    "--model",
    `${tmp}/expanded`,
    "--max-new-tokens",
    "8",
    "--json",
  ], flags);
  assertEquals(gen.code, 0, gen.stderr);
  assertEquals(JSON.parse(gen.stdout).generatedIds.length, 8);
  const rows = JSON.parse(await Deno.readTextFile(`${tmp}/o5/results.json`)).rows;
  const { bitmapBytes, denseBytes } = rows[1];
  assert(bitmapBytes < 0.6 * denseBytes, `${bitmapBytes} of ${denseBytes}`);
  // the saved checkpoint (F16, as its source) scores as the expanded model did in memory on the
  // same held-out batch
  const ppl = await run("perplexity.ts", [
    "--model",
    `${tmp}/expanded`,
    "--golden",
    "data/models/tinyllama-bytes/golden.json",
    "--out",
    `${tmp}/o6`,
    "--json",
  ], flags);
  assertEquals(ppl.code, 0, ppl.stderr);
  const bpb = JSON.parse(ppl.stdout.slice(ppl.stdout.indexOf("{"))).bitsPerByte;
  assertClose([bpb], [rows[1].bitsPerByte], { atol: 2e-3 });
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("sparse_expand.ts --seed LIST runs every method per seed and reports mean ± sd", async () => {
  const tmp = await Deno.makeTempDir();
  const flags = TMP_FLAGS(tmp);
  const args = ["--methods", "magnitude,wanda", "--sparsities", "0.7", "--calib-windows", "1"];
  const r = await run("sparse_expand.ts", [...args, "--seed", "3, 5", "--out", `${tmp}/o`], flags);
  assertEquals(r.code, 0, r.stderr);
  const res = JSON.parse(await Deno.readTextFile(`${tmp}/o/results.json`));
  assertEquals(res.seeds, [3, 5]);
  assertEquals(
    res.rows.map((x: { method: string; seed?: number }) => `${x.method}@${x.seed ?? "-"}`),
    ["dense@-", "magnitude@3", "wanda@3", "magnitude@5", "wanda@5"],
  );
  type Row = { method: string; bitsPerByte: number; sd?: number; seeds?: number };
  const per = (m: string) =>
    res.rows.filter((x: Row) => x.method === m).map((x: Row) => x.bitsPerByte);
  const sum = (m: string) => res.summary.find((x: Row) => x.method === m) as Row;
  // magnitude ignores the calibration windows: the same score, sd 0
  assertEquals(sum("magnitude").sd, 0);
  const [w3, w5] = per("wanda");
  assert(w3 !== w5, "wanda should depend on the calibration windows");
  assertClose([sum("wanda").bitsPerByte], [(w3 + w5) / 2], { rtol: 1e-12 });
  assertClose([sum("wanda").sd!], [Math.abs(w3 - w5) / Math.SQRT2], { rtol: 1e-9 });
  assertEquals(sum("wanda").seeds, 2);
  // a single seed of them reproduces its row
  const one = await run("sparse_expand.ts", [...args, "--seed", "5", "--out", `${tmp}/o1`], flags);
  assertEquals(one.code, 0, one.stderr);
  const rows1 = JSON.parse(await Deno.readTextFile(`${tmp}/o1/results.json`)).rows;
  assertEquals(rows1.find((x: Row) => x.method === "wanda").bitsPerByte, w5);
  const save = await run("sparse_expand.ts", [
    ...args.slice(0, 1),
    "magnitude",
    "--seed",
    "1,2",
    "--save",
    `${tmp}/s`,
    "--out",
    `${tmp}/o2`,
  ], flags);
  assertEquals(save.code, 1);
  assert(save.stderr.includes("--save needs exactly one method, one sparsity pattern, one seed"));
  await Deno.remove(tmp, { recursive: true });
});

Deno.test("wasserstein_neurons.ts end to end on a small calibration set writes every table", async () => {
  const tmp = await Deno.makeTempDir();
  const flags = TMP_FLAGS(tmp);
  const r = await run(
    "wasserstein_neurons.ts",
    [
      "--calib-windows",
      "2",
      "--random-draws",
      "2",
      "--heldout",
      "4",
      "--experts",
      "2",
      "--method",
      "magnitude",
      "--out",
      `${tmp}/out`,
    ],
    flags,
  );
  assertEquals(r.code, 0, r.stderr);
  const res = JSON.parse(await Deno.readTextFile(`${tmp}/out/results.json`));
  assertEquals(res.layers.length, 12); // 6 blocks × gate/up
  // dense, prune all, keep top, 2 random draws, prune only top, 2 random draws, 2 means, expansion
  assertEquals(res.ablation.length, 11);
  assertEquals(res.expansionShift.length, 6);
  const csv = (await Deno.readTextFile(`${tmp}/out/neurons.csv`)).trim().split("\n");
  assertEquals(csv.length, 1 + 12 * 768);
  const hists = [0, 1, 2, 3, 4, 5].map((l) => `outputs-layer-${l}`);
  await assertReport(`${tmp}/out`, [
    "w1-per-layer",
    "ablation-keep-dense",
    "ablation-prune-only",
    ...hists,
  ]);
  // bad options, the ablation's too: refused before the measurement, not minutes later when used
  for (
    const [args, message] of [
      [["--percent", "150"], "--percent '150' is not a number in [1e-9, 99.999]"],
      [["--experts", "0"], "--experts '0' is not an integer ≥ 1"],
      [["--context", "512"], "--context '512' is not an integer in [2, 511]"],
    ] as const
  ) {
    const bad = await run("wasserstein_neurons.ts", [...args, "--out", `${tmp}/o2`], flags);
    assertEquals([bad.code, bad.stderr.trim()], [1, `error: ${message}`]);
  }
  // --no-ablation: the neuron tables only, no empty ablation tables
  const only = await run(
    "wasserstein_neurons.ts",
    ["--no-ablation", "--calib-windows", "2", "--out", `${tmp}/o3`],
    flags,
  );
  assertEquals(only.code, 0, only.stderr);
  const files = [...Deno.readDirSync(`${tmp}/o3`)].map((e) => e.name).sort();
  assertEquals(files, [
    ...hists.map((h) => `chart-${h}.vl.json`),
    "chart-w1-per-layer.vl.json",
    "layers.json",
    "neurons.csv",
    "report.html",
    "report.md",
    "results.json",
  ]);
  await assertReport(`${tmp}/o3`, ["w1-per-layer", ...hists]);
  await Deno.remove(tmp, { recursive: true });
});
