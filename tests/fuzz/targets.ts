// The readers the fuzz harness attacks (tests/fuzz/fuzz.ts), each with seed folders made from
// the bundled real data (a few records of each file, so that a case takes milliseconds) or, for
// binary formats, written by lmkit's own writers; and what one case runs: the reader, with its
// whole output consumed.
import { stringify } from "csv-stringify/sync";
import { Rng } from "../../lib/core/rng.ts";
import { readCsv, readJsonl, readLines } from "../../lib/io/text.ts";
import { openCheckpoint, SafetensorsFile, writeSafetensors } from "../../lib/io/safetensors.ts";
import { encodeNpy, readNpy } from "../../lib/io/npy.ts";
import { type LlamaConfig, parseLlamaConfig } from "../../lib/model/config.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { loadTokenizer } from "../../lib/model/tokenizer.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import { AdamW } from "../../lib/train/optimizer.ts";
import { loadCheckpoint, saveCheckpoint, saveTrainedModel } from "../../lib/train/checkpoint.ts";
import { readComments } from "../../lib/toxicity/comments.ts";
import {
  readAclToxicSpans,
  readGermEval,
  readOffensEval,
  readSemEval,
} from "../../lib/toxicity/datasets.ts";
import { readHurtLex, readWordList } from "../../lib/toxicity/lexicon.ts";
import { readSentences } from "../../lib/crosslingual/corpus.ts";
import { readTransferData } from "../../lib/crosslingual/transfer.ts";
import { loadItems } from "../../lib/ambiguity/benchmark.ts";
import { readAnswers } from "../../lib/ambiguity/live.ts";
import { parseFragmentDefinition, parseSparqlJson } from "../../lib/ambiguity/fragment.ts";
import { loadTruthItems } from "../../lib/probes/data.ts";
import { loadStates, saveStates } from "../../lib/probes/cache.ts";
import { quantizeModel } from "../../lib/quant/quantize_model.ts";
import { loadQuantizedModel, saveQuantizedModel } from "../../lib/quant/checkpoint.ts";
import { quikModel } from "../../lib/quant/quik.ts";
import { loadQuikModel, saveQuikModel } from "../../lib/quant/quik_checkpoint.ts";
import { sparseExpand } from "../../lib/sparse/expansion.ts";
import { loadExpandedModel, saveModel } from "../../lib/sparse/expansion_io.ts";
import { gzipBytes, type SeedKind } from "./mutate.ts";
import { safetensorsValid } from "./oracle.ts";

/** One seed: a folder's files; `mutable` are the ones a case may mutate, with their kind. */
export interface Seed {
  files: Record<string, Uint8Array>;
  mutable: Record<string, SeedKind>;
}

/** A reader under attack. */
export interface Target {
  name: string;
  /** Valid seed folders (built once per run by the parent, with `scratch` for temporaries). */
  seeds(scratch: string): Promise<Seed[]>;
  /** Runs the reader on the case folder `dir`, consuming all it returns. */
  run(dir: string): Promise<void>;
  /**
   * For formats with written rules: whether the case folder is valid by an independent check
   * (the fuzz run counts valid files rejected and invalid files accepted).
   */
  valid?(dir: string): Promise<boolean>;
}

const REPO = new URL("../../", import.meta.url).pathname;
const SHARED = new URL("../../../shared/data/", import.meta.url).pathname;
const enc = new TextEncoder();
const text = (s: string) => enc.encode(s);

/** The first `n` lines of a text file (a real-data slice). */
async function head(path: string, n: number): Promise<string> {
  const out: string[] = [];
  for await (const l of readLines(path)) {
    out.push(l);
    if (out.length >= n) break;
  }
  return out.join("\n") + "\n";
}

/** The first `n` records of a CSV file, written back as CSV (quoted fields may span lines). */
async function headCsv(path: string, n: number): Promise<Uint8Array> {
  const rows: Record<string, string>[] = [];
  for await (const { record } of readCsv(path)) {
    rows.push(record);
    if (rows.length >= n) break;
  }
  return text(stringify(rows, { header: true }));
}

async function drain<T>(it: AsyncIterable<T>): Promise<void> {
  for await (const _ of it) { /* consume */ }
}

/** A tiny byte-level Llama config (the bundled model's config with small sizes). */
async function tinyConfigText(): Promise<string> {
  const c = JSON.parse(await Deno.readTextFile(`${REPO}data/models/tinyllama-bytes/config.json`));
  Object.assign(c, {
    hidden_size: 16,
    intermediate_size: 24,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 4,
    max_position_embeddings: 32,
  });
  return JSON.stringify(c, null, 2) + "\n";
}

let tmpCount = 0;
/** A fresh path in `scratch` (seeds are written inside the run's work folder only). */
function tmpPath(scratch: string, suffix = ""): string {
  return `${scratch}/tmp-${tmpCount++}${suffix}`;
}

async function readFolder(dir: string): Promise<Record<string, Uint8Array>> {
  const files: Record<string, Uint8Array> = {};
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(`${dir}/${rel}`)) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(p);
      else if (e.isFile) files[p] = await Deno.readFile(`${dir}/${p}`);
    }
  };
  await walk("");
  return files;
}

async function tinyModelFolder(scratch: string): Promise<Record<string, Uint8Array>> {
  const cfgText = await tinyConfigText();
  const params = LlamaParams.init(parseLlamaConfig(cfgText), new Rng(1));
  const tmp = tmpPath(scratch);
  try {
    await saveTrainedModel(`${tmp}/m`, params, { baseConfig: cfgText });
    return await readFolder(`${tmp}/m`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/** The tiny model written to a folder in `scratch`; returns the folder. */
async function tinyModelDir(scratch: string): Promise<string> {
  const dir = tmpPath(scratch);
  await Deno.mkdir(dir);
  for (const [name, bytes] of Object.entries(await tinyModelFolder(scratch))) {
    await Deno.writeFile(`${dir}/${name}`, bytes);
  }
  return dir;
}

/** A seed of the folder that `save(src, out)` writes from the tiny model at `src`. */
async function savedSeed(
  scratch: string,
  save: (src: string, out: string) => Promise<void>,
): Promise<Seed> {
  const src = await tinyModelDir(scratch), out = tmpPath(scratch);
  await save(src, out);
  const files = await readFolder(out);
  const mutable: Record<string, SeedKind> = {};
  for (const name of Object.keys(files)) {
    mutable[name] = name.endsWith(".safetensors") ? "safetensors" : "json";
  }
  return { files, mutable };
}

/** A forward pass of up to 3 tokens (a mutated config may allow fewer positions). */
function forward(model: LlamaModel): void {
  model.forward([256, 104, 105].slice(0, model.config.maxPositionEmbeddings));
}

/** A short calibration set for the tiny byte-level model. */
const CALIB = [[256, 72, 101, 108, 108, 111, 32, 119, 111, 114, 108, 100], [
  256,
  84,
  104,
  101,
  32,
  99,
  97,
  116,
]];

function safetensorsSeedTensors(rng: Rng) {
  const f = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  return {
    "model.embed.weight": { dtype: "F32" as const, shape: [3, 5], data: f(15) },
    "h.0.f16": {
      dtype: "F16" as const,
      shape: [7],
      data: Uint16Array.of(0x3c00, 0, 1, 0x7bff, 2, 3, 4),
    },
    "h.0.bf16": {
      dtype: "BF16" as const,
      shape: [2, 2],
      data: Uint16Array.of(0x3f80, 0, 0x4000, 1),
    },
    "q.i8": { dtype: "I8" as const, shape: [4], data: Int8Array.of(-128, 0, 1, 127) },
    "q.u8": { dtype: "U8" as const, shape: [1, 3], data: Uint8Array.of(0, 7, 255) },
    "q.i32": { dtype: "I32" as const, shape: [2], data: Int32Array.of(-1, 1 << 30) },
    "q.i64": { dtype: "I64" as const, shape: [2], data: BigInt64Array.of(-1n, 5n) },
    "mask": { dtype: "BOOL" as const, shape: [5], data: Uint8Array.of(0, 1, 1, 0, 1) },
    "empty": { dtype: "F32" as const, shape: [0, 4], data: new Float32Array(0) },
  };
}

async function writtenSafetensors(
  scratch: string,
  tensors: Parameters<typeof writeSafetensors>[1],
  metadata?: Record<string, string>,
): Promise<Uint8Array> {
  const tmp = tmpPath(scratch, ".safetensors");
  try {
    await writeSafetensors(tmp, tensors, metadata);
    return await Deno.readFile(tmp);
  } finally {
    await Deno.remove(tmp);
  }
}

async function readAllTensors(f: SafetensorsFile | Awaited<ReturnType<typeof openCheckpoint>>) {
  for (const name of f.names()) {
    const info = await f.info(name);
    if (info.dtype === "F32" || info.dtype === "F16" || info.dtype === "BF16") {
      await f.readFloat32(name);
    } else await f.read(name);
  }
}

const TINY_CONFIG: LlamaConfig = {
  vocabSize: 40,
  hiddenSize: 8,
  intermediateSize: 16,
  numLayers: 1,
  numHeads: 2,
  numKvHeads: 2,
  headDim: 4,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  ropeScaling: null,
  tieWordEmbeddings: false,
  maxPositionEmbeddings: 16,
  bosTokenId: null,
  eosTokenIds: [],
  tokenizer: null,
};

const COMMENT_FIELDS = {
  text: "body",
  time: "created_utc",
  community: "subreddit",
  language: "lang",
  id: "id",
  parent: "parent_id",
};

/** Every reader the harness attacks. */
export const TARGETS: readonly Target[] = [
  {
    name: "safetensors",
    async seeds(scratch) {
      const rng = new Rng(7);
      return [
        {
          files: {
            "a.safetensors": await writtenSafetensors(scratch, safetensorsSeedTensors(rng), {
              format: "pt",
            }),
          },
          mutable: { "a.safetensors": "safetensors" },
        },
        {
          files: { "a.safetensors": (await tinyModelFolder(scratch))["model.safetensors"]! },
          mutable: { "a.safetensors": "safetensors" },
        },
      ];
    },
    async run(dir) {
      using f = await SafetensorsFile.open(`${dir}/a.safetensors`);
      await readAllTensors(f);
    },
    async valid(dir) {
      return safetensorsValid(await Deno.readFile(`${dir}/a.safetensors`));
    },
  },
  {
    name: "safetensors index",
    async seeds(scratch) {
      const t = safetensorsSeedTensors(new Rng(8));
      const names = Object.keys(t);
      const half = (lo: number, hi: number) =>
        Object.fromEntries(names.slice(lo, hi).map((n) => [n, t[n as keyof typeof t]]));
      const shard = (i: number) => `model-0000${i}-of-00002.safetensors`;
      const map = Object.fromEntries(names.map((n, i) => [n, shard(i < 4 ? 1 : 2)]));
      return [{
        files: {
          "model.safetensors.index.json": text(
            JSON.stringify({ metadata: { total_size: 200 }, weight_map: map }, null, 2),
          ),
          [shard(1)]: await writtenSafetensors(scratch, half(0, 4)),
          [shard(2)]: await writtenSafetensors(scratch, half(4, names.length)),
        },
        mutable: { "model.safetensors.index.json": "json", [shard(2)]: "safetensors" },
      }];
    },
    async run(dir) {
      using f = await openCheckpoint(dir);
      await readAllTensors(f);
    },
  },
  {
    name: "npy",
    seeds() {
      const rng = new Rng(9);
      const arrays = [
        {
          descr: "<f4" as const,
          shape: [3, 4],
          data: Float32Array.from({ length: 12 }, () => rng.normal()),
        },
        { descr: "<f8" as const, shape: [5], data: Float64Array.of(1, 2, 3, 4, 5) },
        { descr: "<i4" as const, shape: [2, 1, 2], data: Int32Array.of(1, -2, 3, 4) },
        { descr: "|u1" as const, shape: [3], data: Uint8Array.of(0, 1, 255) },
        { descr: "|b1" as const, shape: [2], data: Uint8Array.of(0, 1) },
      ];
      return Promise.resolve(arrays.map((a) => ({
        files: { "a.npy": encodeNpy(a) },
        mutable: { "a.npy": "npy" as const },
      })));
    },
    async run(dir) {
      await readNpy(`${dir}/a.npy`);
    },
  },
  {
    name: "config.json",
    async seeds() {
      return [
        {
          files: {
            "config.json": await Deno.readFile(`${REPO}data/models/tinyllama-bytes/config.json`),
          },
          mutable: { "config.json": "json" },
        },
        {
          files: {
            "config.json": text(JSON.stringify({
              vocab_size: 128256,
              hidden_size: 2048,
              intermediate_size: 8192,
              num_hidden_layers: 16,
              num_attention_heads: 32,
              num_key_value_heads: 8,
              rms_norm_eps: 1e-5,
              rope_theta: 500000,
              rope_scaling: {
                factor: 32,
                high_freq_factor: 4,
                low_freq_factor: 1,
                original_max_position_embeddings: 8192,
                rope_type: "llama3",
              },
              tie_word_embeddings: true,
              bos_token_id: 128000,
              eos_token_id: [128001, 128008, 128009],
              max_position_embeddings: 131072,
            })),
          },
          mutable: { "config.json": "json" },
        },
      ];
    },
    async run(dir) {
      parseLlamaConfig(await Deno.readTextFile(`${dir}/config.json`), `${dir}/config.json`);
    },
  },
  {
    name: "model folder",
    async seeds(scratch) {
      return [{
        files: await tinyModelFolder(scratch),
        mutable: { "config.json": "json", "model.safetensors": "safetensors" },
      }];
    },
    async run(dir) {
      forward(await LlamaModel.load(dir, { backend: "ts" }));
    },
  },
  {
    name: "tokenizer.json",
    async seeds() {
      return [{
        files: {
          "tokenizer.json": await Deno.readFile(
            `${REPO}tests/model/fixtures/tiny_bpe_tokenizer.json`,
          ),
        },
        mutable: { "tokenizer.json": "json" },
      }];
    },
    async run(dir) {
      const t = await loadTokenizer(dir, TINY_CONFIG);
      t.decode(t.encode("the cat sat on the mat, naïvely"));
    },
  },
  {
    name: "csv",
    async seeds() {
      return [
        {
          files: {
            "a.csv": text(await head(`${SHARED}truth_probes/geometry_of_truth/cities.csv`, 12)),
          },
          mutable: { "a.csv": "text" },
        },
        {
          files: {
            "a.csv": await headCsv(`${REPO}data/toxic_spans/semeval2021/tsd_trial.csv`, 10),
          },
          mutable: { "a.csv": "text" },
        },
      ];
    },
    async run(dir) {
      await drain(readCsv(`${dir}/a.csv`));
    },
  },
  {
    name: "tsv / tsv.gz",
    async seeds() {
      const tsv = text(await head(`${SHARED}toxicity/hurtlex/hurtlex_DE.tsv`, 15));
      return [
        { files: { "a.tsv": tsv }, mutable: { "a.tsv": "text" } },
        { files: { "a.tsv.gz": await gzipBytes(tsv) }, mutable: { "a.tsv.gz": "gz" } },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) await drain(readCsv(`${dir}/${e.name}`));
    },
  },
  {
    name: "jsonl / jsonl.gz",
    async seeds() {
      const jsonl = text(await head(`${SHARED}multilingual_text/ud_pud/pud_en.jsonl`, 6));
      return [
        { files: { "a.jsonl": jsonl }, mutable: { "a.jsonl": "jsonl" } },
        { files: { "a.jsonl.gz": await gzipBytes(jsonl) }, mutable: { "a.jsonl.gz": "gz" } },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) await drain(readJsonl(`${dir}/${e.name}`));
    },
  },
  {
    name: "comments (jsonl, gz, zst, csv)",
    async seeds() {
      const fx = `${REPO}tests/toxicity/fixtures/comments.jsonl`;
      const jsonl = await Deno.readFile(fx);
      const rows = (await Array.fromAsync(readJsonl<Record<string, unknown>>(fx))).map((r) =>
        r.value
      );
      const csv = stringify(rows, { header: true });
      return [
        { files: { "c.jsonl": jsonl }, mutable: { "c.jsonl": "jsonl" } },
        { files: { "c.jsonl.gz": await gzipBytes(jsonl) }, mutable: { "c.jsonl.gz": "gz" } },
        {
          files: { "c.jsonl.zst": await Deno.readFile(`${fx}.zst`) },
          mutable: { "c.jsonl.zst": "zst" },
        },
        { files: { "c.csv": text(csv) }, mutable: { "c.csv": "text" } },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) {
        await drain(readComments(`${dir}/${e.name}`, COMMENT_FIELDS));
        await drain(readComments(`${dir}/${e.name}`, COMMENT_FIELDS, { skipBadRows: true }));
      }
    },
  },
  {
    name: "SemEval-2021 toxic spans",
    async seeds() {
      return [{
        files: {
          "tsd.csv": await headCsv(`${REPO}data/toxic_spans/semeval2021/tsd_trial.csv`, 12),
        },
        mutable: { "tsd.csv": "text" },
      }];
    },
    async run(dir) {
      await readSemEval(`${dir}/tsd.csv`);
    },
  },
  {
    name: "ACL-2022 toxic spans",
    async seeds() {
      const src = `${REPO}data/toxic_spans/acl2022_raw`;
      const comments = (await Array.fromAsync(readCsv(`${src}/comments.csv`))).slice(0, 8)
        .map((r) => r.record);
      const ids = new Set(comments.map((c) => c.comment_id));
      const anns: Record<string, string>[] = [];
      for await (const { record } of readCsv(`${src}/annotations.csv`)) {
        if (ids.has(record.comment_id!)) anns.push(record);
      }
      const annIds = new Set(anns.map((a) => a.annotation));
      const spans: Record<string, string>[] = [];
      for await (const { record } of readCsv(`${src}/spans.csv`)) {
        if (annIds.has(record.annotation!)) spans.push(record);
      }
      return [{
        files: {
          "comments.csv": text(stringify(comments, { header: true })),
          "annotations.csv": text(stringify(anns, { header: true })),
          "spans.csv": text(stringify(spans, { header: true })),
        },
        mutable: { "comments.csv": "text", "annotations.csv": "text", "spans.csv": "text" },
      }];
    },
    async run(dir) {
      await readAclToxicSpans(dir);
      await readAclToxicSpans(dir, { skipBadSpans: true });
    },
  },
  {
    name: "GermEval-2018 / OffensEval-2020",
    async seeds() {
      return [
        {
          files: {
            "g.txt": text(
              await head(`${REPO}data/toxicity_labelled/germeval2018/germeval2018.test.txt`, 12),
            ),
          },
          mutable: { "g.txt": "text" },
        },
        {
          files: {
            "o.tsv": text(await head(`${SHARED}toxicity_labelled/offenseval2020/tr_dev.tsv`, 12)),
          },
          mutable: { "o.tsv": "text" },
        },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) {
        if (e.name === "g.txt") await readGermEval(`${dir}/g.txt`);
        else await readOffensEval(`${dir}/o.tsv`);
      }
    },
  },
  {
    name: "HurtLex / word lists",
    async seeds() {
      return [
        {
          files: {
            "hurtlex_EN.tsv": text(await head(`${SHARED}toxicity/hurtlex/hurtlex_EN.tsv`, 20)),
          },
          mutable: { "hurtlex_EN.tsv": "text" },
        },
        {
          files: { "en.txt": text(await head(`${SHARED}toxicity/ldnoobw/en.txt`, 20)) },
          mutable: { "en.txt": "text" },
        },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) {
        if (e.name.endsWith(".tsv")) {
          await readHurtLex(`${dir}/${e.name}`);
          await readHurtLex(`${dir}/${e.name}`, { level: "inclusive" });
        } else await readWordList(`${dir}/${e.name}`, "en");
      }
    },
  },
  {
    name: "PUD sentences",
    async seeds() {
      return [{
        files: {
          "pud_en.jsonl": text(await head(`${SHARED}multilingual_text/ud_pud/pud_en.jsonl`, 6)),
        },
        mutable: { "pud_en.jsonl": "jsonl" },
      }];
    },
    async run(dir) {
      await readSentences(dir, "en");
    },
  },
  {
    name: "transfer tables",
    seeds() {
      return Promise.resolve([{
        files: {
          "results.csv": text(
            "model,source,target,task,score\nm1,en,de,ner,0.8\nm1,en,ru,ner,0.6\nm2,en,de,ner,0.7\nm2,en,ru,ner,0.5\n",
          ),
          "tok.csv": text("language,fertility\nde,1.6\nru,2.9\n"),
          "size.csv": text("model,params\nm1,110\nm2,340\n"),
        },
        mutable: { "results.csv": "text", "tok.csv": "text", "size.csv": "text" },
      }]);
    },
    async run(dir) {
      const scripts: Record<string, string> = { en: "Latin", de: "Latin", ru: "Cyrillic" };
      await readTransferData(
        `${dir}/results.csv`,
        [`${dir}/tok.csv`, `${dir}/size.csv`],
        ["fertility", "params", "script_match"],
        { scriptOf: (l) => scripts[l] },
      );
    },
  },
  {
    name: "ambiguity records / answers",
    async seeds() {
      const name = "P159_P206_results_step_by_step5.jsonl";
      const released = await head(
        `${SHARED}ambiguity/exploiting_ambiguity/benchmark/chatgpt/${name}`,
        3,
      );
      // a live run's answers file: the same records, each with its id
      const answers =
        released.trimEnd().split("\n").map((l, i) =>
          JSON.stringify({ id: `P159_P206/step_by_step5/${i + 1}`, ...JSON.parse(l) })
        ).join("\n") + "\n";
      return [
        { files: { [name]: text(released) }, mutable: { [name]: "jsonl" } },
        { files: { "answers.jsonl": text(answers) }, mutable: { "answers.jsonl": "jsonl" } },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) {
        if (e.name === "answers.jsonl") await readAnswers(`${dir}/${e.name}`);
        else await loadItems(`${dir}/${e.name}`);
      }
    },
  },
  {
    name: "fragment YAML / SPARQL JSON",
    async seeds() {
      const sparql = {
        head: {
          vars: [
            "entityLabel",
            "relationLabel",
            "property",
            "propertyLabel",
            "startTimeLabel",
            "endTimeLabel",
          ],
        },
        results: {
          bindings: [{
            entityLabel: { type: "literal", value: "Town", "xml:lang": "en" },
            relationLabel: { type: "literal", value: "Anna" },
            property: { type: "uri", value: "http://www.wikidata.org/entity/Q456" },
            propertyLabel: { type: "literal", value: "Lyon" },
            startTimeLabel: { type: "literal", value: "1990-01-01T00:00:00Z" },
          }],
        },
      };
      return [
        {
          files: {
            "f.yaml": await Deno.readFile(
              `${SHARED}ambiguity/exploiting_ambiguity/definitions/P159_P206.yaml`,
            ),
          },
          mutable: { "f.yaml": "text" },
        },
        { files: { "r.json": text(JSON.stringify(sparql)) }, mutable: { "r.json": "json" } },
      ];
    },
    async run(dir) {
      for await (const e of Deno.readDir(dir)) {
        const t = await Deno.readTextFile(`${dir}/${e.name}`);
        if (e.name.endsWith(".yaml")) parseFragmentDefinition(t, `${dir}/${e.name}`);
        else parseSparqlJson(t, `${dir}/${e.name}`);
      }
    },
  },
  {
    name: "truth statements",
    async seeds() {
      return [{
        files: {
          "cities.csv": text(await head(`${SHARED}truth_probes/geometry_of_truth/cities.csv`, 20)),
        },
        mutable: { "cities.csv": "text" },
      }];
    },
    async run(dir) {
      await loadTruthItems(`${dir}/cities.csv`, { items: 6 });
    },
  },
  {
    name: "probe state cache",
    async seeds(scratch) {
      const rng = new Rng(3);
      const f = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      const tmp = tmpPath(scratch, ".safetensors");
      try {
        await saveStates(tmp, {
          layers: 2,
          count: 3,
          dim: 4,
          neg: [f(12), f(12)],
          pos: [f(12), f(12)],
          lmDiff: Float64Array.of(0.5, -1, 2),
        }, "key-1");
        return [{
          files: { "s.safetensors": await Deno.readFile(tmp) },
          mutable: { "s.safetensors": "safetensors" },
        }];
      } finally {
        await Deno.remove(tmp);
      }
    },
    async run(dir) {
      await loadStates(`${dir}/s.safetensors`, "key-1");
    },
  },
  {
    name: "GPTQ checkpoint",
    async seeds(scratch) {
      return [
        await savedSeed(scratch, async (src, out) => {
          const model = await LlamaModel.load(src, { backend: "ts" });
          const layers = await quantizeModel(model, [], { method: "rtn", bits: 4, groupSize: 8 });
          await saveQuantizedModel(model, src, out, layers);
        }),
        await savedSeed(scratch, async (src, out) => {
          const model = await LlamaModel.load(src, { backend: "ts" });
          const layers = await quantizeModel(model, CALIB, {
            bits: 8,
            groupSize: -1,
            progress: false,
          });
          await saveQuantizedModel(model, src, out, layers, { format: "compressed-tensors" });
        }),
      ];
    },
    async run(dir) {
      forward(await loadQuantizedModel(dir, { backend: "ts" }));
    },
  },
  {
    name: "QUIK checkpoint",
    async seeds(scratch) {
      return [
        await savedSeed(scratch, async (src, out) => {
          const model = await LlamaModel.load(src, { backend: "ts" });
          const layers = await quikModel(model, CALIB, {
            clip: false,
            progress: false,
            outliers: 2,
          });
          await saveQuikModel(src, out, layers);
        }),
      ];
    },
    async run(dir) {
      forward(await loadQuikModel(dir, { backend: "ts" }));
    },
  },
  {
    name: "Sparse Expansion checkpoint",
    async seeds(scratch) {
      return [
        await savedSeed(scratch, async (src, out) => {
          const model = await LlamaModel.load(src, { backend: "ts" });
          await sparseExpand(model, CALIB, {
            experts: 2,
            sparsity: 0.5,
            restarts: 1,
            progress: false,
          });
          await saveModel(model, src, out, { dtype: "F32" });
        }),
      ];
    },
    async run(dir) {
      forward(await loadExpandedModel(dir, { backend: "ts" }));
    },
  },
  {
    name: "training checkpoint",
    async seeds(scratch) {
      const cfgText = await tinyConfigText();
      const params = LlamaParams.init(parseLlamaConfig(cfgText), new Rng(2));
      const tmp = tmpPath(scratch);
      try {
        await saveCheckpoint(`${tmp}/ck`, params, new AdamW(params), { step: 3, seed: 1 }, {
          baseConfig: cfgText,
        });
        const files = await readFolder(`${tmp}/ck`);
        const mutable: Record<string, SeedKind> = {};
        for (const name of Object.keys(files)) {
          mutable[name] = name.endsWith(".safetensors")
            ? "safetensors"
            : name.endsWith(".json")
            ? "json"
            : "text";
        }
        return [{ files, mutable }];
      } finally {
        await Deno.remove(tmp, { recursive: true });
      }
    },
    async run(dir) {
      await loadCheckpoint(dir);
    },
  },
];
