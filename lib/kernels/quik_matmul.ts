/**
 * QUIK's product (Ashkboos et al.): 4- or 8-bit weights times per-token 4- or 8-bit activations,
 * with a few input columns ("outliers") kept in f32 on both sides.
 *
 * {@linkcode quikQuantize} quantizes the tokens: per token, over its integer columns (every
 * column but the outliers, in order), `s = (max − min)/(2^b − 1)` in f32 (1 when that is 0),
 * level `u = round((x − min)/s)` (ties to even) in [0, 2^b − 1], kept signed as
 * `q = u − 2^(b−1)`; `zero = min + 2^(b−1)·s`, so that `x ≈ s·q + zero`. This is the authors'
 * kernel formula (the exact minimum as zero point; their simulation rounds the zero to a level).
 *
 * {@linkcode quikMatmul} multiplies: with the weight's signed levels `w` (symmetric, one f32
 * scale `sw` per output row, level sums `Σw`) and f32 outlier weights `Wo`,
 * `Y[t,c] = acc·s[t]·sw[c] + zero[t]·sw[c]·Σ_p w[c,p] + Σ_j xo[t,j]·Wo[c,j]` with the exact int32
 * `acc = Σ_p q[t,p]·w[c,p]`.
 *
 * Backends: `ts` is the simulated (fake-quantized) layer — dequantized activations times the
 * dequantized weight in f64, plus the outlier product — and the reference of the others; `cpu`
 * runs `ffi/cpu/quik.c`: the quantizer, and the integer product with AVX-512 VNNI `vpdpbusd`
 * (AVX2: `vpmaddubsw` + `vpmaddwd`; plain C without AVX2) on weight panels whose 4-bit levels are
 * unpacked in registers, the outliers through the f32 GEMM; `cuda` runs `ffi/cuda/quik.cu`: the
 * quantizer (one block a token) and the product on the tensor cores (int4 `mma.m16n8k64` for
 * 4-bit layers on sm_80–89, int8 `mma.m16n8k32` with 4-bit weights unpacked in registers
 * otherwise, as on Hopper), uploading its arguments per call (tested on the CUDA emulator, not
 * yet run or tuned on a GPU).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** A QUIK layer's weight, `rows × cols` (out × in), as the kernels read it. */
export interface QuikWeight {
  /** Output features. */
  rows: number;
  /** Input features (integer columns + outliers). */
  cols: number;
  /** Bits of the weight and of the activations, 4 or 8. */
  bits: number;
  /** The outlier input columns, increasing. */
  outliers: Int32Array;
  /**
   * Unsigned levels `w + 2^(bits−1)` of the integer columns (in increasing column order), row by
   * row: 4-bit two a byte (integer column p in byte p >> 1, low nibble for even p), 8-bit one a byte.
   */
  levels: Uint8Array;
  /** One scale per output row. */
  scales: Float32Array;
  /** Σ of each row's signed levels. */
  sums: Int32Array;
  /** rows × outliers f32 weights of the outlier columns. */
  outlierWeight: Float32Array;
}

/** Tokens quantized by {@linkcode quikQuantize}. */
export interface QuikInput {
  /** Tokens. */
  rows: number;
  /** Input features. */
  cols: number;
  /** Bits. */
  bits: number;
  /** The outlier columns it was quantized with. */
  outliers: Int32Array;
  /** Bytes per token in `levels`: the integer columns rounded up to 64. */
  stride: number;
  /** rows × stride signed levels (zero padded). */
  levels: Int8Array;
  /** Per-token scale. */
  scales: Float32Array;
  /** Per-token zero term `min + 2^(bits−1)·scale`. */
  zeros: Float32Array;
  /** Per-token Σ of the signed levels. */
  sums: Int32Array;
  /** rows × outliers f32 outlier values. */
  outlierValues: Float32Array;
}

/** Bytes a token's levels take in {@linkcode QuikInput.levels}. */
export function quikStride(intCols: number): number {
  return Math.ceil(intCols / 64) * 64;
}

/** Bytes of one weight row of `intCols` levels. */
export function quikRowBytes(intCols: number, bits: number): number {
  return bits === 4 ? Math.ceil(intCols / 2) : intCols;
}

function checkBits(bits: number): void {
  if (bits !== 4 && bits !== 8) {
    throw new RangeError(`QUIK runs 4- or 8-bit layers, got ${bits} bits`);
  }
}

/** The unsigned level of integer column p of the row whose bytes start at `row`. */
function levelAt(levels: Uint8Array, row: number, p: number, bits: number): number {
  if (bits !== 4) return levels[row + p] as number;
  const b = levels[row + (p >> 1)] as number;
  return p & 1 ? b >> 4 : b & 15;
}

/** Σ of each row's signed levels of row-packed unsigned `levels` (rows × kq). */
export function quikLevelSums(
  levels: Uint8Array,
  rows: number,
  kq: number,
  bits: number,
): Int32Array {
  const rb = quikRowBytes(kq, bits), o = 2 ** (bits - 1), sums = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let p = 0; p < kq; p++) s += levelAt(levels, r * rb, p, bits) - o;
    sums[r] = s;
  }
  return sums;
}

/** Throws unless `outliers` are increasing column indices below `cols`. */
export function checkOutliers(outliers: Int32Array, cols: number): void {
  for (let j = 0; j < outliers.length; j++) {
    const c = outliers[j] as number;
    if (c < 0 || c >= cols || (j > 0 && c <= (outliers[j - 1] as number))) {
      throw new RangeError(
        `Outlier column ${c} (entry ${j}) is invalid: expected increasing columns below ${cols}`,
      );
    }
  }
}

/** Throws unless `w`'s arrays fit its shape. */
export function checkQuikWeight(w: QuikWeight): void {
  checkBits(w.bits);
  if (!Number.isInteger(w.rows) || w.rows < 0 || !Number.isInteger(w.cols) || w.cols < 1) {
    throw new ShapeError(`QUIK weight shape ${w.rows}×${w.cols} is invalid`);
  }
  checkOutliers(w.outliers, w.cols);
  const kq = w.cols - w.outliers.length, no = w.outliers.length;
  const need: [string, { length: number }, number][] = [
    ["levels", w.levels, w.rows * quikRowBytes(kq, w.bits)],
    ["scales", w.scales, w.rows],
    ["sums", w.sums, w.rows],
    ["outlierWeight", w.outlierWeight, w.rows * no],
  ];
  for (const [name, a, n] of need) {
    if (a.length !== n) {
      throw new ShapeError(
        `QUIK weight ${w.rows}×${w.cols} (${no} outliers): ${name} holds ${a.length}, expected ${n}`,
      );
    }
  }
}

/**
 * Quantizes the tokens `x` (tokens × in) for {@linkcode quikMatmul}. Non-finite values fail,
 * naming the token and column.
 *
 * @example
 * ```ts
 * import { quikQuantize } from "./quik_matmul.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const q = quikQuantize(Matrix.from([[0, 7.5, 15, 100]]), Int32Array.of(3), 4, { backend: "ts" });
 * // min 0, max 15: scale 1, levels 0, 7.5 → 8 (ties to even), 15, kept as −8, 0, 7
 * if (q.levels.slice(0, 3).join() !== "-8,0,7" || q.outlierValues[0] !== 100) throw new Error();
 * ```
 */
export function quikQuantize(
  x: Matrix,
  outliers: Int32Array,
  bits: number,
  options: KernelOptions = {},
): QuikInput {
  checkBits(bits);
  checkOutliers(outliers, x.cols);
  const m = x.rows, k = x.cols, no = outliers.length, kq = k - no, kp = quikStride(kq);
  const out: QuikInput = {
    rows: m,
    cols: k,
    bits,
    outliers,
    stride: kp,
    levels: new Int8Array(m * kp),
    scales: new Float32Array(m),
    zeros: new Float32Array(m),
    sums: new Int32Array(m),
    outlierValues: new Float32Array(m * no),
  };
  if (m === 0) return out;
  const backend = resolve(options);
  if (backend === "cuda" && x.data instanceof Float32Array) {
    const intCols = new Int32Array(kq), isOut = new Uint8Array(k);
    for (const c of outliers) isOut[c] = 1;
    for (let c = 0, p = 0; c < k; c++) if (!isOut[c]) intCols[p++] = c;
    const lv = new Uint8Array(out.levels.buffer);
    runOnDevice(
      [x.data, intCols, outliers, lv, out.scales, out.zeros, out.sums, out.outlierValues],
      [3, 4, 5, 6, 7],
      (lib, h) =>
        lib.lk_cuda_quik_quantize_f32(
          h[0]!,
          h[1]!,
          h[2]!,
          h[3]!,
          h[4]!,
          h[5]!,
          h[6]!,
          h[7]!,
          m,
          k,
          no,
          bits,
        ),
    );
    return out;
  }
  if (backend !== "ts" && x.data instanceof Float32Array) {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_quik_quantize_f32(
        x.data,
        x.data.length,
        outliers,
        outliers.length,
        out.levels,
        out.levels.length,
        out.scales,
        m,
        out.zeros,
        m,
        out.sums,
        m,
        out.outlierValues,
        out.outlierValues.length,
        m,
        k,
        no,
        bits,
      ),
    );
    return out;
  }
  const f = Math.fround, o = 2 ** (bits - 1), maxq = 2 ** bits - 1;
  const isOut = new Uint8Array(k);
  for (const c of outliers) isOut[c] = 1;
  for (let t = 0; t < m; t++) {
    let mn = Infinity, mx = -Infinity;
    for (let c = 0, j = 0; c < k; c++) {
      const v = f(x.data[t * k + c] as number);
      if (!Number.isFinite(v)) {
        throw new RangeError(`Token ${t}, column ${c} is ${v}: expected a finite value`);
      }
      if (isOut[c]) out.outlierValues[t * no + j++] = v;
      else if (v < mn) mn = v;
      if (!isOut[c] && v > mx) mx = v;
    }
    if (kq === 0) mn = 0;
    let s = kq > 0 ? f(f(mx - mn) / maxq) : 0;
    if (!Number.isFinite(s)) throw new RangeError(`Token ${t}'s range overflows f32`);
    if (s === 0) s = 1;
    out.scales[t] = s;
    out.zeros[t] = f(mn + o * s);
    let sum = 0;
    for (let c = 0, p = 0; c < k; c++) {
      if (isOut[c]) continue;
      const u = Math.min(
        maxq,
        Math.max(0, roundEven(f(f((x.data[t * k + c] as number) - mn) / s))),
      );
      out.levels[t * kp + p++] = u - o;
      sum += u - o;
    }
    out.sums[t] = sum;
  }
  return out;
}

/** Round half to even. */
function roundEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Options of {@linkcode quikMatmul}. */
export interface QuikMatmulOptions extends KernelOptions {
  /** Receives the int32 products `acc` (tokens × rows), when given. */
  acc?: Int32Array;
  /**
   * cuda: the tensor-core path, 4 (int4 mma, 4-bit layers) or 8 (int8 mma); default by device
   * (int4 on sm_80–89, whose tensor cores take int4; int8 on Hopper, which emulates int4 mma).
   */
  cudaPath?: 4 | 8;
}

/**
 * The product of quantized tokens and a QUIK weight (tokens × rows, f32).
 *
 * @example
 * ```ts
 * import { quikMatmul, quikQuantize, type QuikWeight } from "./quik_matmul.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // one output row: integer levels 7, −8 (stored +8: 15, 0 → one byte 0x0F) at scale 0.5, outlier weight 2
 * const w: QuikWeight = {
 *   rows: 1, cols: 3, bits: 4, outliers: Int32Array.of(2), levels: Uint8Array.of(0x0f),
 *   scales: Float32Array.of(0.5), sums: Int32Array.of(-1), outlierWeight: Float32Array.of(2),
 * };
 * const x = quikQuantize(Matrix.from([[0, 3, 10]]), w.outliers, 4, { backend: "ts" });
 * const y = quikMatmul(x, w, { backend: "ts" });
 * // 0·3.5 + 3·(−4) + 10·2 = 8 (0 and 3 are the ends of the range: exact)
 * if (Math.abs(y.get(0, 0) - 8) > 1e-5) throw new Error(`got ${y.get(0, 0)}`);
 * ```
 */
export function quikMatmul(
  x: QuikInput,
  w: QuikWeight,
  options: QuikMatmulOptions = {},
): Matrix {
  checkQuikWeight(w);
  if (x.cols !== w.cols || x.bits !== w.bits) {
    throw new ShapeError(
      `Cannot multiply ${x.bits}-bit tokens of ${x.cols} features by a ${w.bits}-bit ${w.rows}×${w.cols} QUIK weight`,
    );
  }
  if (
    x.outliers.length !== w.outliers.length || x.outliers.some((c, j) => c !== w.outliers[j])
  ) {
    throw new ShapeError("The tokens were quantized with other outlier columns than the weight's");
  }
  const m = x.rows, n = w.rows, no = w.outliers.length, kq = w.cols - no;
  if (options.acc && options.acc.length !== m * n) {
    throw new ShapeError(`acc holds ${options.acc.length} entries, expected ${m}×${n}`);
  }
  const y = Matrix.zeros(m, n);
  if (m === 0 || n === 0) return y;
  const backend = resolve(options);
  if (backend === "cuda") {
    const acc = options.acc;
    const bufs = [
      new Uint8Array(x.levels.buffer, x.levels.byteOffset, x.levels.length),
      x.scales,
      x.zeros,
      x.outlierValues,
      w.levels,
      w.scales,
      w.sums,
      w.outlierWeight,
      y.data as Float32Array,
      ...(acc ? [acc] : []),
    ];
    runOnDevice(bufs, acc ? [8, 9] : [8], (lib, h) =>
      lib.lk_cuda_quik_matmul_f32(
        h[0]!,
        h[1]!,
        h[2]!,
        h[3]!,
        h[4]!,
        h[5]!,
        h[6]!,
        h[7]!,
        h[8]!,
        acc ? h[9]! : -1,
        m,
        kq,
        no,
        n,
        w.bits,
        options.cudaPath ?? 0,
      ));
    return y;
  }
  if (backend !== "ts") {
    const lib = cpu(), acc = options.acc ?? new Int32Array(0);
    check(
      lib,
      lib.lk_cpu_quik_matmul_f32(
        x.levels,
        x.levels.length,
        x.scales,
        m,
        x.zeros,
        m,
        x.sums,
        m,
        x.outlierValues,
        x.outlierValues.length,
        w.levels,
        w.levels.length,
        w.scales,
        n,
        w.sums,
        n,
        w.outlierWeight,
        w.outlierWeight.length,
        y.data as Float32Array,
        y.data.length,
        acc,
        acc.length,
        m,
        kq,
        no,
        n,
        w.bits,
      ),
    );
    return y;
  }
  // simulated: dequantized tokens times the dequantized weight, in f64
  const o = 2 ** (w.bits - 1), rb = quikRowBytes(kq, w.bits), kp = x.stride;
  const xh = new Float64Array(m * kq), wr = new Float64Array(kq), lv = new Int32Array(kq);
  for (let t = 0; t < m; t++) {
    const s = x.scales[t] as number, z = x.zeros[t] as number;
    for (let p = 0; p < kq; p++) xh[t * kq + p] = s * (x.levels[t * kp + p] as number) + z;
  }
  for (let c = 0; c < n; c++) {
    const sw = w.scales[c] as number;
    for (let p = 0; p < kq; p++) {
      lv[p] = levelAt(w.levels, c * rb, p, w.bits) - o;
      wr[p] = sw * (lv[p] as number);
    }
    for (let t = 0; t < m; t++) {
      let sum = 0, acc = 0;
      for (let p = 0; p < kq; p++) sum += (xh[t * kq + p] as number) * (wr[p] as number);
      for (let j = 0; j < no; j++) {
        sum += (x.outlierValues[t * no + j] as number) * (w.outlierWeight[c * no + j] as number);
      }
      y.data[t * n + c] = sum;
      if (options.acc) {
        for (let p = 0; p < kq; p++) acc += (x.levels[t * kp + p] as number) * (lv[p] as number);
        options.acc[t * n + c] = acc;
      }
    }
  }
  return y;
}
