// The GPTQ weight-quantized product Y = X·Ŵᵀ: the C kernel (a decode path up to 8–64 tokens by
// how it finds the scales, every one of its routes; the GEMM on dequantized panels above; small
// products on one thread) against the ts reference on fresh random weights at awkward shapes,
// both containers (nibbles, bytes), one group, sequential groups of 32 and of 5, act-order
// (shuffled) group indices and sequential groups in shuffled order; bad shapes are refused by the
// wrapper and, called directly, by the C entry point, which then leaves Y untouched.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import {
  dequantRow,
  type PackedQuantWeight,
  quantMatmul,
  quantRowBytes,
} from "../../lib/kernels/quant_matmul.ts";
import { freshSeed, NATIVE, randn, relL2 } from "../_util.ts";

// the C kernel's decode path takes up to 8 … 64 tokens (by how the scales are found), the GEMM more
const TOKENS = [1, 3, 16, 17, 64, 65, 129, 300];
const IN = [1, 3, 17, 129, 256];
const OUT = [1, 5, 33];
const SCHEMES = ["one group", "groups of 32", "groups of 5", "act-order", "shuffled blocks"];
type Scheme = (typeof SCHEMES)[number];

/** Group indices of `cols` columns and the number of groups, for a scheme. */
function groupsOf(rng: Rng, cols: number, scheme: Scheme): { gIdx: Int32Array; groups: number } {
  const shuffle = (a: Int32Array) => {
    for (let i = a.length - 1; i > 0; i--) {
      const j = Math.floor(rng.uniform() * (i + 1)), t = a[i]!;
      a[i] = a[j]!;
      a[j] = t;
    }
    return a;
  };
  const seq = (size: number) => Int32Array.from({ length: cols }, (_, k) => Math.floor(k / size));
  switch (scheme) {
    case "one group":
      return { gIdx: new Int32Array(cols), groups: 1 };
    case "groups of 32":
      return { gIdx: seq(32), groups: Math.ceil(cols / 32) };
    case "groups of 5":
      return { gIdx: seq(5), groups: Math.ceil(cols / 5) };
    case "act-order": // GPTQ's g_idx when columns are quantized in a permuted order
      return { gIdx: shuffle(seq(8)), groups: Math.ceil(cols / 8) };
    default: { // groups of 32 in a shuffled order: block-constant, not monotone
      const groups = Math.ceil(cols / 32),
        order = shuffle(Int32Array.from({ length: groups }, (_, g) => g));
      return { gIdx: seq(32).map((g) => order[g]!), groups };
    }
  }
}

/** A random weight: `bits`-bit levels (garbage in a nibble row's unused last half-byte). */
function randomWeight(
  rng: Rng,
  rows: number,
  cols: number,
  nibble: boolean,
  scheme: Scheme,
): PackedQuantWeight {
  const bits = nibble ? 2 + Math.floor(rng.uniform() * 3) : 5 + Math.floor(rng.uniform() * 4);
  const maxq = 2 ** bits - 1, rb = quantRowBytes(cols, nibble);
  const packed = new Uint8Array(rows * rb);
  const level = () => Math.floor(rng.uniform() * (maxq + 1));
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      if (nibble) packed[r * rb + (k >> 1)]! |= level() << ((k & 1) << 2);
      else packed[r * rb + k] = level();
    }
    if (nibble && cols % 2) packed[(r + 1) * rb - 1]! |= level() << 4;
  }
  const { gIdx, groups } = groupsOf(rng, cols, scheme);
  const scales = Float32Array.from({ length: rows * groups }, () => 0.005 + 0.1 * rng.uniform());
  const zeros = Float32Array.from({ length: rows * groups }, level);
  return { rows, cols, nibble, packed, scales, zeros, gIdx, groups };
}

/**
 * ‖got − want‖ / max(‖want‖, 0.02·‖|X|·Mᵀ‖) with M = s·(q + z): the relative error, except for
 * products that nearly cancel. The kernel sums s·x·q and s·z·x apart (the zero term is hoisted
 * out of the loop), so its f32 rounding is bounded by a few ulp of the magnitudes |X|·Mᵀ rather
 * than of the result: with 1 or 3 input columns a single output that nearly cancels shows
 * relative errors up to ~5e-5 while its error stays below 1e-7·|X|·Mᵀ (measured). For random
 * rows of 17 or more columns ‖want‖ is above the floor, and this is the plain relative error.
 */
function relError(x: Matrix, w: PackedQuantWeight, got: Matrix, want: Matrix): number {
  const abs = (m: Matrix) => new Matrix(m.rows, m.cols, m.data.map(Math.abs));
  const summed = dense({ ...w, zeros: w.zeros.map((z) => -z) }); // s·(q + z)
  const mag = matmul(abs(x), summed, { transB: true, backend: "ts" });
  let diff = 0, ref = 0, scale = 0;
  for (let i = 0; i < want.data.length; i++) {
    diff += (got.data[i]! - want.data[i]!) ** 2;
    ref += want.data[i]! ** 2;
    scale += mag.data[i]! ** 2;
  }
  return diff === 0 ? 0 : Math.sqrt(diff / Math.max(ref, 0.02 ** 2 * scale));
}

/** Ŵ as a dense f32 matrix. */
function dense(w: PackedQuantWeight): Matrix {
  const out = Matrix.zeros(w.rows, w.cols), row = new Float64Array(w.cols);
  for (let o = 0; o < w.rows; o++) {
    dequantRow(w, o, row);
    out.data.set(row, o * w.cols);
  }
  return out;
}

Deno.test("quantMatmul ts equals the dense product of the dequantized weight", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  for (const nibble of [true, false]) {
    for (const scheme of SCHEMES) {
      const w = randomWeight(rng, 7, 45, nibble, scheme), x = randn(rng, 4, 45);
      const want = matmul(x, dense(w), { transB: true, backend: "ts" });
      const got = quantMatmul(x, w, { backend: "ts" });
      assert(relL2(got.data, want.data) <= 1e-6, `seed ${seed} ${scheme} nibble=${nibble}`);
    }
  }
  // a nibble weight's levels sit where the storage says: column 2 in byte 1's low half
  const w: PackedQuantWeight = {
    rows: 1,
    cols: 3,
    nibble: true,
    packed: Uint8Array.of(0x21, 0x03),
    scales: Float32Array.of(2),
    zeros: Float32Array.of(1),
    gIdx: new Int32Array(3),
    groups: 1,
  };
  assertEquals(Array.from(dense(w).data), [0, 2, 4]);
});

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name:
      `quantMatmul ${backend} equals ts: tokens × in × out, nibbles and bytes, five group layouts`,
    ignore,
    fn() {
      const seed = freshSeed(), rng = new Rng(seed);
      let worst = 0;
      for (const nibble of [true, false]) {
        for (const scheme of SCHEMES) {
          for (const cols of IN) {
            for (const rows of OUT) {
              const w = randomWeight(rng, rows, cols, nibble, scheme);
              // the CUDA emulator runs every GPU thread on the CPU: fewer token counts there
              for (const tokens of backend === "cuda" ? [1, 3, 17, 65] : TOKENS) {
                const x = randn(rng, tokens, cols);
                const want = quantMatmul(x, w, { backend: "ts" });
                const got = quantMatmul(x, w, { backend });
                const err = relError(x, w, got, want);
                worst = Math.max(worst, err);
                assert(
                  err <= 1e-5,
                  `seed ${seed} ${scheme} nibble=${nibble} tokens=${tokens} in=${cols} out=${rows}: relative error ${err}`,
                );
              }
            }
          }
        }
      }
      console.log(`worst relative error ${worst.toExponential(2)} (seed ${seed})`);
    },
  });
}

Deno.test("quantMatmul cpu equals ts for act-order weights of 20, 50, 100 and 150 groups", () => {
  // the decode path finds a column's scale in one, two or four pairs of registers (up to 32, 64,
  // 128 groups) or gathers it from memory, and hands over to the GEMM after 64, 32, 24 or 8
  // tokens; 301 columns: a partial last block and an unused last half-byte
  const seed = freshSeed(), rng = new Rng(seed);
  const cols = 301, rows = 100; // from 9 tokens on, too large to run on one thread
  for (const groups of [20, 50, 100, 150]) {
    for (const nibble of [true, false]) {
      const w = randomWeight(rng, rows, cols, nibble, "one group");
      const gIdx = Int32Array.from({ length: cols }, (_, k) => Math.floor((k * groups) / cols));
      for (let i = cols - 1; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1)), t = gIdx[i]!;
        gIdx[i] = gIdx[j]!;
        gIdx[j] = t;
      }
      const scales = Float32Array.from(
        { length: rows * groups },
        () => 0.005 + 0.1 * rng.uniform(),
      );
      const zeros = Float32Array.from(
        { length: rows * groups },
        () => Math.floor(rng.uniform() * 16),
      );
      const wa = { ...w, gIdx, groups, scales, zeros };
      for (const tokens of [1, 7, 8, 9, 24, 25, 32, 33, 64, 65]) {
        const x = randn(rng, tokens, cols);
        const want = quantMatmul(x, wa, { backend: "ts" });
        const err = relError(x, wa, quantMatmul(x, wa, { backend: "cpu" }), want);
        assert(
          err <= 1e-5,
          `seed ${seed} groups=${groups} nibble=${nibble} tokens=${tokens}: ${err}`,
        );
      }
    }
  }
});

Deno.test("quantMatmul cpu equals ts across the GEMM's panels and column blocks", () => {
  // 2060 rows: two row panels of the GEMM (2048 + 12); 1030 columns: blocks of 512, 512 and 6
  // (a last 16-column tile cut short); 5 tokens go down the decode path, 135 the GEMM (token
  // blocks of 128 + 7)
  const seed = freshSeed(), rng = new Rng(seed);
  for (
    const [nibble, scheme] of [[true, "act-order"], [true, "groups of 32"], [
      false,
      "groups of 5",
    ]] as const
  ) {
    const w = randomWeight(rng, 2060, 1030, nibble, scheme);
    for (const tokens of [5, 135]) {
      const x = randn(rng, tokens, 1030);
      const err = relL2(
        quantMatmul(x, w, { backend: "cpu" }).data,
        quantMatmul(x, w, { backend: "ts" }).data,
      );
      assert(err <= 1e-5, `seed ${seed} ${scheme} nibble=${nibble} tokens=${tokens}: ${err}`);
    }
  }
});

Deno.test("quantMatmul refuses weights that do not fit their shape, with one sentence", () => {
  const rng = new Rng(1);
  const w = randomWeight(rng, 4, 10, true, "groups of 5");
  const x = randn(rng, 2, 10);
  assertThrows(() => quantMatmul(randn(rng, 2, 9), w), ShapeError, "inner sizes differ");
  assertThrows(
    () => quantMatmul(x, { ...w, packed: new Uint8Array(39) }),
    ShapeError,
    "has 39 packed bytes, expected 4×5 = 20 (nibbles)",
  );
  assertThrows(
    () => quantMatmul(x, { ...w, nibble: false }),
    ShapeError,
    "has 20 packed bytes, expected 4×10 = 40 (bytes)",
  );
  assertThrows(
    () => quantMatmul(x, { ...w, scales: new Float32Array(7) }),
    ShapeError,
    "has 7 scales, expected 4×2 = 8",
  );
  assertThrows(
    () => quantMatmul(x, { ...w, zeros: new Float32Array(9) }),
    ShapeError,
    "has 9 zeros, expected 4×2 = 8",
  );
  assertThrows(
    () => quantMatmul(x, { ...w, gIdx: new Int32Array(9) }),
    ShapeError,
    "has 9 group indices, expected 10",
  );
  const bad = Int32Array.from(w.gIdx);
  bad[7] = 2;
  assertThrows(
    () => quantMatmul(x, { ...w, gIdx: bad }),
    RangeError,
    "Group index gIdx[7] = 2 is outside [0, 2)",
  );
  bad[7] = -1;
  assertThrows(() => quantMatmul(x, { ...w, gIdx: bad }), RangeError, "gIdx[7] = -1");
  assertThrows(() => quantMatmul(x, { ...w, groups: 0 }), RangeError, "has 0 groups");
  assertThrows(() => quantMatmul(x, { ...w, cols: 0 }), ShapeError, "shape 4×0 is invalid");
});

Deno.test("lk_cpu_quant_matmul_f32 refuses bad shapes, lengths and group indices with a status, touching nothing", () => {
  const lib = cpu();
  const m = 2, k = 5, n = 3, groups = 2;
  const call = (o: {
    x?: number;
    packed?: number;
    scales?: number;
    zeros?: number;
    gIdx?: number[];
    y?: number;
    m?: number;
    k?: number;
    groups?: number;
    nibble?: number;
  }) => {
    const x = new Float32Array(m * k).fill(1);
    const packed = new Uint8Array(n * 3).fill(0x11);
    const scales = new Float32Array(n * groups).fill(1), zeros = new Float32Array(n * groups);
    const gIdx = Int32Array.from(o.gIdx ?? [0, 0, 1, 1, 1]);
    const y = new Float32Array(m * n).fill(-7);
    const status = lib.lk_cpu_quant_matmul_f32(
      x,
      o.x ?? x.length,
      packed,
      o.packed ?? packed.length,
      scales,
      o.scales ?? scales.length,
      zeros,
      o.zeros ?? zeros.length,
      gIdx,
      gIdx.length,
      y,
      o.y ?? y.length,
      o.m ?? m,
      o.k ?? k,
      n,
      o.groups ?? groups,
      o.nibble ?? 1,
    );
    return { status, y };
  };
  const ok = call({});
  assertEquals(ok.status, 0);
  assertEquals(Array.from(ok.y), [5, 5, 5, 5, 5, 5]); // every level 1, scale 1, zero 0
  for (
    const bad of [
      { x: 9 },
      { x: 9.5 },
      { packed: 8 },
      { packed: 14, nibble: 0 }, // bytes: 15 needed
      { scales: 5 },
      { zeros: 5 },
      { gIdx: [0, 0, 1, 1] },
      { y: 5 },
      { m: -1 },
      { k: 0 },
      { k: 6 }, // x and g_idx too short for k = 6
      { groups: 0 },
      { groups: 1 }, // g_idx holds 1
      { nibble: 2 },
      { gIdx: [0, 0, 1, 1, 2] },
      { gIdx: [-1, 0, 1, 1, 1] },
    ]
  ) {
    const r = call(bad);
    assert(r.status !== 0, JSON.stringify(bad));
    assert(r.y.every((v) => v === -7), `Y was written: ${JSON.stringify(bad)}`);
    assertThrows(() => check(lib, r.status), Error, "lk_cpu_quant_matmul_f32");
  }
  assertThrows(() => check(lib, call({ gIdx: [0, 0, 1, 3, 1] }).status), Error, "g_idx[3]=3");
});
