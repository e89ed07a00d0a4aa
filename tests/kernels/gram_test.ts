import { assert, assertClose, assertEquals, assertThrows } from "@std/assert";
import { gramAccumulate, gramRef, HessianAccumulator } from "../../lib/kernels/gram.ts";
import { matmulRef } from "../../lib/kernels/matmul.ts";
import { Matrix, type MatrixData } from "../../lib/core/matrix.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { cpu } from "../../ffi/mod.ts";
import { AWKWARD, freshSeed, NATIVE, randn } from "../_util.ts";

Deno.test("gramRef equals Xᵀ·X from matmulRef", () => {
  const rng = new Rng(freshSeed());
  const x = randn(rng, 37, 19);
  const h = Matrix.zeros64(19, 19);
  gramRef(h, x);
  assertClose(h.data, matmulRef(x.transpose(), x).data, { rtol: 1e-6 });
});

for (const { backend, ignore } of NATIVE) {
  for (const acc of ["f32", "f64"] as const) {
    Deno.test({
      name: `gramAccumulate ${backend} (${acc} H) matches ts over streamed batches`,
      ignore,
      fn() {
        const seed = freshSeed(), rng = new Rng(seed);
        for (const n of [...AWKWARD, 300]) {
          const mk = (): Matrix<MatrixData> =>
            acc === "f64" ? Matrix.zeros64(n, n) : Matrix.zeros(n, n);
          const got = mk(), want = mk();
          for (const rows of [1, 5, 128]) {
            const x = randn(rng, rows, n);
            const opts = { alpha: 2 / (rows + 3), beta: 0.75 };
            gramAccumulate(got, x, { ...opts, backend });
            gramRef(want, x, opts.alpha, opts.beta);
          }
          assertClose(got.data, want.data, { rtol: acc === "f64" ? 1e-12 : 1e-5 });
        }
      },
    });
  }
}

Deno.test("gram cpu own kernel (no BLAS) matches ts", () => {
  const rng = new Rng(freshSeed());
  const x = randn(rng, 200, 131);
  const lib = cpu();
  try {
    lib.lk_cpu_set_blas(0);
    for (const h of [Matrix.zeros(131, 131), Matrix.zeros64(131, 131)] as Matrix<MatrixData>[]) {
      const want: Matrix<MatrixData> = h.dtype === "f64"
        ? Matrix.zeros64(131, 131)
        : Matrix.zeros(131, 131);
      gramAccumulate(h, x, { backend: "cpu" });
      gramRef(want, x);
      assertClose(h.data, want.data, { rtol: h.dtype === "f64" ? 1e-12 : 1e-5 });
    }
  } finally {
    lib.lk_cpu_set_blas(1);
  }
});

Deno.test("HessianAccumulator gives 2/N·XᵀX whatever the batching", () => {
  const rng = new Rng(freshSeed());
  const n = 64; // gathering is capped at n² entries (n rows): 64 rows hold all 60
  const x = randn(rng, 60, n);
  const acc = new HessianAccumulator(n, { backend: "cpu" });
  const gathered = new HessianAccumulator(n, { backend: "cpu", gatherEntries: n * 40 });
  const direct = new HessianAccumulator(n, { backend: "cpu", gatherEntries: 0 });
  for (let r = 0; r < 60; r += 25) {
    const rows = Math.min(25, 60 - r);
    const b = new Matrix(rows, n, x.data.slice(r * n, (r + rows) * n));
    acc.add(b); // all 60 rows gathered into one Gram call
    gathered.add(b); // blocks of at most 40 rows: calls for rows 0–24, 25–59
    direct.add(b); // one call per batch
  }
  const want = Matrix.zeros64(n, n);
  gramRef(want, x, 2 / 60, 0);
  for (const a of [acc, gathered, direct]) {
    assertEquals(a.samples, 60);
    assertClose(a.result().data, want.data, { rtol: 1e-12 });
  }
  // adding after result() goes on from the same H
  const more = randn(rng, 7, n), all = Matrix.zeros64(n, n);
  acc.add(more);
  gramRef(all, new Matrix(67, n, Float32Array.from([...x.data, ...more.data])), 2 / 67, 0);
  assertClose(acc.result().data, all.data, { rtol: 1e-12 });
});

Deno.test("HessianAccumulator in f32 (the authors' precision) agrees with f64 to f32 rounding", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const backend of ["ts", "cpu"] as const) {
    const x = randn(rng, 300, 37);
    const a32 = new HessianAccumulator(37, { backend, precision: "f32" });
    const a64 = new HessianAccumulator(37, { backend });
    for (let r = 0; r < 300; r += 128) {
      const rows = Math.min(128, 300 - r),
        b = new Matrix(rows, 37, x.data.slice(r * 37, (r + rows) * 37));
      a32.add(b);
      a64.add(b);
    }
    const h32 = a32.result();
    assert(h32.data instanceof Float64Array, "result() widens to f64");
    assertClose(h32.data, a64.result().data, { rtol: 1e-5, atol: 1e-5 });
  }
  assertThrows(
    () => new HessianAccumulator(3, { precision: "f16" as "f32" }),
    RangeError,
    "Unknown Hessian precision 'f16'",
  );
});

Deno.test("gramAccumulate rejects an H of the wrong size", () => {
  assertThrows(
    () => gramAccumulate(Matrix.zeros(3, 3), Matrix.zeros(2, 4), { backend: "cpu" }),
    ShapeError,
    "expected H to be 4×4",
  );
  assertThrows(
    () => gramAccumulate(Matrix.zeros(4, 4), Matrix.zeros(2, 4), { alpha: NaN }),
    RangeError,
  );
});
