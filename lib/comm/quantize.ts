/**
 * Bucketed max–min uniform quantization, as QSDP and CGX send weights and gradients: the input
 * is cut into buckets of `bucketSize` elements (the last may be short); each bucket keeps its
 * min and its unit = (max − min)/(2^b − 1), and each element becomes a b-bit level, 1 ≤ b ≤ 8,
 * by stochastic rounding (unbiased: E[dequantized] = x, variance ≤ unit²/4) or by rounding to
 * nearest. Three backends give the same bytes: `ts` (this file, the reference), `cpu`
 * (ffi/cpu/comm_quant.c) and `cuda` (ffi/cuda/comm_quant.cu), chosen like the kernels'
 * (`backend` option, else `LMKIT_BACKEND`, else the best available).
 *
 * The packed message for n elements, with nb = ⌈n / bucketSize⌉ buckets:
 *  - metadata: for each bucket, its min then its unit, little-endian f32 (8 bytes a bucket) or,
 *    with `meta: "f16"`, f16 (4 bytes: the min rounded down and the unit rounded up onto f16, so
 *    that the grid still covers the bucket and stochastic rounding stays unbiased);
 *  - levels: level i in bits [i·b, i·b + b) of the rest, least significant bit first, packed
 *    across bucket boundaries with no padding but the last byte's.
 * {@linkcode quantizedBytes} gives its exact size: nb·(8 or 4) + ⌈n·b/8⌉.
 *
 * Arithmetic, identical on every backend: every operation rounded to f32; v = (x − min)/unit;
 * level = min(⌊v + r⌋, 2^b − 1) with r = 0.5 (nearest) or r = (h >> 8)·2^−24, h =
 * H((i + k0) ⊕ k1) (32-bit) for element index i, H the "lowbias32" integer hash (C. Wellons)
 * and (k0, k1) derived from the seed by H as well: a counter-based generator, so a run is reproducible and the draws do not
 * depend on the backend, the thread count or the order of work. A bucket with max = min has
 * unit 0 and every level 0. Dequantized y = min + level·unit.
 *
 * @module
 */
import { type Backend, check, cpu, cuda, DeviceBuffer, selectBackend } from "../../ffi/mod.ts";
import { NumericalError, ShapeError } from "../core/errors.ts";

export type { Backend };

/** How levels are chosen: `stochastic` (unbiased, seeded) or `nearest`. */
export type Rounding = "stochastic" | "nearest";
/** How each bucket's min and unit are stored. */
export type MetaType = "f32" | "f16";

/** The shape of a packed message: every rank must use the same to read another's. */
export interface BucketQuantSpec {
  /** Bits per level, 1 … 8. */
  bits: number;
  /** Elements per bucket (default 1024; the last bucket may be short). */
  bucketSize?: number;
  /** Storage of each bucket's min and unit (default `f32`). */
  meta?: MetaType;
}

/** Options of {@linkcode quantizeBuckets}. */
export interface QuantizeOptions extends BucketQuantSpec {
  /** `stochastic` (default) or `nearest`. */
  rounding?: Rounding;
  /** The draws' seed, an integer 0 … 2^53 − 1 (default 0). */
  seed?: number;
  /** Force a backend; default: `LMKIT_BACKEND`, else the best available. */
  backend?: Backend;
}

/** Options of {@linkcode dequantizeBuckets} and {@linkcode dequantizeBucketsAdd}. */
export interface DequantizeOptions extends BucketQuantSpec {
  /** Force a backend; default: `LMKIT_BACKEND`, else the best available. */
  backend?: Backend;
}

/** The default bucket size. */
export const DEFAULT_BUCKET = 1024;

interface Spec {
  bits: number;
  bucket: number;
  f16: boolean;
}

function spec(s: BucketQuantSpec): Spec {
  const { bits } = s, bucket = s.bucketSize ?? DEFAULT_BUCKET, meta = s.meta ?? "f32";
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) {
    throw new RangeError(`Cannot quantize to ${bits} bits: expected an integer from 1 to 8`);
  }
  if (!Number.isInteger(bucket) || bucket < 1 || bucket > 2 ** 31 - 1) {
    throw new RangeError(
      `Cannot quantize in buckets of ${bucket} elements: expected an integer from 1 to 2^31 − 1`,
    );
  }
  if (meta !== "f32" && meta !== "f16") {
    throw new RangeError(`Unknown metadata type '${meta}': expected 'f32' or 'f16'`);
  }
  return { bits, bucket, f16: meta === "f16" };
}

function checkCount(n: number): void {
  if (!Number.isInteger(n) || n < 0 || n >= 2 ** 32) {
    throw new RangeError(`Cannot quantize ${n} elements: expected an integer from 0 to 2^32 − 1`);
  }
}

function describe(s: Spec): string {
  return `${s.bits} bits, buckets of ${s.bucket}, ${s.f16 ? "f16" : "f32"} metadata`;
}

/**
 * The exact byte count of the packed message for `n` elements:
 * ⌈n / bucketSize⌉ · (8 for f32 metadata, 4 for f16) + ⌈n · bits / 8⌉.
 *
 * @example
 * ```ts
 * import { quantizedBytes } from "./quantize.ts";
 * if (quantizedBytes(1025, { bits: 4 }) !== 2 * 8 + 513) throw new Error("wrong size");
 * ```
 */
export function quantizedBytes(n: number, s: BucketQuantSpec): number {
  const p = spec(s);
  checkCount(n);
  return bytesOf(n, p);
}

function bytesOf(n: number, p: Spec): number {
  return Math.ceil(n / p.bucket) * (p.f16 ? 4 : 8) + Math.ceil(n * p.bits / 8);
}

// ---- the counter-based draws ----

function hash32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

function checkSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > Number.MAX_SAFE_INTEGER) {
    throw new RangeError(`Cannot use seed ${seed}: expected an integer from 0 to 2^53 − 1`);
  }
}

function keys(seed: number): [number, number] {
  const hi = Math.floor(seed / 2 ** 32), lo = seed - hi * 2 ** 32;
  const k0 = hash32(lo ^ hash32(hi ^ 0x6a09e667));
  return [k0, hash32(k0 ^ 0xbb67ae85)];
}

/**
 * The stochastic-rounding offset r ∈ [0, 1) of element `i` under `seed` (a multiple of 2^−24),
 * as every backend draws it.
 */
export function quantizeDraw(seed: number, i: number): number {
  checkSeed(seed);
  const [k0, k1] = keys(seed);
  return (hash32(((i + k0) ^ k1) >>> 0) >>> 8) * 2 ** -24;
}

/**
 * A seed for one part of a collective, from a base seed and integers (call number, rank, block,
 * …): a 53-bit hash, so that distinct parts draw unrelated values. Every rank computes the same.
 */
export function deriveSeed(base: number, ...parts: number[]): number {
  checkSeed(base);
  let a = hash32((base % 2 ** 32) ^ 0x3c6ef372), b = hash32(Math.floor(base / 2 ** 32) ^ a);
  for (const p of parts) {
    if (!Number.isInteger(p) || p < 0 || p >= 2 ** 32) {
      throw new RangeError(
        `Cannot derive a seed from ${p}: expected an integer from 0 to 2^32 − 1`,
      );
    }
    a = hash32(a ^ hash32(p ^ b));
    b = hash32(b + a);
  }
  return (b & 0x1fffff) * 2 ** 32 + a;
}

// ---- f16 metadata ----

const f64 = new Float64Array(1), f64hi = new Uint32Array(f64.buffer, 4, 1);

/** v rounded down (up) onto f16's grid; values past ±65504 are returned, and rejected later. */
function f16Round(v: number, up: boolean): number {
  if (v === 0) return 0;
  f64[0] = Math.abs(v);
  const ex = (f64hi[0]! >>> 20) & 0x7ff; // floor(log2|v|) = ex − 1023 (normal doubles)
  const qe = Math.max(ex - 1023 - 10, -24);
  const t = v * 2 ** -qe;
  return (up ? Math.ceil(t) : Math.floor(t)) * 2 ** qe + 0;
}

function f16Bits(r: number): number {
  const s = r < 0 ? 0x8000 : 0, a = Math.abs(r);
  if (a < 2 ** -14) return s | a * 2 ** 24;
  f64[0] = a;
  const e = ((f64hi[0]! >>> 20) & 0x7ff) - 1023;
  return s | (e + 15) << 10 | (a * 2 ** (10 - e) - 1024);
}

function f16Value(h: number): number {
  const ex = (h >> 10) & 31, m = h & 1023;
  const a = ex === 0 ? m * 2 ** -24 : (m + 1024) * 2 ** (ex - 25);
  return h & 0x8000 ? -a : a;
}

// ---- the reference ----

const fround = Math.fround;

function nonFinite(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!Number.isFinite(v)) {
      throw new NumericalError(`x[${i}] is ${v}: expected finite values to quantize`);
    }
  }
}

/** min and unit of bucket q, as stored (f16 metadata already rounded). */
function bucketMeta(x: Float32Array, q: number, p: Spec): [number, number] {
  const b0 = q * p.bucket, b1 = Math.min(b0 + p.bucket, x.length);
  let mn = x[b0]!, mx = mn;
  for (let i = b0 + 1; i < b1; i++) {
    const v = x[i]!;
    if (v < mn) mn = v;
    if (v > mx) mx = v;
  }
  const levels = 2 ** p.bits - 1;
  const where = `Bucket ${q} (elements ${b0} to ${b1 - 1}) spans ${mn} to ${mx}`;
  if (!p.f16) {
    const range = fround(mx - mn);
    if (!Number.isFinite(range)) {
      throw new NumericalError(
        `${where}, a range that overflows f32: expected max − min below 3.4e38`,
      );
    }
    return [mn, fround(range / levels)];
  }
  const m16 = f16Round(mn, false);
  const u16 = Math.abs(m16) <= 65504 ? f16Round((mx - m16) / levels, true) : Infinity;
  if (u16 > 65504) {
    throw new NumericalError(
      `${where}, whose min or unit does not fit f16 metadata (|value| ≤ 65504): use f32 metadata`,
    );
  }
  return [m16, u16];
}

function quantizeRef(x: Float32Array, p: Spec, stochastic: boolean, seed: number, out: Uint8Array) {
  nonFinite(x);
  const n = x.length, nb = Math.ceil(n / p.bucket), metaBytes = nb * (p.f16 ? 4 : 8);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const levels = 2 ** p.bits - 1, [k0, k1] = keys(seed), b = p.bits;
  out.fill(0, metaBytes);
  let bit = metaBytes * 8;
  for (let q = 0; q < nb; q++) {
    const [mn, unit] = bucketMeta(x, q, p);
    if (p.f16) {
      view.setUint16(q * 4, f16Bits(mn), true);
      view.setUint16(q * 4 + 2, f16Bits(unit), true);
    } else {
      view.setFloat32(q * 8, mn, true);
      view.setFloat32(q * 8 + 4, unit, true);
    }
    const b0 = q * p.bucket, b1 = Math.min(b0 + p.bucket, n);
    for (let i = b0; i < b1; i++, bit += b) {
      let l = 0;
      if (unit !== 0) {
        const v = fround(fround(x[i]! - mn) / unit);
        const r = stochastic ? (hash32(((i + k0) ^ k1) >>> 0) >>> 8) * 2 ** -24 : 0.5;
        l = Math.min(Math.floor(fround(v + r)), levels);
      }
      // b ≤ 8 bits span at most two bytes
      const byte = bit >>> 3, sh = bit & 7;
      out[byte]! |= (l << sh) & 255;
      if (sh + b > 8) out[byte + 1]! |= l >>> (8 - sh);
    }
  }
}

function dequantizeRef(msg: Uint8Array, p: Spec, out: Float32Array, accumulate: boolean): void {
  const n = out.length, nb = Math.ceil(n / p.bucket), b = p.bits, mask = 2 ** b - 1;
  const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  let bit = nb * (p.f16 ? 4 : 8) * 8;
  for (let q = 0; q < nb; q++) {
    const mn = p.f16 ? f16Value(view.getUint16(q * 4, true)) : view.getFloat32(q * 8, true);
    const unit = p.f16
      ? f16Value(view.getUint16(q * 4 + 2, true))
      : view.getFloat32(q * 8 + 4, true);
    const b1 = Math.min((q + 1) * p.bucket, n);
    for (let i = q * p.bucket; i < b1; i++, bit += b) {
      const byte = bit >>> 3, sh = bit & 7;
      const w = msg[byte]! | (sh + b > 8 ? msg[byte + 1]! << 8 : 0);
      const y = fround(mn + fround(((w >>> sh) & mask) * unit));
      out[i] = accumulate ? out[i]! + y : y;
    }
  }
}

// ---- the public functions ----

/**
 * Quantizes `x` into a packed message (into `out`, which must hold exactly
 * {@linkcode quantizedBytes} bytes, or a new buffer). Throws NumericalError naming the first
 * NaN or ±Infinity, or a bucket whose range overflows f32 (or does not fit f16 metadata).
 *
 * @example Round trip on the ts backend
 * ```ts
 * import { dequantizeBuckets, quantizeBuckets } from "./quantize.ts";
 * const x = new Float32Array([0, 0.25, 0.5, 1]);
 * const msg = quantizeBuckets(x, { bits: 2, rounding: "nearest", backend: "ts" });
 * const y = dequantizeBuckets(msg, x.length, { bits: 2, backend: "ts" });
 * // unit = 1/3: 0.25 → level 1 (1/3), 0.5 → level 2 (2/3)
 * if (Math.abs(y[1]! - 1 / 3) > 1e-6 || y[3] !== 1) throw new Error("wrong levels");
 * ```
 */
export function quantizeBuckets(
  x: Float32Array,
  options: QuantizeOptions,
  out?: Uint8Array,
): Uint8Array {
  const p = spec(options);
  checkCount(x.length);
  const rounding = options.rounding ?? "stochastic", seed = options.seed ?? 0;
  if (rounding !== "stochastic" && rounding !== "nearest") {
    throw new RangeError(`Unknown rounding '${rounding}': expected 'stochastic' or 'nearest'`);
  }
  checkSeed(seed);
  const bytes = bytesOf(x.length, p);
  if (out && out.length !== bytes) {
    throw new ShapeError(
      `Cannot quantize ${x.length} elements into ${out.length} bytes: the message needs ${bytes} (${
        describe(p)
      })`,
    );
  }
  const msg = out ?? new Uint8Array(bytes), stochastic = rounding === "stochastic";
  const backend = selectBackend(options.backend);
  if (backend === "ts") {
    quantizeRef(x, p, stochastic, seed, msg);
  } else if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_cq_quantize_f32(
        x,
        x.length,
        p.bits,
        p.bucket,
        p.f16 ? 1 : 0,
        stochastic ? 1 : 0,
        seed,
        msg,
        msg.length,
      ),
    );
  } else {
    const lib = cuda();
    using dx = DeviceBuffer.from(x);
    using dm = DeviceBuffer.alloc("u8", bytes);
    check(
      lib,
      lib.lk_cuda_cq_quantize_f32(
        dx.handle,
        x.length,
        p.bits,
        p.bucket,
        p.f16 ? 1 : 0,
        stochastic ? 1 : 0,
        seed,
        dm.handle,
      ),
    );
    dm.download(msg);
  }
  return msg;
}

function dequantizeInto(
  msg: Uint8Array,
  out: Float32Array,
  options: DequantizeOptions,
  accumulate: boolean,
): Float32Array {
  const p = spec(options);
  checkCount(out.length);
  const bytes = bytesOf(out.length, p);
  if (msg.length !== bytes) {
    throw new ShapeError(
      `Cannot dequantize ${out.length} elements from ${msg.length} bytes: the message has ${bytes} (${
        describe(p)
      })`,
    );
  }
  const backend = selectBackend(options.backend);
  if (backend === "ts") {
    dequantizeRef(msg, p, out, accumulate);
  } else if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_cq_dequantize_f32(
        msg,
        msg.length,
        p.bits,
        p.bucket,
        p.f16 ? 1 : 0,
        accumulate ? 1 : 0,
        out,
        out.length,
      ),
    );
  } else {
    const lib = cuda();
    using dm = DeviceBuffer.from(msg);
    using dout = accumulate ? DeviceBuffer.from(out) : DeviceBuffer.alloc("f32", out.length);
    check(
      lib,
      lib.lk_cuda_cq_dequantize_f32(
        dm.handle,
        out.length,
        p.bits,
        p.bucket,
        p.f16 ? 1 : 0,
        accumulate ? 1 : 0,
        dout.handle,
      ),
    );
    dout.download(out);
  }
  return out;
}

/**
 * The `n` values of a packed message (into `out`, of length n, or a new buffer). The message
 * must be exactly {@linkcode quantizedBytes} long for n and the same spec.
 */
export function dequantizeBuckets(
  msg: Uint8Array,
  n: number,
  options: DequantizeOptions,
  out?: Float32Array,
): Float32Array {
  if (out && out.length !== n) {
    throw new ShapeError(`Cannot dequantize ${n} elements into ${out.length}: expected ${n}`);
  }
  checkCount(n);
  return dequantizeInto(msg, out ?? new Float32Array(n), options, false);
}

/**
 * In place: `out += dequantizeBuckets(msg)` element-wise, each sum rounded to f32 (a reduction's
 * step); returns `out`.
 */
export function dequantizeBucketsAdd(
  msg: Uint8Array,
  out: Float32Array,
  options: DequantizeOptions,
): Float32Array {
  return dequantizeInto(msg, out, options, true);
}
