/**
 * Sparse weights as a bitmap, the most compact of the stored forms: one bit per entry marks the
 * stored entries, and their values follow row by row. A weight at density d costs d·4 + 1/8
 * bytes per entry (f32 values), e.g. 2.125 at 50 % or 2:4 and 0.525 at 90 %, against 4 dense and
 * 7·d for block-sparse. The product `Y = X·Wᵀ` decompresses W, 32 rows × 512 columns at a time,
 * straight into the packed panels of the C GEMM (cpu; for fewer than 8 tokens it reads each row's
 * bits and values once instead), or walks the bits (ts reference).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { FormatError, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { bitAt, type KernelOptions, resolve, rowTimesTokens, spmmOutput } from "./_backend.ts";

/** A sparse `rows × cols` matrix as a bitmap and its stored values. */
export interface BitmapMatrix {
  /** Rows (output features). */
  rows: number;
  /** Columns (input features). */
  cols: number;
  /**
   * rows × ceil(cols / 8) bytes: bit c % 8 (least significant first) of byte c / 8 of a row is
   * set where column c is stored; bits past `cols` are zero.
   */
  bits: Uint8Array;
  /** rows + 1 offsets into `val`, from the bit counts. */
  rowPtr: Int32Array;
  /** The stored values, row by row in column order. */
  val: Float32Array;
}

const POP = Uint8Array.from({ length: 256 }, (_, b) => {
  let c = 0;
  for (let v = b; v; v >>= 1) c += v & 1;
  return c;
});

/**
 * A bitmap matrix from its stored parts (as saved), checked: `bits` must hold rows ×
 * ceil(cols / 8) bytes with no bit past `cols`, and `val` one value per set bit.
 *
 * @example
 * ```ts
 * import { bitmapFromParts } from "./spmm_bitmap.ts";
 * const w = bitmapFromParts(2, 3, Uint8Array.of(0b010, 0b101), Float32Array.of(2, 1, 3));
 * if (w.rowPtr.join() !== "0,1,3") throw new Error("offsets");
 * ```
 */
export function bitmapFromParts(
  rows: number,
  cols: number,
  bits: Uint8Array,
  val: Float32Array,
  where = "bitmap",
): BitmapMatrix {
  if (!Number.isInteger(rows) || rows < 0 || !Number.isInteger(cols) || cols < 1) {
    throw new ShapeError(`${where}: shape ${rows}×${cols}, expected rows ≥ 0 and cols ≥ 1`);
  }
  const rb = Math.ceil(cols / 8);
  if (bits.length !== rows * rb) {
    throw new FormatError(
      `${where}: ${bits.length} bitmap bytes, expected ${rows}×${rb} = ${
        rows * rb
      } for ${rows}×${cols}`,
    );
  }
  const pad = cols % 8 ? (0xff << (cols % 8)) & 0xff : 0;
  const rowPtr = new Int32Array(rows + 1);
  let p = 0;
  for (let r = 0; r < rows; r++) {
    for (let i = r * rb; i < (r + 1) * rb; i++) p += POP[bits[i]!]!;
    if (bits[(r + 1) * rb - 1]! & pad) {
      throw new FormatError(`${where}: row ${r} has bits set past column ${cols}`);
    }
    rowPtr[r + 1] = p;
  }
  if (val.length !== p) {
    throw new FormatError(`${where}: ${val.length} values for ${p} set bits`);
  }
  return { rows, cols, bits, rowPtr, val };
}

/**
 * The bitmap form of a dense matrix (exact zeros dropped).
 *
 * @example
 * ```ts
 * import { bitmapFromDense, bitmapToDense } from "./spmm_bitmap.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = bitmapFromDense(Matrix.from([[0, 2, 0], [1, 0, 3]]));
 * if (w.bits.join() !== "2,5" || w.val.join() !== "2,1,3") throw new Error("bitmap");
 * if (bitmapToDense(w).data.join() !== "0,2,0,1,0,3") throw new Error("round trip");
 * ```
 */
export function bitmapFromDense(w: Matrix): BitmapMatrix {
  const rb = Math.ceil(w.cols / 8), bits = new Uint8Array(w.rows * rb);
  let nnz = 0;
  for (let i = 0; i < w.data.length; i++) if (w.data[i] !== 0) nnz++;
  const val = new Float32Array(nnz), rowPtr = new Int32Array(w.rows + 1);
  let p = 0;
  for (let r = 0; r < w.rows; r++) {
    const base = r * w.cols;
    for (let c = 0; c < w.cols; c++) {
      const v = w.data[base + c]!;
      if (v !== 0) {
        bits[r * rb + (c >> 3)]! |= 1 << (c & 7);
        val[p++] = v;
      }
    }
    rowPtr[r + 1] = p;
  }
  return { rows: w.rows, cols: w.cols, bits, rowPtr, val };
}

/** The dense form of a bitmap matrix. */
export function bitmapToDense(w: BitmapMatrix): Matrix {
  const out = new Matrix(w.rows, w.cols, new Float32Array(w.rows * w.cols));
  const rb = Math.ceil(w.cols / 8);
  for (let r = 0; r < w.rows; r++) {
    let p = w.rowPtr[r]!;
    for (let c = 0; c < w.cols; c++) {
      if (bitAt(w.bits, r * rb, c)) out.data[r * w.cols + c] = w.val[p++]!;
    }
  }
  return out;
}

/** Bytes of the stored form (bits and values; the row offsets are recomputed on load). */
export function bitmapBytes(w: BitmapMatrix): number {
  return w.bits.byteLength + w.val.byteLength;
}

/**
 * `Y = X·Wᵀ` for dense `X[m,k]` and bitmap `W[n,k]`.
 *
 * @example
 * ```ts
 * import { bitmapFromDense, bitmapMatmulT } from "./spmm_bitmap.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = bitmapFromDense(Matrix.from([[0, 2, 0], [1, 0, 3]]));
 * const y = bitmapMatmulT(Matrix.from([[1, 2, 3]]), w, { backend: "ts" });
 * if (y.data.join() !== "4,10") throw new Error("wrong product");
 * ```
 */
export function bitmapMatmulT(x: Matrix, w: BitmapMatrix, options: KernelOptions = {}): Matrix {
  const y = spmmOutput(x, w);
  if (resolve(options) === "ts" || x.data instanceof Float64Array) {
    const k = x.cols, rb = Math.ceil(k / 8), cols = new Int32Array(k);
    for (let o = 0; o < w.rows; o++) {
      let q = 0;
      for (let c = 0; c < k; c++) if (bitAt(w.bits, o * rb, c)) cols[q++] = c;
      rowTimesTokens(x, y, o, cols, q, w.val, w.rowPtr[o]!);
    }
    return y;
  }
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_bitmap_matmul_f32(
      x.data as Float32Array,
      x.data.length,
      w.bits,
      w.bits.length,
      w.rowPtr,
      w.rowPtr.length,
      w.val,
      w.val.length,
      y.data as Float32Array,
      y.data.length,
      x.rows,
      x.cols,
      w.rows,
    ),
  );
  return y;
}
