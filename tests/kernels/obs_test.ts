import { assertAlmostEquals, assertClose, assertEquals, assertThrows } from "@std/assert";
import { obsPrepare, obsPrepareDevice, obsPrepareRef } from "../../lib/kernels/obs.ts";
import { gramRef } from "../../lib/kernels/gram.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { cpu, DeviceBuffer } from "../../ffi/mod.ts";
import { AWKWARD, freshSeed, NATIVE, randn } from "../_util.ts";

/** A Hessian like a layer's: 2/N·XᵀX of correlated inputs, with some dead columns. */
function hessian(rng: Rng, n: number, rows: number, deadCols = 0): Matrix<Float64Array> {
  const x = randn(rng, rows, n);
  for (let r = 0; r < rows; r++) {
    for (let j = 1; j < n; j++) x.data[r * n + j]! += 0.5 * x.data[r * n + j - 1]!;
    for (let d = 0; d < deadCols; d++) x.data[r * n + (d * 7) % n] = 0;
  }
  const h = Matrix.zeros64(n, n);
  gramRef(h, x, 2 / rows, 0);
  return h;
}

Deno.test("obsPrepareRef: UᵀU is the inverse of the damped H (closed form)", () => {
  const rng = new Rng(freshSeed());
  const n = 23, h = hessian(rng, n, 100);
  const { u, percdamp } = obsPrepareRef(h, 0.01);
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h.get(i, i) / n;
  // (UᵀU)·(H + λI) = I
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < n; p++) {
        let utu = 0;
        for (let q = 0; q < n; q++) utu += u.get(q, i) * u.get(q, p);
        s += utu * (h.get(p, j) + (p === j ? percdamp * mean : 0));
      }
      assertAlmostEquals(s, i === j ? 1 : 0, 1e-8);
    }
    for (let j = 0; j < i; j++) assertEquals(u.get(i, j), 0);
  }
});

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name: `obsPrepare ${backend} matches the SparseGPT-style reference`,
    ignore,
    fn() {
      const seed = freshSeed(), rng = new Rng(seed);
      for (const n of [...AWKWARD, 200]) {
        const h = hessian(rng, n, Math.max(2 * n, 8), n > 3 ? 2 : 0);
        const want = obsPrepareRef(h);
        const got = obsPrepare(h, { backend });
        assertEquals(got.dead, want.dead, `seed ${seed} n ${n}`);
        assertEquals(got.percdamp, want.percdamp);
        assertClose(got.u.data, want.u.data, { rtol: 1e-9 });
      }
    },
  });
}

Deno.test("obsPrepare cpu own kernels (no LAPACK) match the reference at n = 300", () => {
  const rng = new Rng(freshSeed());
  const h = hessian(rng, 300, 500, 3);
  const lib = cpu();
  try {
    lib.lk_cpu_set_blas(0);
    assertClose(obsPrepare(h, { backend: "cpu" }).u.data, obsPrepareRef(h).u.data, { rtol: 1e-9 });
  } finally {
    lib.lk_cpu_set_blas(1);
  }
});

for (const { backend, ignore } of [{ backend: "ts" as const, ignore: false }, ...NATIVE]) {
  Deno.test({
    name: `obsPrepare ${backend}: rank-deficient H succeeds only after more damping`,
    ignore,
    fn() {
      // eigenvalues 4 and −2: positive definite only once λ = percdamp·1 exceeds 2
      const h = new Matrix(2, 2, new Float64Array([1, 3, 3, 1]));
      assertThrows(
        () => obsPrepare(h, { maxTries: 3, backend }),
        NumericalError,
        "not positive definite for percdamp 0.01, 0.1, 1 ",
      );
      const r = obsPrepare(h, { backend });
      assertAlmostEquals(r.percdamp, 10, 1e-12);
    },
  });
  Deno.test({
    name: `obsPrepare ${backend}: NaN and non-square H fail cleanly`,
    ignore,
    fn() {
      const h = Matrix.zeros64(3, 3);
      h.set(1, 2, NaN);
      assertThrows(() => obsPrepare(h, { backend }), NumericalError, "[1,2] is NaN");
      assertThrows(() => obsPrepare(Matrix.zeros64(2, 3), { backend }), ShapeError);
      assertThrows(() => obsPrepare(Matrix.zeros64(2, 2), { percdamp: -1, backend }), RangeError);
      if (backend === "cuda") { // a failed preparation frees the H it uploaded
        const live = DeviceBuffer.live;
        assertThrows(() => obsPrepareDevice(h), NumericalError, "[1,2] is NaN");
        assertEquals(DeviceBuffer.live, live);
      }
    },
  });
}
