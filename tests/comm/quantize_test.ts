// Bucketed max–min quantization (lib/comm/quantize.ts): the statistics of stochastic rounding
// against their formulas (z and Hoeffding bounds, not hand-picked tolerances), exact round trips,
// awkward sizes and every bit width, the C and CUDA kernels byte for byte against the ts
// reference (the draws are shared), and clean errors. The "cuda" tests run on the CUDA emulator
// in the test task's second pass (LMKIT_CUDA_EMU=1 --filter cuda).
import { assert, assertEquals, assertThrows } from "@std/assert";
import {
  dequantizeBuckets,
  dequantizeBucketsAdd,
  type MetaType,
  quantizeBuckets,
  quantizedBytes,
  quantizeDraw,
  type Rounding,
} from "../../lib/comm/quantize.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { check, cpu, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { freshSeed, NATIVE } from "../_util.ts";

const seed = freshSeed();
const AWKWARD_N = [0, 1, 7, 1023, 1025, 100003];

/** Every bucket's (min, unit) as stored in a message. */
function metaOf(msg: Uint8Array, n: number, bucket: number, meta: MetaType = "f32") {
  const nb = Math.ceil(n / bucket), v = new DataView(msg.buffer, msg.byteOffset);
  const f16 = (h: number) => {
    const e = (h >> 10) & 31, m = h & 1023, a = e ? (m + 1024) * 2 ** (e - 25) : m * 2 ** -24;
    return h & 0x8000 ? -a : a;
  };
  return Array.from(
    { length: nb },
    (_, q) =>
      meta === "f16"
        ? { min: f16(v.getUint16(4 * q, true)), unit: f16(v.getUint16(4 * q + 2, true)) }
        : { min: v.getFloat32(8 * q, true), unit: v.getFloat32(8 * q + 4, true) },
  );
}

/** Two-sided normal z for a family of `count` tests at total level `alpha` (Bonferroni). */
function zBound(count: number, alpha = 1e-6): number {
  // the normal upper tail Q(z) = erfc(z/√2)/2 (Abramowitz–Stegun 7.1.26), solved by bisection
  const q = (z: number) => {
    const x = z / Math.SQRT2, t = 1 / (1 + 0.3275911 * x);
    const p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 +
                  t * 1.061405429))));
    return p * Math.exp(-x * x) / 2;
  };
  let lo = 0, hi = 40;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (2 * count * q(mid) > alpha) lo = mid;
    else hi = mid;
  }
  return hi;
}

Deno.test("quantizedBytes is the exact message size for every spec", () => {
  for (const n of AWKWARD_N) {
    for (let bits = 1; bits <= 8; bits++) {
      for (const bucketSize of [1, 7, 1024]) {
        for (const meta of ["f32", "f16"] as const) {
          const want = Math.ceil(n / bucketSize) * (meta === "f16" ? 4 : 8) +
            Math.ceil(n * bits / 8);
          assertEquals(quantizedBytes(n, { bits, bucketSize, meta }), want);
        }
      }
    }
  }
  assertEquals(quantizedBytes(1025, { bits: 4 }), 2 * 8 + 513); // default bucket 1024, f32
  const x = new Float32Array(1025).fill(1);
  assertEquals(
    quantizeBuckets(x, { bits: 3, bucketSize: 100, meta: "f16", backend: "ts" }).length,
    11 * 4 + 385,
  );
});

Deno.test(`stochastic rounding is unbiased: the mean of K draws is within a z-bound of x (seed ${seed})`, () => {
  const rng = new Rng(seed), n = 1031, bucketSize = 128, K = 400;
  const x = rng.normalArray(n);
  for (const bits of [1, 2, 4]) {
    const sum = new Float64Array(n);
    let unit: number[] = [];
    for (let k = 0; k < K; k++) {
      const msg = quantizeBuckets(x, { bits, bucketSize, seed: seed + k, backend: "ts" });
      if (k === 0) unit = metaOf(msg, n, bucketSize).map((m) => m.unit);
      const y = dequantizeBuckets(msg, n, { bits, bucketSize, backend: "ts" });
      for (let i = 0; i < n; i++) sum[i]! += y[i]!;
    }
    // per draw the variance is ≤ unit²/4, so the mean of K has sd ≤ unit/(2√K)
    const z = zBound(n);
    for (let i = 0; i < n; i++) {
      const sd = unit[Math.floor(i / bucketSize)]! / (2 * Math.sqrt(K));
      const err = Math.abs(sum[i]! / K - x[i]!);
      assert(
        err <= z * sd + 1e-6,
        `bits ${bits} x[${i}]: mean off by ${err} > ${z.toFixed(2)}·${sd}`,
      );
    }
  }
});

Deno.test(`stochastic rounding's variance per bucket matches p(1 − p)·unit² ≤ unit²/4 (seed ${seed})`, () => {
  const rng = new Rng(seed + 1), n = 512, bucketSize = 128, K = 200, bits = 3;
  const x = rng.uniformArray(n, -2, 3);
  const sq = new Float64Array(n);
  let meta: { min: number; unit: number }[] = [];
  for (let k = 0; k < K; k++) {
    const msg = quantizeBuckets(x, { bits, bucketSize, seed: 7 * seed + k, backend: "ts" });
    meta = metaOf(msg, n, bucketSize);
    const y = dequantizeBuckets(msg, n, { bits, bucketSize, backend: "ts" });
    for (let i = 0; i < n; i++) sq[i]! += (y[i]! - x[i]!) ** 2;
  }
  for (let q = 0; q < n / bucketSize; q++) {
    const { min, unit } = meta[q]!;
    let emp = 0, exact = 0;
    for (let i = q * bucketSize; i < (q + 1) * bucketSize; i++) {
      const v = (x[i]! - min) / unit, p = v - Math.floor(v);
      exact += p * (1 - p);
      emp += sq[i]! / K / unit ** 2;
    }
    emp /= bucketSize;
    exact /= bucketSize;
    // each sample ((y − x)/unit)² lies in [0, 1]: Hoeffding over bucket·K independent ones
    const t = Math.sqrt(Math.log(2 / 1e-9) / (2 * bucketSize * K));
    assert(Math.abs(emp - exact) <= t, `bucket ${q}: ${emp} vs ${exact} ± ${t}`);
    assert(emp <= 0.25 + t, `bucket ${q}: mean variance ${emp}·unit² exceeds unit²/4`);
  }
});

for (const rounding of ["nearest", "stochastic"] as const) {
  Deno.test(`${rounding}: values on the grid (min + k·unit) round-trip exactly, every bit width`, () => {
    const rng = new Rng(seed + 2);
    for (let bits = 1; bits <= 8; bits++) {
      const L = 2 ** bits - 1, min = -1.5, unit = 0.125, n = 300;
      const k = Array.from({ length: n }, () => rng.int(L + 1));
      k[3] = 0;
      k[17] = L;
      const x = new Float32Array(k.map((j) => min + j * unit));
      for (const meta of ["f32", "f16"] as const) {
        const o = { bits, bucketSize: n, meta, rounding, seed, backend: "ts" as const };
        const msg = quantizeBuckets(x, o);
        assertEquals(metaOf(msg, n, n, meta)[0], { min, unit });
        assertEquals(dequantizeBuckets(msg, n, o), x, `bits ${bits} ${meta}`);
      }
    }
  });
}

Deno.test("constant buckets (unit 0), one-element buckets and a short last bucket round-trip exactly", () => {
  const rng = new Rng(seed + 3);
  for (
    const backend of [
      "ts",
      ...NATIVE.filter((b) => !b.ignore && b.backend === "cpu").map((b) => b.backend),
    ] as const
  ) {
    for (const rounding of ["nearest", "stochastic"] as const) {
      const c = new Float32Array(1000).fill(0.1);
      const o = { bits: 2, bucketSize: 64, rounding, seed, backend };
      const msg = quantizeBuckets(c, o);
      assert(metaOf(msg, 1000, 64).every((m) => m.unit === 0));
      assertEquals(dequantizeBuckets(msg, 1000, o), c);
      const half = new Float32Array(50).fill(0.375); // an f16 value
      assertEquals(
        dequantizeBuckets(quantizeBuckets(half, { ...o, meta: "f16" }), 50, { ...o, meta: "f16" }),
        half,
      );
      // buckets of one element: every value exact, whatever it is
      const x = rng.normalArray(77, 100);
      assertEquals(
        dequantizeBuckets(quantizeBuckets(x, { ...o, bucketSize: 1 }), 77, { ...o, bucketSize: 1 }),
        x,
      );
      // n = 1025 in buckets of 1024: the last bucket holds one element, exact
      const y = rng.normalArray(1025);
      const o2 = { ...o, bucketSize: 1024 };
      const back = dequantizeBuckets(quantizeBuckets(y, o2), 1025, o2);
      assertEquals(back[1024], y[1024]);
    }
  }
});

/** Checks |dequantizeBuckets(quantizeBuckets(x)) − x| ≤ unit (stochastic) or unit/2 (nearest) everywhere. */
function checkErrors(
  x: Float32Array,
  bits: number,
  bucketSize: number,
  meta: MetaType,
  rounding: Rounding,
) {
  const o = { bits, bucketSize, meta, rounding, seed, backend: "ts" as const };
  const msg = quantizeBuckets(x, o);
  assertEquals(msg.length, quantizedBytes(x.length, o));
  const y = dequantizeBuckets(msg, x.length, o), m = metaOf(msg, x.length, bucketSize, meta);
  for (let i = 0; i < x.length; i++) {
    const { min, unit } = m[Math.floor(i / bucketSize)]!;
    const lim = (rounding === "nearest" ? 0.5 : 1) * unit * (1 + 1e-5) + 1e-6 * Math.abs(x[i]!);
    assert(
      y[i]! >= min - 1e-6 && Math.abs(y[i]! - x[i]!) <= lim,
      `n ${x.length} bits ${bits} ${meta} ${rounding}: y[${i}] = ${y[i]} for ${
        x[i]
      } (unit ${unit})`,
    );
  }
}

Deno.test(`awkward sizes × every bit width: errors within one unit (half for nearest), exact sizes (seed ${seed})`, () => {
  const rng = new Rng(seed + 4);
  for (const n of AWKWARD_N) {
    const x = rng.normalArray(n, 3);
    for (let bits = 1; bits <= 8; bits++) {
      const bucketSize = [1024, 7, 1000, 1][bits % 4]!, meta = bits % 2 ? "f16" : "f32";
      if (n > 2000 && bits > 2) continue; // the large size: two bit widths suffice here
      checkErrors(x, bits, bucketSize, meta, "stochastic");
      checkErrors(x, bits, bucketSize, meta, "nearest");
    }
  }
});

/** The native backend against ts, byte for byte, over sizes × specs. */
function matchesTs(backend: "cpu" | "cuda", sizes: number[], buckets: number[]) {
  const rng = new Rng(seed + 5);
  let count = 0;
  for (const n of sizes) {
    const x = rng.normalArray(n, 2);
    if (n > 5) x[5] = 1e-40; // a subnormal
    for (let bits = 1; bits <= 8; bits++) {
      for (const bucketSize of buckets) {
        const meta = (bits + bucketSize) % 2 ? "f16" : "f32";
        for (const rounding of ["nearest", "stochastic"] as const) {
          const o = { bits, bucketSize, meta, rounding, seed: seed * 31 + bits } as const;
          const at = `n ${n} bits ${bits} bucket ${bucketSize} ${meta} ${rounding}`;
          const want = quantizeBuckets(x, { ...o, backend: "ts" }),
            got = quantizeBuckets(x, { ...o, backend });
          assertEquals(got, want, at);
          assertEquals(
            dequantizeBuckets(got, n, { ...o, backend }),
            dequantizeBuckets(want, n, { ...o, backend: "ts" }),
            at,
          );
          const acc = rng.normalArray(n), acc2 = acc.slice();
          dequantizeBucketsAdd(got, acc, { ...o, backend });
          dequantizeBucketsAdd(want, acc2, { ...o, backend: "ts" });
          assertEquals(acc, acc2, at);
          count++;
        }
      }
    }
  }
  return count;
}

const cpuBackend = NATIVE.find((b) => b.backend === "cpu")!;
const cudaBackend = NATIVE.find((b) => b.backend === "cuda")!;

Deno.test({
  name: `cpu quantizeBuckets, dequantize and dequantizeAdd equal ts byte for byte (seed ${seed})`,
  ignore: cpuBackend.ignore,
  fn() {
    matchesTs("cpu", [...AWKWARD_N, 4096 * 3 + 5], [1, 7, 1024, 1025]);
  },
});

Deno.test({
  name:
    `cpu equals ts on 300,007 elements, past the size where the C kernel runs threads (seed ${seed})`,
  ignore: cpuBackend.ignore,
  fn() {
    const x = new Rng(seed + 6).normalArray(300007);
    for (const [bits, bucketSize, meta] of [[3, 7, "f16"], [8, 1024, "f32"]] as const) {
      const o = { bits, bucketSize, meta, seed };
      const want = quantizeBuckets(x, { ...o, backend: "ts" }),
        got = quantizeBuckets(x, { ...o, backend: "cpu" });
      assertEquals(got, want);
      const acc = new Float32Array(x.length).fill(0.5), acc2 = acc.slice();
      dequantizeBucketsAdd(got, acc, { ...o, backend: "cpu" });
      dequantizeBucketsAdd(want, acc2, { ...o, backend: "ts" });
      assertEquals(acc, acc2);
    }
  },
});

Deno.test({
  name: `cuda quantizeBuckets, dequantize and dequantizeAdd equal ts byte for byte (seed ${seed})`,
  ignore: cudaBackend.ignore,
  fn() {
    // small sizes: the emulator runs every GPU thread on the CPU
    matchesTs("cuda", [0, 1, 7, 1023, 1025, 3001], [7, 1024]);
  },
});

Deno.test("quantizeDraw is the draw of every backend: uniform on [0, 1) in steps of 2^-24", () => {
  let s = 0;
  for (let i = 0; i < 4096; i++) {
    const r = quantizeDraw(seed, i);
    assert(r >= 0 && r < 1 && Number.isInteger(r * 2 ** 24));
    s += r;
  }
  // the mean of 4096 uniforms: sd = 1/√(12·4096)
  assert(Math.abs(s / 4096 - 0.5) <= zBound(1) / Math.sqrt(12 * 4096));
  assert(quantizeDraw(1, 0) !== quantizeDraw(2, 0));
});

for (const { backend, ignore } of [{ backend: "ts" as const, ignore: false }, ...NATIVE]) {
  Deno.test({
    name: `${
      backend === "cuda" ? "cuda" : backend
    } quantizer: NaN/Inf name the index; bad bits, bucket and sizes fail in one sentence`,
    ignore,
    fn() {
      const x = new Float32Array(3000).fill(1);
      x[2049] = NaN;
      x[2500] = -Infinity;
      assertThrows(
        () => quantizeBuckets(x, { bits: 4, backend }),
        NumericalError,
        "x[2049] is NaN",
      );
      x[2049] = 0;
      assertThrows(
        () => quantizeBuckets(x, { bits: 4, backend }),
        NumericalError,
        "x[2500] is -Infinity",
      );
      assertThrows(
        () => quantizeBuckets(new Float32Array([1, Infinity]), { bits: 4, backend }),
        NumericalError,
        "x[1] is Infinity",
      );
      const wide = new Float32Array([-3e38, 3e38, 0, 1]);
      assertThrows(
        () => quantizeBuckets(wide, { bits: 1, bucketSize: 2, backend }),
        NumericalError,
        "ucket 0 (elements 0 to 1)",
      );
      assertThrows(
        () =>
          quantizeBuckets(new Float32Array([0, 1, 1e5]), {
            bits: 8,
            bucketSize: 2,
            meta: "f16",
            backend,
          }),
        NumericalError,
        "ucket 1 (elements 2 to 2)",
      );
      for (const bits of [0, 9, 2.5]) {
        assertThrows(
          () => quantizeBuckets(x, { bits, backend }),
          RangeError,
          `${bits} bits: expected an integer from 1 to 8`,
        );
      }
      for (const bucketSize of [0, 1.5, -4]) {
        assertThrows(
          () => quantizeBuckets(x, { bits: 4, bucketSize, backend }),
          RangeError,
          `buckets of ${bucketSize} elements`,
        );
      }
      assertThrows(() => quantizeBuckets(x, { bits: 4, seed: -1, backend }), RangeError, "seed -1");
      assertThrows(
        () => quantizeBuckets(x.subarray(0, 10), { bits: 4, backend }, new Uint8Array(9)),
        ShapeError,
        "the message needs 13",
      );
      const msg = quantizeBuckets(x.subarray(0, 10), { bits: 4, backend });
      assertThrows(
        () => dequantizeBuckets(msg, 11, { bits: 4, backend }),
        ShapeError,
        "the message has 14",
      );
      assertThrows(
        () => dequantizeBucketsAdd(msg, new Float32Array(10), { bits: 5, backend }),
        ShapeError,
      );
    },
  });
}

Deno.test({
  name: "the C entry points check every length and argument themselves",
  ignore: cpuBackend.ignore,
  fn() {
    const lib = cpu(),
      x = new Float32Array(100),
      out = new Uint8Array(58),
      y = new Float32Array(100);
    const call = (f: () => number) => check(lib, f());
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 4, 16, 0, 1, 3, out, 58)),
      ShapeError,
      "holds 58 elements, expected at least 106",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 9, 16, 0, 1, 3, out, 58)),
      RangeError,
      "bits=9",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 4, 0, 0, 1, 3, out, 58)),
      RangeError,
      "bucket size 0",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 4, 16, 2, 1, 3, out, 58)),
      RangeError,
      "meta_f16=2",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 4, 16, 0, 1, 0.5, out, 58)),
      RangeError,
      "seed 0.5",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_quantize_f32(x, 100.5, 4, 16, 0, 1, 3, out, 58)),
      ShapeError,
      "100.5 elements",
    );
    const big = new Uint8Array(106);
    call(() => lib.lk_cpu_cq_quantize_f32(x, 100, 4, 16, 0, 1, 3, big, 106));
    assertThrows(
      () => call(() => lib.lk_cpu_cq_dequantize_f32(big, 105, 4, 16, 0, 0, y, 100)),
      ShapeError,
      "holds 105 elements, expected at least 106",
    );
    assertThrows(
      () => call(() => lib.lk_cpu_cq_dequantize_f32(big, 106, 4, 16, 0, 2, y, 100)),
      RangeError,
      "accumulate=2",
    );
    const bytes = new Float64Array(1);
    call(() => lib.lk_cpu_cq_bytes(100003, 3, 1024, 1, bytes, 1));
    assertEquals(bytes[0], quantizedBytes(100003, { bits: 3, meta: "f16" }));
  },
});

Deno.test({
  name: "the cuda entry points check handles, types and lengths themselves",
  ignore: cudaBackend.ignore,
  fn() {
    const lib = cuda(), call = (f: () => number) => check(lib, f());
    using x = DeviceBuffer.from(new Float32Array(100));
    using msg = DeviceBuffer.alloc("u8", 105);
    using out = DeviceBuffer.alloc("f32", 99);
    assertThrows(
      () => call(() => lib.lk_cuda_cq_quantize_f32(x.handle, 100, 4, 16, 0, 1, 3, msg.handle)),
      ShapeError,
      "holds 105 elements, expected at least 106",
    );
    assertThrows(
      () => call(() => lib.lk_cuda_cq_quantize_f32(x.handle, 101, 4, 16, 0, 1, 3, msg.handle)),
      ShapeError,
    );
    assertThrows(
      () => call(() => lib.lk_cuda_cq_quantize_f32(msg.handle, 100, 4, 16, 0, 1, 3, x.handle)),
      ShapeError,
      "holds u8, expected f32",
    );
    assertThrows(
      () => call(() => lib.lk_cuda_cq_quantize_f32(x.handle, 100, 4, 16, 0, 1, 3, 99999)),
      RangeError,
      "not a live device buffer",
    );
    assertThrows(
      () => call(() => lib.lk_cuda_cq_dequantize_f32(msg.handle, 99, 4, 16, 0, 0, out.handle)),
      ShapeError,
    );
    assertThrows(
      () => call(() => lib.lk_cuda_cq_dequantize_f32(msg.handle, 10, 4, 16, 0, 2, out.handle)),
      RangeError,
      "accumulate=2",
    );
  },
});
