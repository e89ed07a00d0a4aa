// Bitmap and packed N:M weights: round trips, stored sizes, and the C kernels (panel
// decompression + GEMM) against the ts references and a dense product on fresh random weights at
// awkward shapes (several row and column panels, k not a multiple of 8 or of the panel width);
// malformed arrays fail with one sentence.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { assertClose } from "../../lib/std/assert.ts";
import {
  bitmapBytes,
  bitmapFromDense,
  bitmapFromParts,
  bitmapMatmulT,
  bitmapToDense,
} from "../../lib/kernels/spmm_bitmap.ts";
import {
  nmBytes,
  nmFromBitmap,
  nmFromDense,
  nmFromParts,
  nmMatmulT,
  nmPatternOf,
  nmToDense,
} from "../../lib/kernels/spmm_nm.ts";
import { autoForm, compressWeight } from "../../lib/kernels/sparse_weight.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import { FormatError, ShapeError } from "../../lib/core/errors.ts";
import type { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { AWKWARD, freshSeed, randn } from "../_util.ts";

/** Tolerance of the sparse products against the dense one (f32 sums in another order). */
const TOL = { rtol: 1e-4, atol: 1e-4 };

/** A random N:M weight: N random positions per group, a few of them zero (filler). */
function randomNm(rng: Rng, rows: number, cols: number, n: number, m: number): Matrix {
  const w = randn(rng, rows, cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += m) {
      const order = Array.from({ length: m }, (_, j) => j).sort(() => rng.uniform() - 0.5);
      for (const j of order.slice(n)) w.data[r * cols + g + j] = 0;
      if (rng.uniform() < 0.1) w.data[r * cols + g + order[0]!] = 0;
    }
  }
  return w;
}

Deno.test("bitmap: round trip, parts, and d·4 + 1/8 bytes per entry", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const [rows, cols] of [[1, 1], [7, 9], [37, 129], [5, 64]]) {
    const w = randn(rng, rows!, cols!);
    for (let i = 0; i < w.data.length; i++) if (rng.uniform() < 0.6) w.data[i] = 0;
    const b = bitmapFromDense(w);
    assertEquals(bitmapToDense(b).data, w.data, `seed ${seed}`);
    const nnz = w.data.filter((v) => v !== 0).length;
    assertEquals(bitmapBytes(b), nnz * 4 + rows! * Math.ceil(cols! / 8));
    const again = bitmapFromParts(rows!, cols!, b.bits, b.val);
    assertEquals(again.rowPtr, b.rowPtr);
  }
});

Deno.test("bitmap product: cpu and ts equal the dense product across panels", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const cases: [number[], number, number][] = [
    [[...AWKWARD], 17, 3],
    [[...AWKWARD], 33, 129],
    // the GEMM route's blocks: W rows in panels of 2048 (and slivers of 32), columns in blocks
    // of 256, tokens in blocks of 128 (and slivers of 8); each with a partial last one
    [[1, 3, 70], 1100, 2100], // 9 column blocks, the last of 52 (k % 8 = 4)
    [[9, 135], 2100, 300], // 2 row panels (2048 + 52), 2 token blocks (128 + 7)
    [[5], 513, 1024],
  ];
  for (const [ms, n, k] of cases) {
    for (const m of ms) {
      for (const s of [0, 0.5, 0.93, 1]) {
        const x = randn(rng, m, k), w = randn(rng, n, k);
        for (let i = 0; i < w.data.length; i++) if (rng.uniform() < s) w.data[i] = 0;
        const b = bitmapFromDense(w);
        const dense = matmul(x, w, { transB: true, backend: "ts" });
        const at = `seed ${seed} m=${m} n=${n} k=${k} s=${s}`;
        if (n * k * m < 3e7) {
          assertClose(bitmapMatmulT(x, b, { backend: "ts" }).data, dense.data, { ...TOL, msg: at });
        }
        assertClose(bitmapMatmulT(x, b, { backend: "cpu" }).data, dense.data, { ...TOL, msg: at });
      }
    }
  }
});

Deno.test("packed N:M: round trip, positions, and bytes for 2:4, 4:8, 1:3 and 2:16", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const [n, m, bits] of [[2, 4, 2], [4, 8, 4], [1, 3, 2], [2, 16, 4]]) {
    const w = randomNm(rng, 9, m! * 7, n!, m!);
    const p = nmFromDense(w, n!, m!);
    assertEquals(nmToDense(p).data, w.data, `seed ${seed} ${n}:${m}`);
    assertEquals(nmBytes(p), 9 * 7 * n! * 4 + 9 * Math.ceil(7 * n! * bits! / 8));
    assertEquals(nmFromParts(9, m! * 7, { n: n!, m: m! }, p).val, p.val);
  }
});

Deno.test("packed N:M product: cpu and ts equal the dense product across panels", () => {
  // 70 and 100 tokens: whole 32-token tiles, then a last tile of 6 or 4
  const seed = freshSeed(), rng = new Rng(seed);
  for (const [n, m, k] of [[2, 4, 2100], [4, 8, 2104], [1, 3, 2100], [2, 16, 2112], [1, 1, 5]]) {
    for (const [ms, rows] of [[[...AWKWARD], 19], [[3, 70, 100], 600]] as [number[], number][]) {
      for (const tokens of ms) {
        const x = randn(rng, tokens, k!), w = randomNm(rng, rows, k!, n!, m!);
        const p = nmFromDense(w, n!, m!);
        const dense = matmul(x, w, { transB: true, backend: "ts" });
        const at = `seed ${seed} ${n}:${m} tokens=${tokens} rows=${rows} k=${k}`;
        assertClose(nmMatmulT(x, p, { backend: "ts" }).data, dense.data, { ...TOL, msg: at });
        assertClose(nmMatmulT(x, p, { backend: "cpu" }).data, dense.data, { ...TOL, msg: at });
      }
    }
  }
});

Deno.test("N:M detection and bitmap → packed N:M agree with the dense route; auto holds N:M weights packed", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const [n, m, cols, want] of [[2, 4, 44, "2:4"], [4, 8, 48, "4:8"], [1, 4, 12, "2:4"]]) {
    const w = randomNm(rng, 7, cols as number, n as number, m as number), b = bitmapFromDense(w);
    const at = `seed ${seed} ${n}:${m}×${cols}`;
    const p = nmPatternOf(w), pb = nmPatternOf(b);
    assertEquals(p && `${p.n}:${p.m}`, want, at);
    assertEquals(pb, p, at);
    const { n: pn, m: pm } = p!;
    const packed = nmFromBitmap(b, pn, pm), ref = nmFromDense(w, pn, pm);
    assertEquals(packed.val, ref.val, at);
    assertEquals(packed.idx, ref.idx, at);
  }
  // one group with three nonzeros breaks 2:4 (4:8 may still hold), unstructured breaks both
  const w = randomNm(rng, 5, 16, 2, 4);
  w.data[3 * 16 + 8] = w.data[3 * 16 + 9] = w.data[3 * 16 + 10] = 1;
  w.data[3 * 16 + 11] =
    w.data[3 * 16 + 12] =
    w.data[3 * 16 + 13] =
    w.data[3 * 16 + 14] =
      0;
  assertEquals(nmPatternOf(w), { n: 4, m: 8 });
  assertThrows(
    () => nmFromBitmap(bitmapFromDense(w), 2, 4),
    ShapeError,
    "Row 3, columns 8…11 hold 3 nonzeros",
  );
  const dense = randn(rng, 6, 64);
  assertEquals(nmPatternOf(dense), undefined);
  assertEquals(nmPatternOf(bitmapFromDense(dense)), undefined);
  // auto: packed 2:4 for a 2:4 weight with full groups (randomNm's fillers could take the density
  // below auto's 0.9·N/M), bitmap at 50 % unstructured, block-sparse when sparse, also for a very
  // sparse weight that happens to fit 2:4
  const full24 = randn(rng, 4, 64);
  for (let i = 0; i < full24.data.length; i++) if (i % 4 < 2) full24.data[i] = 0;
  assertEquals(compressWeight(full24).format, "nm");
  const half = randn(rng, 64, 64); // exactly half of the entries zeroed, at random places
  const order = Array.from(half.data.keys()).sort(() => rng.uniform() - 0.5);
  for (const i of order.slice(0, half.data.length / 2)) half.data[i] = 0;
  assertEquals(autoForm(half).format, "bitmap");
  const sparse = randomNm(rng, 64, 64, 1, 4);
  for (let i = 0; i < sparse.data.length; i++) if (rng.uniform() < 0.6) sparse.data[i] = 0;
  assertEquals(nmPatternOf(sparse)?.n, 2);
  assertEquals(autoForm(bitmapFromDense(sparse)).format, "block-sparse");
  assert(autoForm(bitmapFromDense(full24)).nm?.m === 4);
});

Deno.test("malformed bitmap and N:M arrays fail with one sentence", () => {
  const x = randn(new Rng(1), 4, 10);
  const w = randn(new Rng(2), 3, 10);
  w.data[4] = w.data[24] = 0; // rows of 9, 10 and 9 entries
  const b = bitmapFromDense(w);
  assertThrows(() => bitmapMatmulT(randn(new Rng(1), 4, 6), b), ShapeError, "inner sizes differ");
  const pastK = { ...b, bits: b.bits.map((v, i) => (i === 1 ? v | 0x80 : v)) };
  const cleared = { ...b, bits: b.bits.map((v, i) => (i === 2 ? v & 0xfe : v)) };
  // row 1 gains a bit: its values would run into row 2's (and the last row's past the array)
  const extra = { ...b, bits: b.bits.map((v, i) => (i === 0 ? v | 0x10 : v)) };
  const extraLast = { ...b, bits: b.bits.map((v, i) => (i === 4 ? v | 0x10 : v)) };
  for (const tokens of [4, 9]) { // the decode path checks while it reads; the panel path first
    const xt = randn(new Rng(1), tokens, 10);
    assertThrows(
      () => bitmapMatmulT(xt, pastK, { backend: "cpu" }),
      Error,
      "row 0 has bits set beyond column k=10",
    );
    assertThrows(
      () => bitmapMatmulT(xt, cleared, { backend: "cpu" }),
      Error,
      "row 1 has 9 bits set but row_ptr gives it 10 values",
    );
    assertThrows(
      () => bitmapMatmulT(xt, extra, { backend: "cpu" }),
      Error,
      "row 0 has 10 bits set but row_ptr gives it 9 values",
    );
    assertThrows(
      () => bitmapMatmulT(xt, extraLast, { backend: "cpu" }),
      Error,
      "row 2 has 10 bits set but row_ptr gives it 9 values",
    );
  }
  assertThrows(
    () => bitmapMatmulT(x, { ...b, val: b.val.subarray(1) }, { backend: "cpu" }),
    Error,
    "val",
  );
  assertThrows(
    () => bitmapFromParts(3, 10, b.bits, b.val.subarray(1), "expert 2"),
    FormatError,
    "expert 2: 27 values for 28 set bits",
  );
  assertThrows(
    () => bitmapFromParts(3, 10, b.bits.subarray(1), b.val),
    FormatError,
    "5 bitmap bytes, expected 3×2 = 6",
  );

  assertThrows(
    () => nmFromDense(randn(new Rng(3), 2, 10), 2, 4),
    ShapeError,
    "M must divide the columns",
  );
  assertThrows(
    () => nmFromDense(randn(new Rng(3), 2, 8), 2, 4),
    ShapeError,
    "Row 0, columns 0…3 hold 4 nonzeros: not 2:4 sparse",
  );
  assertThrows(() => nmFromDense(randn(new Rng(3), 2, 8), 5, 4), RangeError, "Pattern 5:4");
  const p = nmFromDense(randomNm(new Rng(4), 2, 6, 1, 3), 1, 3);
  const bad = { ...p, idx: p.idx.map((v, i) => (i === 1 ? v | 0b11 : v)) }; // position 3 in a group of 3
  assertThrows(
    () => nmMatmulT(randn(new Rng(1), 2, 6), bad, { backend: "cpu" }),
    Error,
    "row 1 entry 0 has position 3, expected < M=3",
  );
  assertThrows(
    () => nmFromParts(2, 6, { n: 1, m: 3 }, bad),
    FormatError,
    "row 1 entry 0 has position 3, expected < M=3",
  );
  // 4:8 (positions in 4 bits, M a power of two: checked word by word) and 1:2; a bad position in a
  // row's whole bytes and one in its last, partly filled byte; both token paths
  for (
    const [n, m, cols, byte, value, want] of [
      [4, 8, 48, 13, 0x90, "row 1 entry 3 has position 9, expected < M=8"], // row 1: bytes 12…23
      [1, 2, 10, 1, 0b10, "row 0 entry 4 has position 2, expected < M=2"], // 5 entries: 2 bytes
    ] as const
  ) {
    const q = nmFromDense(randomNm(new Rng(6), 2, cols, n, m), n, m);
    const broken = { ...q, idx: q.idx.map((v, i) => (i === byte ? (v & 0x0f) | value : v)) };
    if (m === 2) broken.idx[byte] = (q.idx[byte]! & ~0b11) | value;
    for (const tokens of [1, 9]) {
      assertThrows(
        () => nmMatmulT(randn(new Rng(1), tokens, cols), broken, { backend: "cpu" }),
        Error,
        want,
      );
    }
  }
  const p24 = nmFromDense(randomNm(new Rng(5), 1, 4, 2, 4), 2, 4);
  const swapped = { ...p24, idx: Uint8Array.of(0b0011) }; // positions 3 then 0: not rising
  assertThrows(
    () => nmFromParts(1, 4, { n: 2, m: 4 }, swapped),
    FormatError,
    "entry 1 has position 0, expected above 3 (positions rise within a group)",
  );
  assertThrows(() => nmMatmulT(x, p24), ShapeError, "inner sizes differ");
});
