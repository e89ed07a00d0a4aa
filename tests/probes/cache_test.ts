import { assertEquals, assertNotEquals, assertRejects } from "@std/assert";
import {
  cachedStates,
  loadStates,
  saveStates,
  sha256Text,
  weightsHash,
} from "../../lib/probes/cache.ts";
import type { ContrastStates } from "../../lib/probes/collect.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { writeSafetensors } from "../../lib/io/safetensors.ts";
import { Rng } from "../../lib/core/rng.ts";

function randomStates(L: number, N: number, D: number, seed: number): ContrastStates {
  const rng = new Rng(seed);
  const side = () =>
    Array.from({ length: L }, () => Float32Array.from({ length: N * D }, () => rng.normal()));
  return {
    layers: L,
    count: N,
    dim: D,
    neg: side(),
    pos: side(),
    lmDiff: Float64Array.from({ length: N }, () => rng.normal()),
  };
}

Deno.test("cached states round-trip, miss on another key, and compute only once", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const s = randomStates(3, 5, 7, 1), path = `${dir}/x.safetensors`;
    await saveStates(path, s, "k1");
    const back = (await loadStates(path, "k1"))!;
    assertEquals([back.layers, back.count, back.dim], [3, 5, 7]);
    assertEquals(back.neg, s.neg);
    assertEquals(back.pos, s.pos);
    assertEquals(back.lmDiff, Float64Array.from(Float32Array.from(s.lmDiff)));
    assertEquals(await loadStates(path, "k2"), null);
    assertEquals(await loadStates(`${dir}/absent.safetensors`, "k1"), null);
    let calls = 0;
    const compute = () => (calls++, randomStates(2, 3, 4, 2));
    const first = await cachedStates(`${dir}/y.safetensors`, "k", compute);
    const second = await cachedStates(`${dir}/y.safetensors`, "k", compute);
    assertEquals([first.cached, second.cached, calls], [false, true, 1]);
    assertEquals(second.states.pos, first.states.pos);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cache file with the right key but wrong tensors fails naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/bad.safetensors`;
    await writeSafetensors(path, {
      neg: { dtype: "F32", shape: [2, 2], data: new Float32Array(4) },
    }, { key: "k" });
    await assertRejects(() => loadStates(path, "k"), FormatError, `'${path}' do not hold`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("weightsHash changes with one byte and sha256Text matches a published vector", async () => {
  assertEquals(
    await sha256Text("abc"),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  const dir = await Deno.makeTempDir();
  try {
    const bytes = new Uint8Array((4 << 20) + 5).map((_, i) => i * 7);
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    const a = await weightsHash(dir);
    bytes[(4 << 20) + 2]! ^= 1;
    await Deno.writeFile(`${dir}/model.safetensors`, bytes);
    assertNotEquals(await weightsHash(dir), a);
    await Deno.remove(`${dir}/model.safetensors`);
    await assertRejects(() => weightsHash(dir), FormatError, "has no .safetensors file");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
