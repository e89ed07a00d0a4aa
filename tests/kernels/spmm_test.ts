// CSR storage and the sparse × dense product: the C kernel against the ts reference and a dense
// product on fresh random weights at awkward shapes and sparsities, and malformed CSR rejected.
import { assertEquals, assertThrows } from "@std/assert";
import { assertClose } from "../../lib/std/assert.ts";
import {
  blockSparseBytes,
  blockSparseFromDense,
  blockSparseMatmulT,
  csrBytes,
  csrFromDense,
  csrMatmulT,
  csrToDense,
} from "../../lib/kernels/spmm.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { AWKWARD, freshSeed, randn } from "../_util.ts";

/** Tolerance of the sparse products against the dense one (f32 sums in another order). */
const TOL = { rtol: 1e-5, atol: 1e-6 };

Deno.test("CSR round trip and its size: (1 − s)·6 bytes per entry plus the row offsets", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const w = randn(rng, 37, 129);
  for (let i = 0; i < w.data.length; i++) if (rng.uniform() < 0.7) w.data[i] = 0;
  const c = csrFromDense(w);
  assertEquals(csrToDense(c).data, w.data, `seed ${seed}`);
  const nnz = w.data.filter((v) => v !== 0).length;
  assertEquals(csrBytes(c), nnz * 6 + (37 + 1) * 4);
});

Deno.test("csrMatmulT: cpu and ts equal the dense product on random sparse weights", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const m of [...AWKWARD, 64, 100]) {
    for (const [n, k] of [[1, 1], [17, 3], [33, 129], [70, 517]]) {
      for (const s of [0, 0.5, 0.9, 1]) {
        const x = randn(rng, m, k!), w = randn(rng, n!, k!);
        for (let i = 0; i < w.data.length; i++) if (rng.uniform() < s) w.data[i] = 0;
        const c = csrFromDense(w);
        const dense = matmul(x, w, { transB: true, backend: "ts" });
        const at = `seed ${seed} m=${m} n=${n} k=${k} s=${s}`;
        assertClose(csrMatmulT(x, c, { backend: "ts" }).data, dense.data, { ...TOL, msg: at });
        assertClose(csrMatmulT(x, c, { backend: "cpu" }).data, dense.data, { ...TOL, msg: at });
      }
    }
  }
});

Deno.test("malformed CSR and wrong shapes fail with one sentence", () => {
  const x = randn(new Rng(1), 4, 5);
  const good = csrFromDense(randn(new Rng(2), 3, 5));
  assertThrows(() => csrMatmulT(randn(new Rng(1), 4, 6), good), ShapeError, "inner sizes differ");
  const badCol = { ...good, col: good.col.map((c, i) => (i === 2 ? 9 : c)) };
  assertThrows(() => csrMatmulT(x, badCol, { backend: "cpu" }), Error, "col[2]=9, expected < k=5");
  const badPtr = { ...good, rowPtr: Int32Array.from([0, 5, 4, 15]) };
  assertThrows(
    () => csrMatmulT(x, badPtr, { backend: "cpu" }),
    Error,
    "row_ptr decreases at row 1",
  );
  const short = { ...good, val: good.val.subarray(0, 3) };
  assertThrows(() => csrMatmulT(x, short, { backend: "cpu" }), Error, "val");
  assertThrows(() => csrFromDense(randn(new Rng(3), 1, 65537)), ShapeError, "16-bit indices");
});

Deno.test("block-sparse product: cpu and ts equal the dense product; 7 bytes per nonzero", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const m of [...AWKWARD, 33, 70]) {
    for (const [n, k, br] of [[1, 1, 1], [17, 3, 4], [130, 129, 64], [300, 517, 256]]) {
      for (const s of [0, 0.5, 0.95]) {
        const x = randn(rng, m, k!), w = randn(rng, n!, k!);
        for (let i = 0; i < w.data.length; i++) if (rng.uniform() < s) w.data[i] = 0;
        const b = blockSparseFromDense(w, br);
        const nnz = w.data.filter((v) => v !== 0).length;
        assertEquals(blockSparseBytes(b), 7 * nnz + 4 * (Math.ceil(n! / br!) + 1));
        const dense = matmul(x, w, { transB: true, backend: "ts" });
        const at = `seed ${seed} m=${m} n=${n} k=${k} br=${br} s=${s}`;
        assertClose(blockSparseMatmulT(x, b, { backend: "ts" }).data, dense.data, {
          ...TOL,
          msg: at,
        });
        assertClose(blockSparseMatmulT(x, b, { backend: "cpu" }).data, dense.data, {
          ...TOL,
          msg: at,
        });
      }
    }
  }
});

Deno.test("malformed block-sparse arrays fail with one sentence", () => {
  const x = randn(new Rng(1), 4, 5);
  const good = blockSparseFromDense(randn(new Rng(2), 10, 5), 4);
  const badRow = { ...good, row: good.row.map((r, i) => (i === good.row.length - 1 ? 3 : r)) };
  assertThrows(
    () => blockSparseMatmulT(x, badRow, { backend: "cpu" }),
    Error,
    "expected < 2 rows in block 2",
  );
  const badCol = { ...good, col: good.col.map((c, i) => (i === 0 ? 7 : c)) };
  assertThrows(
    () => blockSparseMatmulT(x, badCol, { backend: "cpu" }),
    Error,
    "col[0]=7, expected < k=5",
  );
  assertThrows(
    () => blockSparseFromDense(randn(new Rng(3), 2, 2), 300),
    RangeError,
    "Block rows 300",
  );
});
