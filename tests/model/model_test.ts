import {
  assert,
  assertAlmostEquals,
  assertClose,
  assertEquals,
  assertNotEquals,
  assertRejects,
  assertThrows,
} from "@std/assert";
import { FormatError, NumericalError } from "../../lib/core/errors.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { openCheckpoint, type Tensor, writeSafetensors } from "../../lib/io/safetensors.ts";
import { runCalibration } from "../../lib/model/calibration.ts";
import { parseLlamaConfig } from "../../lib/model/config.ts";
import { argmax, generate, sampleToken } from "../../lib/model/generate.ts";
import { DenseLinear } from "../../lib/model/linear.ts";
import { KVCache, LlamaModel, rmsNorm, ropeInvFreq } from "../../lib/model/llama.ts";
import { evaluateLoss, tokenStream, tokenWindows } from "../../lib/model/perplexity.ts";
import { ByteTokenizer, HfTokenizer, loadTokenizer } from "../../lib/model/tokenizer.ts";
import { freshSeed } from "../_util.ts";
import { golden, model, MODEL_DIR } from "./_golden.ts";

const prompt = golden.prompts[0]!.input_ids;

Deno.test("KV cache: prefill + one token at a time gives the full forward's logits", async () => {
  const m = await model("cpu");
  const full = m.forward(prompt);
  const cache = new KVCache(m.config, prompt.length);
  const first = m.forward(prompt.slice(0, 20), { cache });
  assertClose(first.data, full.data.subarray(0, 20 * full.cols), { rtol: 1e-5 });
  for (let t = 20; t < prompt.length; t++) {
    const row = m.forward([prompt[t]!], { cache, lastOnly: true });
    assertClose(row.data, full.data.subarray(t * full.cols, (t + 1) * full.cols), { rtol: 1e-5 });
  }
  assertEquals(cache.length, prompt.length);
  assertThrows(() => m.forward([1], { cache }), RangeError, "KV cache holding 32 of 32");
  assertThrows(
    () => m.forward([300]),
    RangeError,
    "Token id 300 at position 0 is outside the vocabulary",
  );
  // past max_position_embeddings (512): refused, whether in one run or through a cache
  assertEquals(m.forward(new Array(512).fill(65), { lastOnly: true }).rows, 1);
  assertThrows(
    () => m.forward(new Array(513).fill(65), { lastOnly: true }),
    RangeError,
    "Position 512 is past the model's context of 512 positions (max_position_embeddings)",
  );
  const long = new KVCache(m.config, 600);
  m.forward(new Array(512).fill(65), { cache: long, lastOnly: true });
  assertThrows(() => m.forward([65], { cache: long }), RangeError, "Position 512 is past");
});

Deno.test("hooks: every linear is observed with the right shapes; replacing outputs and the residual stream intervenes", async () => {
  const m = await model("cpu"), c = m.config;
  const seen = new Map<string, [number, number, number, number]>();
  const base = m.forward(prompt, {
    hooks: {
      linear: (e) =>
        void seen.set(`${e.layer}.${e.name}`, [
          e.input.rows,
          e.input.cols,
          e.output.rows,
          e.output.cols,
        ]),
    },
  });
  assertEquals(seen.size, 7 * c.numLayers);
  assertEquals(seen.get("0.k_proj"), [32, c.hiddenSize, 32, c.numKvHeads * c.headDim]);
  assertEquals(seen.get("5.down_proj"), [32, c.intermediateSize, 32, c.hiddenSize]);
  // zeroing the last block's MLP output equals running the model with a zero down_proj weight
  const zeroed = m.forward(prompt, {
    hooks: {
      linear: (e) =>
        e.layer === 5 && e.name === "down_proj"
          ? Matrix.zeros(e.output.rows, e.output.cols)
          : undefined,
    },
  });
  const down = m.blocks[5]!.linears.down_proj;
  m.blocks[5]!.linears.down_proj = new DenseLinear(
    Matrix.zeros(down.outFeatures, down.inFeatures),
    { backend: "cpu" },
  );
  const reference = m.forward(prompt);
  m.blocks[5]!.linears.down_proj = down;
  assertClose(zeroed.data, reference.data, { rtol: 1e-6 });
  assertNotEquals(Array.from(zeroed.data.slice(0, 10)), Array.from(base.data.slice(0, 10)));
  // residual stream: read after block 2, then write position 5 only
  let captured: Matrix | undefined;
  m.forward(prompt, {
    hooks: {
      residual: (e) =>
        void (e.layer === 2 &&
          (captured = new Matrix(e.hidden.rows, e.hidden.cols, e.hidden.data.slice()))),
    },
  });
  assertEquals(captured?.shape, [32, c.hiddenSize]);
  const steered = m.forward(prompt, {
    hooks: {
      residual: (e) => {
        if (e.layer !== 2) return;
        const row = e.hidden.row(e.positions.indexOf(5));
        for (let i = 0; i < row.length; i++) row[i]! *= 0.5;
      },
    },
  });
  const V = base.cols;
  assertClose(steered.data.subarray(0, 5 * V), base.data.subarray(0, 5 * V), { rtol: 1e-6 }); // causal: earlier positions unchanged
  assertNotEquals(
    Array.from(steered.data.subarray(5 * V, 5 * V + 8)),
    Array.from(base.data.subarray(5 * V, 5 * V + 8)),
  );
});

Deno.test("rmsNorm and RoPE frequencies follow HF's formulas", () => {
  const x = Matrix.from([[3, 4]]);
  const y = rmsNorm(x, new Float32Array([1, 2]), 0);
  assertClose(y.data, [3 / Math.sqrt(12.5), 8 / Math.sqrt(12.5)], { rtol: 1e-6 });
  const cfg = parseLlamaConfig(JSON.stringify({
    vocab_size: 8,
    hidden_size: 64,
    intermediate_size: 8,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 8192,
    },
  }));
  const inv = ropeInvFreq(cfg);
  assertAlmostEquals(inv[0]!, 1, 1e-7); // highest frequency: wavelength 2π < 8192/4, unscaled
  assertAlmostEquals(inv[31]!, Math.fround(1 / 500000 ** (62 / 64)) / 8, 1e-12); // lowest: divided by factor
});

Deno.test("calibration: every sequence's linear inputs reach the consumer, and later blocks see compressed earlier blocks", async () => {
  const m = await LlamaModel.load(MODEL_DIR, { backend: "cpu" });
  const seqs = [prompt, golden.prompts[1]!.input_ids];
  const got: Record<string, number> = {};
  let firstQ: Matrix | undefined;
  await runCalibration(m, seqs, {
    names: ["q_proj", "down_proj"],
    add(layer, name, x) {
      got[`${layer}.${name}`] = (got[`${layer}.${name}`] ?? 0) + x.rows;
      if (layer === 1 && name === "q_proj" && !firstQ) {
        firstQ = new Matrix(x.rows, x.cols, x.data.slice());
      }
    },
    finishBlock(layer, block) {
      if (layer === 0) { // "compress" block 0: zero its down_proj
        const d = block.linears.down_proj;
        block.linears.down_proj = new DenseLinear(Matrix.zeros(d.outFeatures, d.inFeatures), {
          backend: "cpu",
        });
      }
    },
  }, { progress: false });
  const rows = seqs[0]!.length + seqs[1]!.length;
  assertEquals(Object.keys(got).length, 2 * m.config.numLayers);
  for (const v of Object.values(got)) assertEquals(v, rows);
  // block 1's q_proj input must come from the compressed block 0
  let expected: Matrix | undefined;
  m.forward(prompt, {
    hooks: { linear: (e) => void (e.layer === 1 && e.name === "q_proj" && (expected = e.input)) },
  });
  assertClose(firstQ!.data, expected!.data, { rtol: 1e-6 });
});

Deno.test("sampling: seeded and reproducible; top-k 1 is greedy; frequencies follow the softmax", () => {
  const logits = [1, 2, 0.5, 2.5];
  const draw = (seed: number) => {
    const rng = new Rng(seed);
    return Array.from({ length: 20 }, () => sampleToken(logits, rng, { temperature: 1 }));
  };
  assertEquals(draw(5), draw(5));
  assertEquals(sampleToken(logits, new Rng(1), { temperature: 1, topK: 1 }), argmax(logits));
  const rng = new Rng(freshSeed()), counts = [0, 0, 0, 0], n = 40000;
  for (let i = 0; i < n; i++) counts[sampleToken(logits, rng, { temperature: 1 })]!++;
  const z = logits.map(Math.exp), s = z.reduce((a, b) => a + b);
  counts.forEach((c, i) => assertAlmostEquals(c / n, z[i]! / s, 0.012));
  const top2 = new Set(
    Array.from({ length: 200 }, () => sampleToken(logits, rng, { temperature: 1, topP: 0.6 })),
  );
  assertEquals([...top2].sort(), [1, 3]); // p(3)=0.53 < 0.6 ≤ p(3)+p(1)
});

Deno.test("generate: sampling with a seed is reproducible and stops at a stop id", async () => {
  const m = await model("cpu");
  const a = generate(m, prompt, { maxNewTokens: 20, temperature: 0.8, topK: 20, seed: 3 });
  assertEquals(a, generate(m, prompt, { maxNewTokens: 20, temperature: 0.8, topK: 20, seed: 3 }));
  const stop = a[4]!;
  const b = generate(m, prompt, {
    maxNewTokens: 20,
    temperature: 0.8,
    topK: 20,
    seed: 3,
    stopIds: [stop],
  });
  assertEquals(b, a.slice(0, a.indexOf(stop) + 1));
  assertThrows(() => generate(m, prompt, { maxNewTokens: -1 }), RangeError);
  // prompt + new tokens beyond max_position_embeddings (512): refused, up to it: fine
  const fill = 512 - prompt.length;
  assertThrows(
    () => generate(m, prompt, { maxNewTokens: fill + 1 }),
    RangeError,
    `${prompt.length} prompt tokens + ${
      fill + 1
    } new tokens exceed the model's context of 512 positions`,
  );
  assertEquals(generate(m, prompt, { maxNewTokens: fill }).length, fill);
});

Deno.test("perplexity: windows, JSONL token streams and bits per byte", async () => {
  assertEquals(tokenWindows([1, 2, 3, 4, 5, 6, 7], 3), [[1, 2, 3, 4], [4, 5, 6, 7]]);
  assertEquals(tokenWindows([1, 2, 3, 4, 5], 2, 1).length, 3);
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/d.jsonl`, '{"text":"ab"}\n{"text":""}\n{"text":"c"}\n');
  const tok = new ByteTokenizer();
  assertEquals(await tokenStream(`${dir}/d.jsonl`, tok, { field: "text" }), [
    256,
    97,
    98,
    257,
    256,
    99,
    257,
  ]);
  await assertRejects(
    () => tokenStream(`${dir}/d.jsonl`, tok, { field: "body" }),
    FormatError,
    'line 1 has no string field "body"',
  );
  const m = await model("cpu");
  const r = evaluateLoss(m, [prompt], { byteLevel: true });
  assertEquals(r.tokens, prompt.length - 1);
  assertEquals(r.byteTargets, prompt.length - 1);
  assertAlmostEquals(r.bitsPerByte, r.meanNats / Math.LN2, 1e-12);
  assertAlmostEquals(r.perplexity, Math.exp(r.meanNats), 1e-9);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tokenizers: bytes round-trip; an HF tokenizer.json (BPE) encodes and decodes", async () => {
  const b = new ByteTokenizer();
  const text = "Ünïcödé — مدينة 巴黎";
  assertEquals(b.decode(b.encode(text, { eos: true })), text);
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(
    new URL("./fixtures/tiny_bpe_tokenizer.json", import.meta.url),
    `${dir}/tokenizer.json`,
  );
  await Deno.writeTextFile(
    `${dir}/tokenizer_config.json`,
    JSON.stringify({ bos_token: "<s>", eos_token: "</s>" }),
  );
  const cfg = parseLlamaConfig(await Deno.readTextFile(`${MODEL_DIR}/config.json`));
  const hf = await loadTokenizer(dir, { ...cfg, tokenizer: null });
  assert(hf instanceof HfTokenizer);
  assertEquals(hf.encode("lower low lowerer", { eos: true }), [0, 10, 8, 10, 9, 1]); // merges l·o, lo·w, e·r, low·er
  assertEquals(hf.decode([0, 10, 8, 1]), "lower low");
  await Deno.remove(`${dir}/tokenizer.json`);
  await assertRejects(
    () => loadTokenizer(dir, { ...cfg, tokenizer: null }),
    FormatError,
    "has no tokenizer.json",
  );
  await Deno.remove(dir, { recursive: true });
});

async function brokenCheckpoint(
  edit: (config: Record<string, unknown>, tensors: Record<string, unknown>) => void,
): Promise<string> {
  const dir = await Deno.makeTempDir();
  const config = JSON.parse(await Deno.readTextFile(`${MODEL_DIR}/config.json`));
  const { SafetensorsFile } = await import("../../lib/io/safetensors.ts");
  using f = await SafetensorsFile.open(`${MODEL_DIR}/model.safetensors`);
  const tensors: Record<string, unknown> = {};
  for (const n of f.names()) tensors[n] = await f.read(n);
  edit(config, tensors);
  await Deno.writeTextFile(`${dir}/config.json`, JSON.stringify(config));
  await writeSafetensors(
    `${dir}/model.safetensors`,
    tensors as Parameters<typeof writeSafetensors>[1],
  );
  return dir;
}

Deno.test("bad checkpoints fail with one message naming the tensor or field", async () => {
  const cases: [(c: Record<string, unknown>, t: Record<string, unknown>) => void, string][] = [
    [
      (_c, t) => delete t["model.layers.3.mlp.up_proj.weight"],
      "lacks tensor 'model.layers.3.mlp.up_proj.weight'",
    ],
    [(c) => c.intermediate_size = 512, "Tensor 'model.layers.0.mlp.gate_proj.weight' in"],
    [(c) => delete c.hidden_size, 'lacks the field "hidden_size"'],
    [(c) => c.num_key_value_heads = 3, "not a multiple of num_key_value_heads 3"],
    [(c) => c.hidden_act = "gelu", 'hidden_act "gelu"'],
    [(_c, t) => {
      const w = t["model.norm.weight"] as { dtype: string; data: Uint16Array; shape: number[] };
      t["model.norm.weight"] = {
        dtype: "I8",
        shape: [w.shape[0]!],
        data: new Int8Array(w.shape[0]!),
      };
    }, "tensor 'model.norm.weight'"],
  ];
  for (const [edit, msg] of cases) {
    const dir = await brokenCheckpoint(edit);
    await assertRejects(() => LlamaModel.load(dir, { backend: "ts" }), FormatError, msg);
    await Deno.remove(dir, { recursive: true });
  }
  const dir = await brokenCheckpoint(() => {});
  const bytes = await Deno.readFile(`${dir}/model.safetensors`);
  const text = new TextDecoder("latin1").decode(bytes.subarray(8, 400));
  const at = text.indexOf('"F16"');
  bytes.set(new TextEncoder().encode('"F17"'), 8 + at);
  await Deno.writeFile(`${dir}/model.safetensors`, bytes);
  await assertRejects(
    () => LlamaModel.load(dir, { backend: "ts" }),
    FormatError,
    'unknown dtype "F17"',
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the tied-embedding path uses the embedding matrix as lm_head", async () => {
  const dir = await brokenCheckpoint((c, t) => {
    c.tie_word_embeddings = true;
    delete t["lm_head.weight"];
  });
  const tied = await LlamaModel.load(dir, { backend: "cpu" });
  const h = tied.embedTokens([256, 65]);
  const manual = tied.head(h); // lm_head must be embedᵀ: compare with a direct product
  const normed = rmsNorm(h, tied.norm, tied.config.rmsNormEps);
  const want = new DenseLinear(tied.embed, { backend: "ts" }).forward(normed);
  assertClose(manual.data, want.data, { rtol: 1e-5 });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the same weights load from F32 shards (index) exactly, and from BF16 approximately", async () => {
  const { SafetensorsFile, toFloat32 } = await import("../../lib/io/safetensors.ts");
  const dir = await Deno.makeTempDir();
  await Deno.copyFile(`${MODEL_DIR}/config.json`, `${dir}/config.json`);
  using f = await SafetensorsFile.open(`${MODEL_DIR}/model.safetensors`);
  const names = f.names();
  const f32: Record<string, Parameters<typeof writeSafetensors>[1][string]> = {};
  const bf16: typeof f32 = {};
  for (const n of names) {
    const t = await f.read(n);
    const data = toFloat32(t);
    f32[n] = { dtype: "F32", shape: t.shape, data };
    const u = new Uint32Array(data.buffer.slice(0));
    bf16[n] = {
      dtype: "BF16",
      shape: t.shape,
      data: Uint16Array.from(u, (x) => (x + 0x7fff + ((x >> 16) & 1)) >>> 16),
    };
  }
  const half = Math.ceil(names.length / 2), weightMap: Record<string, string> = {};
  for (const [i, part] of [names.slice(0, half), names.slice(half)].entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(`${dir}/${file}`, Object.fromEntries(part.map((n) => [n, f32[n]!])));
    for (const n of part) weightMap[n] = file;
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ weight_map: weightMap }),
  );
  const sharded = await LlamaModel.load(dir, { backend: "cpu" });
  const ref = (await model("cpu")).forward(prompt);
  assertEquals(sharded.forward(prompt).data, ref.data);
  const bdir = await Deno.makeTempDir();
  await Deno.copyFile(`${MODEL_DIR}/config.json`, `${bdir}/config.json`);
  await writeSafetensors(`${bdir}/model.safetensors`, bf16);
  const b = (await LlamaModel.load(bdir, { backend: "cpu" })).forward(prompt);
  assertClose(b.data, ref.data, { rtol: 5e-2 }); // bf16 keeps 8 bits of mantissa
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(bdir, { recursive: true });
});

Deno.test("config: infinite eps/theta and a block count the checkpoint lacks fail before any work", async () => {
  const base = JSON.parse(await Deno.readTextFile(`${MODEL_DIR}/config.json`));
  // JSON's 1e999 parses to Infinity: was accepted
  for (const key of ["rms_norm_eps", "rope_theta"]) {
    const text = JSON.stringify({ ...base, [key]: 1 }).replace(`"${key}":1`, `"${key}":1e999`);
    assertThrows(() => parseLlamaConfig(text, "c.json"), FormatError, `"${key}" is Infinity`);
  }
  // 10⁹ blocks: the loader built the tensor list first (it hung, memory growing)
  const dir = await Deno.makeTempDir();
  try {
    await Deno.copyFile(`${MODEL_DIR}/model.safetensors`, `${dir}/model.safetensors`);
    await Deno.writeTextFile(
      `${dir}/config.json`,
      JSON.stringify({ ...base, num_hidden_layers: 1e9 }),
    );
    await assertRejects(
      () => LlamaModel.load(dir, { backend: "ts" }),
      FormatError,
      "says 1000000000 blocks, but the checkpoint lacks 'model.layers.999999999.input_layernorm.weight'",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("load: a non-finite weight fails naming the tensor and its place", async () => {
  // it loaded, and every logit came out NaN (perplexity.ts printed "NaN nats/token" and exited 0)
  const dir = await Deno.makeTempDir();
  try {
    const tensors: Record<string, Tensor> = {};
    {
      using ck = await openCheckpoint(MODEL_DIR);
      for (const n of ck.names()) tensors[n] = await ck.read(n);
    }
    const t = tensors["model.layers.2.mlp.down_proj.weight"]!, at = 5 * t.shape[1]! + 7;
    if (t.dtype === "F32") (t.data as Float32Array)[at] = NaN;
    else (t.data as Uint16Array)[at] = t.dtype === "F16" ? 0x7e00 : 0x7fc0;
    await writeSafetensors(`${dir}/model.safetensors`, tensors);
    await Deno.copyFile(`${MODEL_DIR}/config.json`, `${dir}/config.json`);
    await assertRejects(
      () => LlamaModel.load(dir, { backend: "ts" }),
      FormatError,
      `Tensor 'model.layers.2.mlp.down_proj.weight' in '${dir}' holds NaN at [5, 7]`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tokenizer.json the library refuses is a FormatError naming the file; decode([]) is ''", async () => {
  // the library's errors came through bare ("Tokenizer must contain a "decoder" property",
  // "x.split is not a function"), and decoding no ids threw
  const base = JSON.parse(
    await Deno.readTextFile(new URL("./fixtures/tiny_bpe_tokenizer.json", import.meta.url)),
  );
  const dir = await Deno.makeTempDir();
  try {
    type Json = { decoder?: unknown; model?: { merges?: unknown }; pre_tokenizer?: unknown };
    const edits: ((j: Json) => void)[] = [
      (j) => delete j.decoder,
      (j) => delete j.model,
      (j) => j.model!.merges = [1, 2],
      (j) => j.pre_tokenizer = { type: "Unknown" },
    ];
    for (const edit of edits) {
      const j = structuredClone(base);
      edit(j);
      await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(j));
      await assertRejects(
        () => HfTokenizer.load(dir),
        FormatError,
        `Cannot use '${dir}/tokenizer.json': the tokenizer library refused it`,
      );
    }
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(base));
    assertEquals((await HfTokenizer.load(dir)).decode([]), "");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("non-finite outputs stop generate and evaluateLoss with a NumericalError", async () => {
  // generate printed NUL bytes (argmax of NaN logits is id 0) and perplexity printed "NaN"
  const m = await model("ts");
  const keep = m.norm[3]!;
  m.norm[3] = Infinity; // the final norm's gain: lm_head sees ±Infinity and gives NaN logits
  try {
    assertThrows(
      () => generate(m, prompt, { maxNewTokens: 4 }),
      NumericalError,
      "at generated position 0",
    );
    assertThrows(() => evaluateLoss(m, [prompt]), NumericalError, "Sequence 0's loss is NaN");
  } finally {
    m.norm[3] = keep;
  }
  assertEquals(generate(m, prompt, { maxNewTokens: 2 }).length, 2);
});
