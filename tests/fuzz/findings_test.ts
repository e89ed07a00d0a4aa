// What `deno task fuzz` found, one case each, written out as plain tests: every one of these files
// used to raise an untyped error (or to make an allocation fail), and now gets a FormatError that
// names the file.
import { assert, assertRejects, assertThrows } from "@std/assert";
import { FormatError, quoteValue } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { openCheckpoint, writeSafetensors } from "../../lib/io/safetensors.ts";
import { parseLlamaConfig } from "../../lib/model/config.ts";
import { HfTokenizer } from "../../lib/model/tokenizer.ts";
import { parseSparqlJson } from "../../lib/ambiguity/fragment.ts";
import { loadItems } from "../../lib/ambiguity/benchmark.ts";
import { readComments } from "../../lib/toxicity/comments.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import { AdamW } from "../../lib/train/optimizer.ts";
import { loadCheckpoint, saveCheckpoint } from "../../lib/train/checkpoint.ts";

const CONFIG = {
  vocab_size: 20,
  hidden_size: 8,
  intermediate_size: 12,
  num_hidden_layers: 1,
  num_attention_heads: 2,
};
const deep = (n: number) => JSON.parse("[".repeat(n) + "]".repeat(n));

Deno.test("quoteValue: bounded, and never throws on a nesting deeper than the stack", () => {
  assert(quoteValue("x".repeat(500)).length <= 81);
  assert(quoteValue(deep(100_000)).length <= 81); // String() of it overflowed the stack
  assert(quoteValue({ toString: 1 }) === '{"toString":1}');
  assert(quoteValue(-Infinity) === "-Infinity");
});

Deno.test("config.json: a deeply nested value or an object with a 'toString' key is a FormatError", () => {
  // "Maximum call stack size exceeded" and "Cannot convert object to primitive value"
  for (
    const bad of [
      { ...CONFIG, rms_norm_eps: deep(20_000) },
      { ...CONFIG, hidden_size: { toString: 1 } },
      { ...CONFIG, rope_scaling: { rope_type: "llama3", factor: { toString: 2 } } },
    ]
  ) {
    assertThrows(
      () => parseLlamaConfig(JSON.stringify(bad), "c/config.json"),
      FormatError,
      "c/config.json",
    );
  }
});

Deno.test("tokenizer.json: an unk_token missing from the vocabulary fails at load, not with NaN ids", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const json = JSON.parse(
      await Deno.readTextFile(
        new URL("../model/fixtures/tiny_bpe_tokenizer.json", import.meta.url),
      ),
    );
    json.model.unk_token = "<not-in-vocab>";
    await Deno.writeTextFile(`${dir}/tokenizer.json`, JSON.stringify(json));
    await assertRejects(() => HfTokenizer.load(dir), FormatError, `'${dir}/tokenizer.json'`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("sharded index: a missing or unopenable shard is named; '..' is not a shard name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const t = { dtype: "F32" as const, shape: [2], data: Float32Array.of(1, 2) };
    await writeSafetensors(`${dir}/a.safetensors`, { x: t });
    const index = (map: Record<string, string>) =>
      Deno.writeTextFile(
        `${dir}/model.safetensors.index.json`,
        JSON.stringify({ weight_map: map }),
      );
    await index({ x: "a.safetensors", y: "b.safetensors" });
    {
      using f = await openCheckpoint(dir);
      await f.read("x");
      await assertRejects(
        () => f.read("y"),
        FormatError,
        "maps 'y' to 'b.safetensors', which is not in",
      );
    }
    await index({ y: "x".repeat(300) + ".safetensors" }); // "File name too long"
    {
      using f = await openCheckpoint(dir);
      await assertRejects(() => f.read("y"), FormatError, "cannot be opened");
    }
    for (const name of ["..", "a\u0000.safetensors", "sub\\a.safetensors"]) {
      await index({ y: name });
      await assertRejects(() => openCheckpoint(dir), FormatError, "expected a shard file name");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SPARQL JSON: non-string variable names are a FormatError", () => {
  const doc = { head: { vars: [{ toString: 1 }] }, results: { bindings: [] } };
  assertThrows(() => parseSparqlJson(JSON.stringify(doc), "r.json"), FormatError, "'r.json'");
});

Deno.test("zstd comments: a corrupt stream is a FormatError (fzstd's numeric error codes broke the check)", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const good = await Deno.readFile(
      new URL("../toxicity/fixtures/comments.jsonl.zst", import.meta.url),
    );
    const bad = good.slice();
    for (let i = 4; i < 12; i++) bad[i] = 0xff;
    await Deno.writeFile(`${dir}/c.jsonl.zst`, bad);
    await assertRejects(
      () =>
        Array.fromAsync(readComments(`${dir}/c.jsonl.zst`, { text: "body", time: "created_utc" })),
      FormatError,
      `'${dir}/c.jsonl.zst'`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("training checkpoint: sizes the weights lack fail before allocating; 'latest' must name a folder", async () => {
  const root = await Deno.makeTempDir();
  try {
    const config = parseLlamaConfig(JSON.stringify(CONFIG));
    const params = LlamaParams.init(config, new Rng(1));
    const dir = await saveCheckpoint(root, params, new AdamW(params), { step: 1 });
    await loadCheckpoint(root);
    const text = await Deno.readTextFile(`${dir}/config.json`);
    // 2·10⁹ × 8 floats: "Array buffer allocation failed" before any tensor was looked at
    await Deno.writeTextFile(
      `${dir}/config.json`,
      text.replace('"vocab_size": 20', '"vocab_size": 2000000000'),
    );
    await assertRejects(() => loadCheckpoint(root), FormatError, "expected F32[2000000000,8]");
    await Deno.writeTextFile(`${dir}/config.json`, text);
    await Deno.writeTextFile(`${dir}/trainer_state.json`, "null");
    await assertRejects(() => loadCheckpoint(root), FormatError, "is not an lmkit training state");
    await Deno.writeTextFile(`${root}/latest`, "step-0000099\n");
    await assertRejects(() => loadCheckpoint(root), FormatError, "which is not in");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("ambiguity records: a deeply nested prompt_style is a FormatError, not a stack overflow", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/P6_P19_results_direct.jsonl`;
    const nested = "[".repeat(100_000) + "]".repeat(100_000);
    await Deno.writeTextFile(path, `{"label_nr": 1, "prompt_style": ${nested}}\n`);
    await assertRejects(() => loadItems(path), FormatError, `'${path}' line 1`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
