import { assertEquals, assertRejects } from "@std/assert";
import {
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  fromFloat32,
  openCheckpoint,
  SafetensorsFile,
  SafetensorsIndex,
  type Tensor,
  writeSafetensors,
} from "../../lib/io/safetensors.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

const SHARED_MODEL =
  new URL("../../../shared/data/models/tinyllama-bytes/", import.meta.url).pathname;

function sample(rng: Rng): Record<string, Tensor> {
  return {
    "f32": { dtype: "F32", shape: [3, 5], data: rng.normalArray(15) },
    "f16": { dtype: "F16", shape: [4], data: new Uint16Array([0x3c00, 0xc000, 0x0001, 0x7c00]) },
    "bf16": { dtype: "BF16", shape: [2], data: new Uint16Array([0x3f80, 0xbfc0]) },
    "i8": { dtype: "I8", shape: [3], data: new Int8Array([-128, 0, 127]) },
    "u8": { dtype: "U8", shape: [1, 1], data: new Uint8Array([255]) },
    "i32": { dtype: "I32", shape: [2], data: new Int32Array([-5, 2 ** 31 - 1]) },
    "i64": { dtype: "I64", shape: [2], data: new BigInt64Array([-1n, 2n ** 40n]) },
    "bool": { dtype: "BOOL", shape: [3], data: new Uint8Array([1, 0, 1]) },
    "empty": { dtype: "F32", shape: [0, 7], data: new Float32Array(0) },
    "naïve ünïcode": { dtype: "F32", shape: [1], data: new Float32Array([7]) },
  };
}

Deno.test("safetensors round-trips every dtype, metadata and non-ASCII names", async () => {
  const dir = await Deno.makeTempDir();
  const t = sample(new Rng(freshSeed()));
  await writeSafetensors(`${dir}/m.safetensors`, t, { format: "pt" });
  using f = await SafetensorsFile.open(`${dir}/m.safetensors`);
  assertEquals(f.metadata, { format: "pt" });
  assertEquals(f.names(), Object.keys(t));
  for (const [name, want] of Object.entries(t)) assertEquals(await f.read(name), want);
  assertEquals((await f.readFloat32("f16")).data, new Float32Array([1, -2, 2 ** -24, Infinity]));
  assertEquals((await f.readFloat32("bf16")).data, new Float32Array([1, -1.5]));
  await assertRejects(() => f.readFloat32("i8"), FormatError, "dtype I8 as float");
  await assertRejects(() => f.read("nope"), FormatError, "Tensor 'nope' is not in");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("f16ToF32 handles subnormals, infinities and NaN", () => {
  assertEquals(f16ToF32(0x0400), 2 ** -14);
  assertEquals(f16ToF32(0xfc00), -Infinity);
  assertEquals(Number.isNaN(f16ToF32(0x7e00)), true);
  assertEquals(f16ToF32(0x8000), -0);
});

/**
 * The nearest of the representable values `cand` (bits → value) to x, ties to the even bit
 * pattern: the reference the bit-twiddling conversions are checked against.
 */
function nearest(x: number, bits: number[], value: (b: number) => number): number {
  let best = bits[0]!;
  for (const b of bits.slice(1)) {
    const d = Math.abs(value(b) - x), db = Math.abs(value(best) - x);
    if (d < db || (d === db && (b & 1) === 0)) best = b;
  }
  return best;
}

Deno.test("f32ToF16 and f32ToBf16 round to nearest, ties to even, at every scale", () => {
  // every finite half converts back to itself (NaNs stay NaN)
  for (let h = 0; h < 0x10000; h++) {
    const v = f16ToF32(h);
    if (Number.isNaN(v)) assertEquals(Number.isNaN(f16ToF32(f32ToF16(v))), true);
    else assertEquals(f32ToF16(v), h, `half 0x${h.toString(16)}`);
  }
  const seed = freshSeed(),
    rng = new Rng(seed),
    f = new Float32Array(1),
    u = new Uint32Array(f.buffer);
  const bf = (b: number) => {
    u[0] = b << 16;
    return f[0]!;
  };
  for (let i = 0; i < 20000; i++) {
    // f32 values from 2⁻²⁸ (below the halves) to 2¹⁷ (beyond them), and exact ties
    f[0] = (rng.uniform() < 0.5 ? -1 : 1) * 2 ** (rng.uniform() * 45 - 28);
    if (i % 4 === 0 && (f32ToF16(f[0]) & 0x7fff) < 0x7c00) {
      f[0] = (f16ToF32(f32ToF16(f[0])) + f16ToF32(f32ToF16(f[0]) ^ 1)) / 2;
    }
    const x = f[0]!, h = f32ToF16(x), hb = h & 0x7fff;
    if (Math.abs(x) >= 65520) assertEquals(hb, 0x7c00, `seed ${seed}: ${x} overflows to inf`);
    else {
      const cand = [hb - 1, hb, hb + 1].filter((b) => b >= 0 && b < 0x7c00).map((b) =>
        b | (h & 0x8000)
      );
      assertEquals(h, nearest(x, cand, f16ToF32), `seed ${seed}: f16 of ${x}`);
    }
    const t = u[0]! >>> 16, b16 = f32ToBf16(x);
    assertEquals(b16, nearest(x, [t, t + 1], bf), `seed ${seed}: bf16 of ${x}`);
  }
  assertEquals([f32ToF16(65519), f32ToF16(65520), f32ToF16(-1e9), f32ToF16(2 ** -26)], [
    0x7bff,
    0x7c00,
    0xfc00,
    0,
  ]);
  assertEquals(Number.isNaN(bf(f32ToBf16(NaN))), true);
  assertEquals(Array.from(fromFloat32(Float32Array.of(1, -2.5), "BF16")), [0x3f80, 0xc020]);
});

async function corrupt(bytes: Uint8Array): Promise<string> {
  const p = await Deno.makeTempFile({ suffix: ".safetensors" });
  await Deno.writeFile(p, bytes);
  return p;
}

function withHeader(header: string, dataBytes = 0): Uint8Array {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(h.length), true);
  out.set(h, 8);
  return out;
}

Deno.test("malformed safetensors fail with a FormatError naming the file", async () => {
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(5), "fewer than the 8-byte header length"],
    [
      (() => {
        const b = new Uint8Array(1024);
        new DataView(b.buffer).setBigUint64(0, 9000000000000000000n, true);
        return b;
      })(),
      "header length 9000000000000000000 exceeds file size 1024",
    ],
    [withHeader("{not json"), "not valid JSON"],
    [withHeader('{"w":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}', 1), 'unknown dtype "F8"'],
    [
      withHeader('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', 4),
      "expected 8 for F32[2]",
    ],
    [
      withHeader('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', 4),
      "exceeds the data section",
    ],
    [
      withHeader('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}'),
      "is not a list of integers",
    ],
    [withHeader("[1,2]"), "does not begin with"],
    [withHeader("null"), "does not begin with"],
    [withHeader("{}  [1]"), "not valid JSON"],
  ];
  for (const [bytes, msg] of cases) {
    const p = await corrupt(bytes);
    await assertRejects(() => SafetensorsFile.open(p), FormatError, msg);
    const e = await assertRejects(() => SafetensorsFile.open(p), FormatError);
    if (!e.message.includes(p) && !e.message.includes("Tensor 'w'")) {
      throw new Error(`no file in: ${e.message}`);
    }
    await Deno.remove(p);
  }
});

Deno.test("a sharded checkpoint reads through its index; bad indexes fail cleanly", async () => {
  const dir = await Deno.makeTempDir();
  const t = sample(new Rng(freshSeed()));
  const names = Object.keys(t);
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  for (const [i, shard] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    await writeSafetensors(`${dir}/${file}`, Object.fromEntries(shard.map((n) => [n, t[n]!])));
    for (const n of shard) weightMap[n] = file;
  }
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ metadata: {}, weight_map: weightMap }),
  );
  {
    using ck = await openCheckpoint(dir);
    if (!(ck instanceof SafetensorsIndex)) throw new Error("expected the index");
    assertEquals(ck.names().sort(), names.slice().sort());
    for (const n of names) assertEquals(await ck.read(n), t[n]);
  }
  weightMap["f32"] = "model-00002-of-00002.safetensors"; // wrong shard
  await Deno.writeTextFile(
    `${dir}/model.safetensors.index.json`,
    JSON.stringify({ weight_map: weightMap }),
  );
  {
    using ck = await SafetensorsIndex.open(`${dir}/model.safetensors.index.json`);
    await assertRejects(() => ck.read("f32"), FormatError, "which has no such tensor");
  }
  await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, "{}");
  await assertRejects(() => openCheckpoint(dir), FormatError, 'missing the "weight_map" object');
  await Deno.remove(`${dir}/model.safetensors.index.json`);
  await assertRejects(() => openCheckpoint(dir), FormatError, "has neither model.safetensors");
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "the bundled tinyllama-bytes checkpoint opens and its F16 weights decode",
  ignore: (() => {
    try {
      Deno.statSync(SHARED_MODEL);
      return false;
    } catch {
      console.log(`skipped: ${SHARED_MODEL} is absent`);
      return true;
    }
  })(),
  async fn() {
    using ck = await openCheckpoint(SHARED_MODEL);
    const config = JSON.parse(await Deno.readTextFile(`${SHARED_MODEL}/config.json`));
    const emb = await ck.readFloat32("model.embed_tokens.weight");
    assertEquals(emb.shape, [config.vocab_size, config.hidden_size]);
    assertEquals(emb.data.every(Number.isFinite), true);
    assertEquals(
      ck.names().length,
      2 + 9 * config.num_hidden_layers + 1 - (config.tie_word_embeddings ? 1 : 0),
    );
  },
});

Deno.test("sharded index: tensor names like 'constructor' and '__proto__' are plain names", async () => {
  // the index map was a plain object: 'constructor' found Object's constructor as its shard
  const dir = await Deno.makeTempDir();
  try {
    const shard = "model-00001-of-00001.safetensors";
    await writeSafetensors(`${dir}/${shard}`, {
      w: { dtype: "F32", shape: [2], data: Float32Array.of(1, 2) },
    });
    const map = `{"constructor": "${shard}", "__proto__": "${shard}", "w": "${shard}"}`;
    await Deno.writeTextFile(`${dir}/model.safetensors.index.json`, `{"weight_map": ${map}}`);
    using ck = await openCheckpoint(dir);
    assertEquals(ck.names(), ["constructor", "__proto__", "w"]);
    assertEquals(Array.from((await ck.read("w")).data as Float32Array), [1, 2]);
    for (const n of ["constructor", "__proto__"]) {
      await assertRejects(
        () => ck.read(n),
        FormatError,
        `maps '${n}' to '${shard}', which has no such tensor`,
      );
    }
    await assertRejects(
      () => ck.read("toString"),
      FormatError,
      "Tensor 'toString' is not in the index",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("safetensors rules: size limit, UTF-8, '{' first, duplicate names, metadata strings, no overlap, no hole, nothing after", async () => {
  // each of these files was accepted
  const file = async (header: string | Uint8Array, data: number, lenOverride?: bigint) => {
    const h = typeof header === "string" ? new TextEncoder().encode(header) : header;
    const bytes = new Uint8Array(8 + h.length);
    new DataView(bytes.buffer).setBigUint64(0, lenOverride ?? BigInt(h.length), true);
    bytes.set(h, 8);
    const path = await Deno.makeTempFile({ suffix: ".safetensors" });
    await Deno.writeFile(path, bytes);
    await Deno.truncate(path, 8 + h.length + data); // zeros (sparse: the 100 MB case costs nothing)
    return path;
  };
  const t = (b: number, e: number) =>
    `{"dtype":"U8","shape":[${e - b}],"data_offsets":[${b},${e}]}`;
  const cases: [string | Uint8Array, number, string, bigint?][] = [
    [`{"a":${t(0, 4)},"b":${t(2, 6)}}`, 6, "tensor 'b' at [2, 6) overlaps the one before it"],
    [`{"a":${t(0, 4)},"b":${t(6, 8)}}`, 8, "bytes [4, 6) of the data section belong to no tensor"],
    [`{"a":${t(0, 4)}}`, 7, "3 bytes after the last tensor belong to no tensor"],
    [`{"a":${t(0, 4)},"a":${t(0, 4)}}`, 4, "the name 'a' appears twice"],
    [`{"__metadata__":{"k":1},"a":${t(0, 4)}}`, 4, "__metadata__ 'k' is 1: expected a string"],
    [
      new Uint8Array([
        ...new TextEncoder().encode('{"\xff'),
        0xff,
        ...new TextEncoder().encode('":1}'),
      ]),
      0,
      "header is not valid UTF-8",
    ],
    [" ".repeat(16), 100_000_100, "exceeds the format's limit of 100 MB", 100_000_001n],
    [` {"a":${t(0, 4)}}`, 4, "header does not begin with '{'"],
  ];
  const paths: string[] = [];
  try {
    for (const [header, data, msg, len] of cases) {
      const path = await file(header, data, len);
      paths.push(path);
      await assertRejects(() => SafetensorsFile.open(path), FormatError, msg);
    }
    // the same tensors back to back, with string metadata, a zero-sized tensor and the
    // whitespace padding the format allows after the header, are fine
    const ok = await file(
      `{"__metadata__":{"format":"pt"},"a":${t(0, 4)},"z":${t(4, 4)},"b":${t(4, 6)}}    `,
      6,
    );
    paths.push(ok);
    const f = await SafetensorsFile.open(ok);
    assertEquals(f.names(), ["a", "z", "b"]);
    f.close();
  } finally {
    for (const p of paths) await Deno.remove(p);
  }
});
