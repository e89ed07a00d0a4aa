// QUIK's kernels: the cpu quantizer equals the ts one bit for bit, the cpu integer product equals
// an int32 sum written out here exactly and the ts simulated layer to f32 rounding, on fresh random
// inputs of awkward shapes (odd token counts, widths no multiple of the tiles, 0, few and all
// columns outliers, 4 and 8 bits); the quantizer against its definition; bad input refused.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { check, cpu, Status } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import {
  quikLevelSums,
  quikMatmul,
  quikQuantize,
  quikRowBytes,
  type QuikWeight,
} from "../../lib/kernels/quik_matmul.ts";
import { freshSeed, NATIVE } from "../_util.ts";

const seed = freshSeed();
console.log(`quik_matmul_test seed ${seed} (LMKIT_SEED=${seed} replays it)`);

/** Tokens with a few strong channels, as real activations. */
function tokens(rng: Rng, m: number, k: number): Matrix {
  const x = new Matrix(m, k, rng.normalArray(m * k));
  for (let j = 0; j < k; j += 7) for (let t = 0; t < m; t++) x.data[t * k + j]! *= 20;
  return x;
}

function pickOutliers(rng: Rng, k: number, count: number): Int32Array {
  const s = new Set<number>();
  while (s.size < count) s.add(Math.floor(rng.uniform() * k));
  return Int32Array.from([...s].sort((a, b) => a - b));
}

/** A random weight with uniformly drawn levels. */
function weight(rng: Rng, n: number, k: number, outliers: Int32Array, bits: number): QuikWeight {
  const kq = k - outliers.length, rb = quikRowBytes(kq, bits);
  const levels = new Uint8Array(n * rb);
  for (let c = 0; c < n; c++) {
    for (let p = 0; p < kq; p++) {
      const u = Math.floor(rng.uniform() * 2 ** bits);
      if (bits === 4) levels[c * rb + (p >> 1)]! |= p & 1 ? u << 4 : u;
      else levels[c * rb + p] = u;
    }
  }
  return {
    rows: n,
    cols: k,
    bits,
    outliers,
    levels,
    scales: Float32Array.from({ length: n }, () => 0.01 + rng.uniform() * 0.05),
    sums: quikLevelSums(levels, n, kq, bits),
    outlierWeight: Float32Array.from(rng.normalArray(n * outliers.length)),
  };
}

const CASES: [number, number, number, number, number][] = []; // m, k, n, outliers, bits
for (const bits of [4, 8]) {
  CASES.push(
    [1, 5, 3, 1, bits],
    [13, 130, 33, 0, bits],
    [29, 257, 47, 9, bits],
    [97, 64, 70, 64, bits], // every column an outlier
    [5, 300, 1, 299, bits], // one integer column
    [131, 515, 65, 32, bits], // more tokens than a block, widths past the tiles
  );
}

Deno.test("quikQuantize: cpu equals ts bit for bit; ts meets its definition", () => {
  const rng = new Rng(seed);
  for (const [m, k, , count, bits] of CASES) {
    const x = tokens(rng, m, k), outliers = pickOutliers(rng, k, count);
    const t = quikQuantize(x, outliers, bits, { backend: "ts" });
    const c = quikQuantize(x, outliers, bits, { backend: "cpu" });
    const what = `m=${m} k=${k} outliers=${count} bits=${bits}`;
    assertEquals(c.levels, t.levels, what);
    assertEquals(c.scales, t.scales, what);
    assertEquals(c.zeros, t.zeros, what);
    assertEquals(c.sums, t.sums, what);
    assertEquals(c.outlierValues, t.outlierValues, what);
    // the definition: per token, the integer columns' min maps to the lowest level, the max to the
    // highest, every value is within half a step of its reconstruction s·q + zero
    const o = 2 ** (bits - 1), kq = k - count, isOut = new Set(outliers);
    for (let i = 0; i < m; i++) {
      const ints = [...Array(k).keys()].filter((j) => !isOut.has(j)).map((j) => x.data[i * k + j]!);
      const s = t.scales[i]!, z = t.zeros[i]!, mn = kq > 0 ? Math.min(...ints) : 0;
      if (kq > 1) {
        const lo = ints.indexOf(Math.min(...ints)), hi = ints.indexOf(Math.max(...ints));
        assertEquals(t.levels[i * t.stride + lo], -o, what);
        assertEquals(t.levels[i * t.stride + hi], o - 1, what);
      }
      let sum = 0;
      ints.forEach((v, p) => {
        const q = t.levels[i * t.stride + p]!;
        sum += q;
        // half a step, plus the f32 rounding of x − min, of the division, of s·q + zero, and of
        // zero = min + 2^(b−1)·s itself, whose terms can be far larger than zero (a wide range
        // around 0: seed 19347218 missed by 1.5e-6 when this slack left them out)
        const slack = 1e-6 *
          (Math.abs(v) + Math.abs(z) + Math.abs(s * q) + Math.abs(mn) + Math.abs(o * s));
        assert(
          Math.abs(s * q + z - v) <= s / 2 + slack,
          `${what}: token ${i}, column ${p}: |${s}·${q} + ${z} − ${v}| = ${
            Math.abs(s * q + z - v)
          } > ${s / 2} + ${slack}`,
        );
      });
      assertEquals(t.sums[i], sum);
      for (let p = kq; p < t.stride; p++) assertEquals(t.levels[i * t.stride + p], 0, "padding");
      outliers.forEach((j, q) => assertEquals(t.outlierValues[i * count + q], x.data[i * k + j]));
    }
  }
});

Deno.test("quikQuantize: a constant token is exact; rounding ties go to even", () => {
  const x = Matrix.from([[2.5, 2.5, 2.5, 9], [0, 7.5, 15, 1]]);
  for (const backend of ["ts", "cpu"] as const) {
    const q = quikQuantize(x, Int32Array.of(3), 4, { backend });
    assertEquals(q.scales[0], 1);
    assertEquals(q.scales[0]! * q.levels[0]! + q.zeros[0]!, 2.5);
    // 7.5 / 1 = 7.5 → 8 (even), signed 0
    assertEquals(Array.from(q.levels.slice(q.stride, q.stride + 3)), [-8, 0, 7]);
  }
});

Deno.test("quikMatmul: cpu integer part exact, result = ts simulated layer to f32 rounding", () => {
  const rng = new Rng(seed + 1);
  for (const [m, k, n, count, bits] of CASES) {
    const x = tokens(rng, m, k), outliers = pickOutliers(rng, k, count);
    const w = weight(rng, n, k, outliers, bits);
    const q = quikQuantize(x, outliers, bits, { backend: "ts" });
    const accC = new Int32Array(m * n), accT = new Int32Array(m * n);
    const yc = quikMatmul(q, w, { backend: "cpu", acc: accC });
    const yt = quikMatmul(q, w, { backend: "ts", acc: accT });
    // the int32 sums written out here
    const o = 2 ** (bits - 1), kq = k - count, rb = quikRowBytes(kq, bits);
    const exact = new Int32Array(m * n);
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < n; c++) {
        let s = 0;
        for (let p = 0; p < kq; p++) {
          const b = w.levels[c * rb + (bits === 4 ? p >> 1 : p)]!;
          s += q.levels[i * q.stride + p]! * ((bits === 4 ? (p & 1 ? b >> 4 : b & 15) : b) - o);
        }
        exact[i * n + c] = s;
      }
    }
    const what = `m=${m} k=${k} n=${n} outliers=${count} bits=${bits}`;
    assertEquals(accC, exact, what);
    assertEquals(accT, exact, what);
    // f32 rounding: a few ulps of the sum of the magnitudes of the three terms
    for (let i = 0; i < m; i++) {
      for (let c = 0; c < n; c++) {
        const j = i * n + c;
        let mag = Math.abs(exact[j]! * q.scales[i]! * w.scales[c]!) +
          Math.abs(q.zeros[i]! * w.scales[c]! * w.sums[c]!);
        for (let r = 0; r < count; r++) {
          mag += Math.abs(q.outlierValues[i * count + r]! * w.outlierWeight[c * count + r]!);
        }
        const err = Math.abs(yc.data[j]! - yt.data[j]!);
        assert(err <= 4e-6 * mag + 1e-30, `${what} [${i},${c}]: ${yc.data[j]} vs ${yt.data[j]}`);
      }
    }
  }
});

Deno.test("quik kernels: bad input fails in one sentence", () => {
  const x = Matrix.from([[1, NaN, 3, 4]]);
  for (const backend of ["ts", "cpu"] as const) {
    assertThrows(() => quikQuantize(x, Int32Array.of(), 4, { backend }), RangeError, "1");
    assertThrows(
      () => quikQuantize(Matrix.from([[1, 2]]), Int32Array.of(1, 0), 4, { backend }),
      RangeError,
      "increasing",
    );
    assertThrows(
      () => quikQuantize(Matrix.from([[1, 2]]), Int32Array.of(2), 4, { backend }),
      RangeError,
      "below 2",
    );
    assertThrows(
      () => quikQuantize(Matrix.from([[1, 2]]), Int32Array.of(), 3, { backend }),
      RangeError,
      "4- or 8-bit",
    );
  }
  const rng = new Rng(seed + 2);
  const w = weight(rng, 3, 8, Int32Array.of(2), 4);
  const q = quikQuantize(tokens(rng, 2, 8), Int32Array.of(2), 4, { backend: "cpu" });
  assertThrows(() => quikMatmul(q, { ...w, bits: 8 }, { backend: "cpu" }), ShapeError);
  assertThrows(
    () => quikMatmul(quikQuantize(tokens(rng, 2, 8), Int32Array.of(3), 4), w),
    ShapeError,
    "outlier",
  );
  assertThrows(() => quikMatmul(q, { ...w, scales: new Float32Array(2) }), ShapeError, "scales");
  // the C entry point checks every length itself
  const lib = cpu(), y = new Float32Array(6);
  const st = lib.lk_cpu_quik_matmul_f32(
    q.levels,
    q.levels.length - 1,
    q.scales,
    2,
    q.zeros,
    2,
    q.sums,
    2,
    q.outlierValues,
    q.outlierValues.length,
    w.levels,
    w.levels.length,
    w.scales,
    3,
    w.sums,
    3,
    w.outlierWeight,
    w.outlierWeight.length,
    y,
    6,
    new Int32Array(0),
    0,
    2,
    7,
    1,
    3,
    4,
  );
  assertEquals(st, Status.ESHAPE);
  assertThrows(() => check(lib, st), ShapeError, "xq");
});

const CUDA = NATIVE.find((n) => n.backend === "cuda")!;
// the emulator runs each tensor-core MMA as 192 warp shuffles: small shapes, every edge still
const CUDA_CASES: [number, number, number, number, number][] = [
  [1, 5, 3, 1, 4],
  [17, 130, 41, 3, 4], // tokens past a 16-row tile, outputs past a 32-wide warp tile
  [9, 70, 33, 0, 8],
  [20, 64, 9, 64, 4], // all outliers
];

Deno.test({
  name:
    "quik cuda: quantizer bit for bit, int4 and int8 tensor-core paths exact, epilogue to rounding",
  ignore: CUDA.ignore,
  fn() {
    const rng = new Rng(seed + 3);
    for (const [m, k, n, count, bits] of CUDA_CASES) {
      const x = tokens(rng, m, k), outliers = pickOutliers(rng, k, count);
      const t = quikQuantize(x, outliers, bits, { backend: "ts" });
      const c = quikQuantize(x, outliers, bits, { backend: "cuda" });
      const what = `m=${m} k=${k} n=${n} outliers=${count} bits=${bits}`;
      assertEquals(c.levels, t.levels, what);
      assertEquals([c.scales, c.zeros, c.sums, c.outlierValues], [
        t.scales,
        t.zeros,
        t.sums,
        t.outlierValues,
      ], what);
      const w = weight(rng, n, k, outliers, bits);
      const accT = new Int32Array(m * n), yt = quikMatmul(t, w, { backend: "ts", acc: accT });
      for (const cudaPath of bits === 4 ? [4, 8] as const : [8] as const) {
        const acc = new Int32Array(m * n).fill(-7);
        const y = quikMatmul(c, w, { backend: "cuda", acc, cudaPath });
        assertEquals(acc, accT, `${what} path ${cudaPath}`);
        const scale = Math.max(...Array.from(yt.data, Math.abs));
        for (let i = 0; i < y.data.length; i++) {
          assert(
            Math.abs(y.data[i]! - yt.data[i]!) <= 1e-5 * scale,
            `${what} path ${cudaPath} [${i}]`,
          );
        }
      }
    }
  },
});

Deno.test({
  name: "quik cuda: bad input fails in one sentence",
  ignore: CUDA.ignore,
  fn() {
    assertThrows(
      () =>
        quikQuantize(Matrix.from([[1, 2, Infinity, 4]]), Int32Array.of(1), 4, { backend: "cuda" }),
      RangeError,
      "x[0, 2] = inf",
    );
    assertThrows(
      () => quikQuantize(Matrix.from([[-3e38, 3e38]]), Int32Array.of(), 4, { backend: "cuda" }),
      RangeError,
      "token 0's range overflows",
    );
    const rng = new Rng(seed + 4);
    const w = weight(rng, 3, 8, Int32Array.of(2), 8);
    const q = quikQuantize(tokens(rng, 2, 8), Int32Array.of(2), 8, { backend: "cuda" });
    assertThrows(
      () => quikMatmul(q, w, { backend: "cuda", cudaPath: 4 }),
      RangeError,
      "int4 path takes 4-bit",
    );
  },
});
