import { assertEquals, assertThrows } from "@std/assert";
import { thresholdMask, topk, topkRef } from "../../lib/kernels/topk.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { AWKWARD, freshSeed, NATIVE, randn } from "../_util.ts";

Deno.test("topkRef picks by magnitude, ties to the lower index", () => {
  const x = Matrix.from([[1, -2, 2, 0], [5, 5, 5, 5]]);
  const r = topkRef(x, 2);
  assertEquals(Array.from(r.indices), [1, 2, 0, 1]);
  assertEquals(Array.from(r.values), [-2, 2, 5, 5]);
  assertEquals(Array.from(r.thresholds), [2, 5]);
  assertEquals(Array.from(topkRef(x, 1, false).indices), [2, 0]);
});

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name: `topk and thresholdMask ${backend} match ts exactly (with ties)`,
    ignore,
    fn() {
      const seed = freshSeed(), rng = new Rng(seed);
      for (const cols of [...AWKWARD, 1000, 4099]) {
        const rows = 1 + rng.int(40);
        const x = randn(rng, rows, cols);
        // quantise some rows so that ties are common
        for (let i = 0; i < x.data.length; i += 3) x.data[i] = Math.round(x.data[i]! * 2) / 2;
        for (const k of new Set([1, Math.max(1, cols >> 1), cols])) {
          for (const byAbs of [true, false]) {
            const want = topkRef(x, k, byAbs), got = topk(x, k, { backend, byAbs });
            const at = `seed ${seed} ${rows}×${cols} k=${k} abs=${byAbs}`;
            assertEquals(got.indices, want.indices, at);
            assertEquals(got.values, want.values, at);
            assertEquals(got.thresholds, want.thresholds, at);
            const sel = thresholdMask(x, want.thresholds, { backend, byAbs });
            const ref = thresholdMask(x, want.thresholds, { backend: "ts", byAbs });
            assertEquals(sel.mask, ref.mask, at);
            assertEquals(sel.counts, ref.counts, at);
          }
        }
      }
    },
  });
}

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name: `topk ${backend} matches ts on wide rows (the many-blocks-per-row GPU path)`,
    ignore,
    fn() {
      const seed = freshSeed(), rng = new Rng(seed);
      for (const [rows, cols] of [[2, 20000], [3, 70001]] as const) {
        const x = randn(rng, rows, cols);
        for (let i = 0; i < x.data.length; i += 2) x.data[i] = Math.round(x.data[i]! * 4) / 4;
        for (const k of [1, 777, cols >> 1, cols]) {
          for (const byAbs of [true, false]) {
            const want = topkRef(x, k, byAbs), got = topk(x, k, { backend, byAbs });
            const at = `seed ${seed} ${rows}×${cols} k=${k} abs=${byAbs}`;
            assertEquals(got.indices, want.indices, at);
            assertEquals(got.values, want.values, at);
            assertEquals(got.thresholds, want.thresholds, at);
          }
        }
      }
    },
  });
}

for (const { backend, ignore } of [{ backend: "ts" as const, ignore: false }, ...NATIVE]) {
  Deno.test({
    name: `topk ${backend}: bad k, NaN and wrong threshold count fail cleanly`,
    ignore,
    fn() {
      const x = Matrix.from([[1, 2, 3]]);
      assertThrows(() => topk(x, 0, { backend }), RangeError, "expected 1 ≤ k ≤ 3");
      assertThrows(() => topk(x, 4, { backend }), RangeError);
      x.set(0, 1, NaN);
      assertThrows(() => topk(x, 1, { backend }), NumericalError, "[0,1] is NaN");
      assertThrows(() => thresholdMask(x, new Float32Array(2), { backend }), ShapeError);
    },
  });
}
