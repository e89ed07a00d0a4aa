import { assertClose, assertEquals, assertThrows } from "@std/assert";
import { matmul, matmulRef } from "../../lib/kernels/matmul.ts";
import { cpu } from "../../ffi/mod.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { AWKWARD, freshSeed, NATIVE, randn } from "../_util.ts";

Deno.test("matmulRef agrees with a hand-computed product", () => {
  const a = Matrix.from([[1, 2, 3], [4, 5, 6]]);
  const b = Matrix.from([[1, 0], [0, 1], [2, -1]]);
  assertEquals(Array.from(matmulRef(a, b).data), [7, -1, 16, -1]);
  assertEquals(Array.from(matmulRef(a, b.transpose(), true).data), [7, -1, 16, -1]);
});

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name: `matmul ${backend} matches ts on awkward shapes (A·B and A·Bᵀ)`,
    ignore,
    fn() {
      const seed = freshSeed();
      const rng = new Rng(seed);
      const sizes = [...AWKWARD, 1000];
      for (let t = 0; t < 10; t++) {
        const m = sizes[rng.int(sizes.length)]!, k = sizes[rng.int(sizes.length)]!;
        const n = sizes[rng.int(sizes.length)]!;
        if (m * k * n > 2e7) continue;
        const a = randn(rng, m, k), b = randn(rng, k, n);
        const want = matmulRef(a, b);
        const msg = `seed ${seed}, ${m}×${k}×${n}`;
        // f32 accumulation: |C − C*| ≤ (k + 1)·u·(|A|·|B|) element-wise, u = 2⁻²⁴ (an L2 rtol
        // fails on a short dot product whose terms cancel, e.g. 1×129×1 at 1.5e-5)
        const abs = (x: Matrix) => new Matrix(x.rows, x.cols, x.data.map(Math.abs));
        const bound = matmulRef(abs(a), abs(b)).data.map((v) => (k + 1) * 2 ** -24 * v);
        for (
          const got of [
            matmul(a, b, { backend }),
            matmul(a, b.transpose(), { backend, transB: true }),
          ]
        ) {
          got.data.forEach((v, i) => {
            const err = Math.abs(v - want.data[i]!);
            if (!(err <= bound[i]!)) {
              throw new Error(
                `${msg}: element ${i} is ${v}, expected ${want.data[i]} ± ${bound[i]}`,
              );
            }
          });
        }
      }
    },
  });
}

Deno.test("matmul cpu: own kernel and OpenBLAS (when present) both match ts", () => {
  const rng = new Rng(freshSeed());
  const a = randn(rng, 300, 257), b = randn(rng, 257, 131);
  const want = matmulRef(a, b).data;
  const lib = cpu();
  try {
    for (const mode of [0, 1]) {
      lib.lk_cpu_set_blas(mode);
      assertClose(matmul(a, b, { backend: "cpu" }).data, want, { rtol: 1e-5 });
    }
  } finally {
    lib.lk_cpu_set_blas(1);
  }
});

Deno.test("matmul writes into a caller's out matrix on every backend", () => {
  const rng = new Rng(freshSeed());
  const a = randn(rng, 5, 7), b = randn(rng, 7, 3);
  const want = matmulRef(a, b).data;
  for (const backend of ["ts", "cpu"] as const) {
    const out = Matrix.zeros(5, 3);
    const c = matmul(a, b, { backend, out });
    assertEquals(c, out);
    assertClose(out.data, want, { rtol: 1e-5 });
  }
  assertThrows(() => matmul(a, b, { out: Matrix.zeros(3, 5) }), ShapeError, "into a 3×5 matrix");
});

Deno.test("matmul rejects mismatched shapes before any backend runs", () => {
  assertThrows(
    () => matmul(Matrix.zeros(2, 3), Matrix.zeros(4, 5), { backend: "cpu" }),
    ShapeError,
    "inner dimensions 3 and 4 differ",
  );
});

Deno.test("the C library checks buffer lengths itself", () => {
  const lib = cpu();
  const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(3);
  // c holds 3 elements but a 2×3·3×2 product needs 4
  const st = lib.lk_cpu_matmul_f32(a, 6, b, 6, c, 3, 2, 3, 2, 0);
  assertEquals(st, 1);
  const buf = new Uint8Array(256);
  lib.lk_last_error(buf, 256);
  const msg = new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
  assertEquals(msg, "lk_cpu_matmul_f32: buffer c holds 3 elements, expected at least 4");
  assertEquals(lib.lk_cpu_matmul_f32(a, 6, b, 6, c, 3, -1, 3, 2, 0), 1);
  assertEquals(lib.lk_cpu_matmul_f32(a, 6, b, 6, c, 4, 2, 3, 2, 7), 2);
});
