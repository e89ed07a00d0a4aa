import { assertClose, assertEquals, assertThrows } from "@std/assert";
import { attentionRef, causalAttention } from "../../lib/kernels/attention.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { cpu } from "../../ffi/mod.ts";
import { freshSeed, randn } from "../_util.ts";

Deno.test("attentionRef: with equal keys every query averages the values it can see", () => {
  const q = Matrix.from([[1, 2], [3, 4], [5, 6]]);
  const k = new Float32Array(3 * 2).fill(1), v = Float32Array.from([1, 10, 2, 20, 6, 60]);
  const out = Matrix.zeros(3, 2);
  attentionRef(q, k, v, { start: 0, heads: 1, kvHeads: 1, headDim: 2, capacity: 3 }, out);
  assertClose(out.data, [1, 10, 1.5, 15, 3, 30], { rtol: 1e-7 });
});

Deno.test("causalAttention cpu matches ts (GQA groups, offsets into the cache, awkward sizes)", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (
    const [T, start, heads, kvHeads, d, extra] of [
      [1, 0, 1, 1, 1, 0],
      [3, 5, 8, 4, 32, 2],
      [17, 0, 6, 2, 13, 1],
      [1, 128, 4, 1, 64, 7],
      [33, 3, 3, 3, 5, 0],
      // the tiled prefill path (T >= 16): tiles of 8 (6 on AVX2) rows and 16 (8) keys, blocks
      // of 64 rows; head widths 6/32/64/80, GQA groups 1/2/4, start > 0, capacity > T
      [256, 0, 8, 4, 32, 0], // the training shape of tinyllama-bytes
      [16, 0, 2, 1, 6, 0],
      [65, 0, 4, 4, 64, 3],
      [70, 9, 4, 2, 80, 5],
      [129, 31, 8, 2, 32, 0],
      [23, 100, 4, 1, 6, 17],
      [19, 0, 2, 2, 1, 0],
    ]
  ) {
    const cap = start! + T! + extra!;
    const q = randn(rng, T!, heads! * d!);
    const k = rng.normalArray(kvHeads! * cap * d!), v = rng.normalArray(kvHeads! * cap * d!);
    const shape = { start: start!, heads: heads!, kvHeads: kvHeads!, headDim: d!, capacity: cap };
    const want = causalAttention(q, k, v, shape, { backend: "ts" });
    const got = causalAttention(q, k, v, shape, { backend: "cpu" });
    assertClose(got.data, want.data, { rtol: 2e-6 });
  }
});

Deno.test("causalAttention: bad shapes fail in TypeScript and in C", () => {
  const q = Matrix.zeros(2, 8), k = new Float32Array(2 * 4 * 4), v = new Float32Array(2 * 4 * 4);
  const shape = { start: 0, heads: 2, kvHeads: 2, headDim: 4, capacity: 4 };
  assertThrows(
    () => causalAttention(q, k, v, { ...shape, start: 3 }),
    ShapeError,
    "exceed the cache capacity 4",
  );
  assertThrows(() => causalAttention(q, k, v, { ...shape, heads: 3 }), ShapeError);
  assertThrows(
    () => causalAttention(q, k.subarray(1), v, shape, { backend: "cpu" }),
    ShapeError,
    "caches hold 31/32",
  );
  const lib = cpu(), out = new Float32Array(16);
  assertEquals(lib.lk_cpu_attention_f32(q.data, 16, k, 31, v, 32, out, 16, 2, 0, 2, 2, 4, 4), 1);
  assertEquals(lib.lk_cpu_attention_f32(q.data, 16, k, 32, v, 32, out, 16, 2, 0, 3, 2, 4, 4), 1);
});
