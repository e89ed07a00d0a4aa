/**
 * One sparse weight, several stored forms: a tagged union over bitmap, block-sparse, packed N:M
 * and CSR, with one product `Y = X·Wᵀ`, its bytes and its dense form. `"auto"` picks the form
 * that the CPU benchmark (`bench/sparse_formats_bench.ts`, 256 × 8192 × 28672 per-expert
 * products) found fastest ({@linkcode autoForm}): packed N:M for 2:4 and 4:8 weights (1.34–1.43×
 * dense at 2:4, 1.33× at 4:8: only the kept entries are multiplied), block-sparse below
 * {@linkcode BLOCK_SPARSE_MAX_DENSITY} (1.4× dense at 70 %, 3.3× at 90 %), else the bitmap
 * (1.0–1.1× dense at 50 % with 0.53 of the bytes, where block-sparse is 0.9×). That choice is for
 * batched tokens; for decoding (fewer than 8 tokens) the bitmap is the fastest form at every
 * unstructured sparsity (one token: 1.37× dense at 50 %, 3.2× at 90 %), so ask for it there;
 * packed 2:4 decodes as fast as the bitmap (its index bytes are read as bitmap bytes).
 *
 * @module
 */
import { Matrix } from "../core/matrix.ts";
import type { KernelOptions } from "./_backend.ts";
import {
  blockSparseBytes,
  blockSparseFromDense,
  blockSparseMatmulT,
  type BlockSparseMatrix,
  blockSparseToDense,
  checkBlockSparse,
  csrBytes,
  csrFromDense,
  csrMatmulT,
  type CsrMatrix,
  csrToDense,
} from "./spmm.ts";
import {
  bitmapBytes,
  bitmapFromDense,
  bitmapMatmulT,
  type BitmapMatrix,
  bitmapToDense,
} from "./spmm_bitmap.ts";
import {
  nmBytes,
  nmFromDense,
  nmMatmulT,
  type NmMatrix,
  nmPatternOf,
  nmToDense,
} from "./spmm_nm.ts";

/** A sparse weight in one of its stored forms. */
export type SparseWeight =
  | { format: "bitmap"; matrix: BitmapMatrix }
  | { format: "block-sparse"; matrix: BlockSparseMatrix }
  | { format: "nm"; matrix: NmMatrix }
  | { format: "csr"; matrix: CsrMatrix };

/** The stored forms. */
export type SparseFormat = SparseWeight["format"];

/** The stored forms, for flags and messages. */
export const SPARSE_FORMATS: readonly SparseFormat[] = ["bitmap", "block-sparse", "nm", "csr"];

/**
 * Density (kept / all entries) below which `"auto"` stores block-sparse instead of a bitmap. On
 * the benchmark machine the two kernels cross at about 65 % sparsity: at 60 % the bitmap took
 * 616–653 ms and block-sparse 635–833 ms, at 65 % 621–640 and 572–752 ms, at 68 % 604 and 521 ms
 * (bench/RESULTS.md).
 */
export const BLOCK_SPARSE_MAX_DENSITY = 0.35;

/** Options of {@linkcode compressWeight}. */
export interface CompressOptions {
  /** The stored form (default `"auto"`: by density, see the module doc). */
  format?: SparseFormat | "auto";
  /** N:M pattern, required for `"nm"`. */
  nm?: { n: number; m: number };
  /** Rows per block for `"block-sparse"` (default 128). */
  blockRows?: number;
}

/**
 * The form `"auto"` holds a weight in (dense or bitmap): packed N:M when every group obeys 2:4 or
 * 4:8 and the groups are nearly full (density at least 0.9·N/M; a sparser weight that happens to
 * fit the pattern is faster block-sparse), else block-sparse below
 * {@linkcode BLOCK_SPARSE_MAX_DENSITY}, else the bitmap.
 */
export function autoForm(
  w: Matrix | BitmapMatrix,
): { format: SparseFormat; nm?: { n: number; m: number } } {
  const d = "bits" in w ? (w.rows * w.cols ? w.val.length / (w.rows * w.cols) : 0) : density(w);
  const nm = nmPatternOf(w);
  if (nm && d >= 0.9 * nm.n / nm.m) return { format: "nm", nm };
  return { format: d < BLOCK_SPARSE_MAX_DENSITY ? "block-sparse" : "bitmap" };
}

/** Fraction of a dense matrix's entries that are not zero. */
export function density(w: Matrix): number {
  let nnz = 0;
  for (let i = 0; i < w.data.length; i++) if (w.data[i] !== 0) nnz++;
  return w.data.length ? nnz / w.data.length : 0;
}

/**
 * The compressed form of a dense weight (exact zeros dropped).
 *
 * @example
 * ```ts
 * import { compressWeight, sparseMatmulT } from "./sparse_weight.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0, 2, 0, 0], [0, 0, 0, 3]]);
 * const sw = compressWeight(w); // density 0.25 → block-sparse
 * if (sw.format !== "block-sparse") throw new Error(sw.format);
 * const y = sparseMatmulT(Matrix.from([[1, 2, 3, 4]]), sw, { backend: "ts" });
 * if (y.data.join() !== "4,12") throw new Error("wrong product");
 * ```
 */
export function compressWeight(w: Matrix, options: CompressOptions = {}): SparseWeight {
  let format = options.format ?? "auto", nm = options.nm;
  if (format === "auto") ({ format, nm } = autoForm(w));
  switch (format) {
    case "bitmap":
      return { format, matrix: bitmapFromDense(w) };
    case "block-sparse":
      return { format, matrix: blockSparseFromDense(w, options.blockRows) };
    case "csr":
      return { format, matrix: csrFromDense(w) };
    case "nm":
      if (!nm) throw new RangeError("The 'nm' format needs an N:M pattern (options.nm)");
      return { format, matrix: nmFromDense(w, nm.n, nm.m) };
    default:
      throw new RangeError(
        `Unknown sparse format '${format}': expected auto or one of ${SPARSE_FORMATS.join(", ")}`,
      );
  }
}

/**
 * The block-sparse form of a bitmap matrix, without a dense copy (a loaded expert that is sparse
 * enough for the block-sparse kernel).
 *
 * @example
 * ```ts
 * import { blockSparseFromBitmap } from "./sparse_weight.ts";
 * import { bitmapFromDense } from "./spmm_bitmap.ts";
 * import { blockSparseFromDense } from "./spmm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0, 2, 0], [1, 0, 3], [0, 0, 4]]);
 * const a = blockSparseFromBitmap(bitmapFromDense(w), 2), b = blockSparseFromDense(w, 2);
 * if (a.val.join() !== b.val.join() || a.col.join() !== b.col.join()) throw new Error("differs");
 * ```
 */
export function blockSparseFromBitmap(w: BitmapMatrix, blockRows = 128): BlockSparseMatrix {
  checkBlockSparse(w.cols, blockRows);
  const nnz = w.rowPtr[w.rows]!, nblk = Math.ceil(w.rows / blockRows), rb = Math.ceil(w.cols / 8);
  const blkPtr = new Int32Array(nblk + 1), col = new Uint16Array(nnz), row = new Uint8Array(nnz);
  const val = new Float32Array(nnz), off = new Int32Array(blockRows);
  let p = 0;
  for (let b = 0; b < nblk; b++) {
    const r0 = b * blockRows, r1 = Math.min(w.rows, r0 + blockRows);
    for (let r = r0; r < r1; r++) off[r - r0] = w.rowPtr[r]!;
    for (let c = 0; c < w.cols; c++) {
      const byte = c >> 3, bit = c & 7;
      for (let r = r0; r < r1; r++) {
        if ((w.bits[r * rb + byte]! >> bit) & 1) {
          col[p] = c;
          row[p] = r - r0;
          val[p++] = w.val[off[r - r0]!++]!;
        }
      }
    }
    blkPtr[b + 1] = p;
  }
  return { rows: w.rows, cols: w.cols, blockRows, blkPtr, col, row, val };
}

/** `Y = X·Wᵀ` for dense `X[m,k]` and a compressed `W[n,k]`, by the form's kernel. */
export function sparseMatmulT(x: Matrix, w: SparseWeight, options: KernelOptions = {}): Matrix {
  switch (w.format) {
    case "bitmap":
      return bitmapMatmulT(x, w.matrix, options);
    case "block-sparse":
      return blockSparseMatmulT(x, w.matrix, options);
    case "nm":
      return nmMatmulT(x, w.matrix, options);
    case "csr":
      return csrMatmulT(x, w.matrix, options);
  }
}

/** Bytes of the form's arrays. */
export function sparseWeightBytes(w: SparseWeight): number {
  switch (w.format) {
    case "bitmap":
      return bitmapBytes(w.matrix);
    case "block-sparse":
      return blockSparseBytes(w.matrix);
    case "nm":
      return nmBytes(w.matrix);
    case "csr":
      return csrBytes(w.matrix);
  }
}

/**
 * The bitmap form of a weight: a bitmap weight as it is held, any other form or a dense matrix
 * through its dense form (exact zeros dropped).
 *
 * @example
 * ```ts
 * import { compressWeight, sparseWeightToBitmap } from "./sparse_weight.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0, 2, 0, 0], [1, 0, 0, 3]]);
 * const b = sparseWeightToBitmap(compressWeight(w, { format: "csr" }));
 * if (b.val.join() !== "2,1,3" || b.bits.join() !== "2,9") throw new Error("bitmap");
 * ```
 */
export function sparseWeightToBitmap(w: Matrix | SparseWeight): BitmapMatrix {
  if (w instanceof Matrix) return bitmapFromDense(w);
  return w.format === "bitmap" ? w.matrix : bitmapFromDense(sparseWeightToDense(w));
}

/** The dense form. */
export function sparseWeightToDense(w: SparseWeight): Matrix {
  switch (w.format) {
    case "bitmap":
      return bitmapToDense(w.matrix);
    case "block-sparse":
      return blockSparseToDense(w.matrix);
    case "nm":
      return nmToDense(w.matrix);
    case "csr":
      return csrToDense(w.matrix);
  }
}
