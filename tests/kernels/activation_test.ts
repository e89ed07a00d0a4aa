import { assertClose, assertEquals, assertThrows } from "@std/assert";
import { swiglu } from "../../lib/kernels/activation.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { cpu } from "../../ffi/mod.ts";
import { freshSeed, randn } from "../_util.ts";

Deno.test("swiglu cpu matches ts, including saturated inputs (vectorised exp within 2e-7)", () => {
  const rng = new Rng(freshSeed());
  for (const [r, c] of [[1, 1], [3, 17], [129, 768]]) {
    const g = randn(rng, r!, c!), u = randn(rng, r!, c!);
    for (let i = 0; i < g.data.length; i += 7) g.data[i]! *= 40; // far into both tails
    assertClose(swiglu(g, u, { backend: "cpu" }).data, swiglu(g, u, { backend: "ts" }).data, {
      rtol: 2e-7,
      atol: 1e-30, // f32 denormals (|silu| < 1e-38 far in the negative tail) may flush to 0
    });
  }
  const edge = Matrix.from([[-200, 200, 0, -1e-30]]);
  const y = swiglu(edge, Matrix.from([[1, 1, 1, 1]]), { backend: "cpu" });
  assertEquals(Array.from(y.data.subarray(0, 3), (v) => v + 0), [0, 200, 0]);
  assertClose([y.data[3]!], [-5e-31], { rtol: 1e-6 });
});

// lk_expf once shifted NaN's exponent, (int32_t)NaN + 127 << 23: a left shift of a negative
// value, undefined behaviour that ffi/cpu/sanitize_check.sh's UBSan reports
Deno.test("swiglu cpu: NaN in gives NaN out, ±∞ as ts", () => {
  const g = Matrix.from([[NaN, 1, Infinity, -Infinity, 0.5, NaN]]);
  const u = Matrix.from([[1, NaN, 2, 1, 3, 0]]);
  const got = Array.from(swiglu(g, u, { backend: "cpu" }).data);
  const want = Array.from(swiglu(g, u, { backend: "ts" }).data);
  assertEquals(got.map(Number.isNaN), [true, true, false, true, false, true]);
  assertEquals(want.map(Number.isNaN), got.map(Number.isNaN));
  assertEquals([got[2], want[2]], [Infinity, Infinity]);
  assertClose([got[4]!], [want[4]!], { rtol: 2e-7 });
});

Deno.test("swiglu: mismatched shapes and short buffers fail", () => {
  assertThrows(() => swiglu(Matrix.zeros(2, 3), Matrix.zeros(3, 2)), ShapeError);
  const lib = cpu(), a = new Float32Array(4);
  assertEquals(lib.lk_cpu_swiglu_f32(a, 4, a, 3, a, 4, 4), 1);
  assertEquals(lib.lk_cpu_swiglu_f32(a, 4, a, 4, a, 4, 2.5), 1);
});
