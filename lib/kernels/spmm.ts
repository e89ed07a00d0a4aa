/**
 * Sparse weights in compressed sparse rows and their product with dense activations,
 * `Y = X·Wᵀ` for `W[n,k]` (the layout of a Linear weight): the storage and kernel of pruned
 * experts. Column indices are 16-bit (k ≤ 65536, which covers every Llama width), so a weight at
 * sparsity s costs (1 − s)·6 bytes per entry plus 4 bytes per row, against 4 bytes dense (f32).
 *
 * Backends: ts (reference) and cpu (C, token tiles transposed so each nonzero is one vector
 * multiply-add); cuda falls back to cpu (no CUDA sparse kernel yet).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, rowTimesTokens, spmmOutput } from "./_backend.ts";

/** A sparse `rows × cols` matrix in CSR. */
export interface CsrMatrix {
  /** Rows (output features). */
  rows: number;
  /** Columns (input features), at most 65536. */
  cols: number;
  /** rows + 1 offsets into `col` and `val`. */
  rowPtr: Int32Array;
  /** Column index of each nonzero, ascending within a row. */
  col: Uint16Array;
  /** Value of each nonzero. */
  val: Float32Array;
}

/**
 * The CSR form of a dense matrix (exact zeros dropped).
 *
 * @example
 * ```ts
 * import { csrFromDense } from "./spmm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = csrFromDense(Matrix.from([[0, 2, 0], [1, 0, 3]]));
 * if (w.val.join() !== "2,1,3" || w.col.join() !== "1,0,2" || w.rowPtr.join() !== "0,1,3") throw new Error("csr");
 * ```
 */
export function csrFromDense(w: Matrix): CsrMatrix {
  if (w.cols > 65536) {
    throw new ShapeError(
      `Cannot store ${w.cols} columns with 16-bit indices: expected at most 65536`,
    );
  }
  let nnz = 0;
  for (let i = 0; i < w.data.length; i++) if (w.data[i] !== 0) nnz++;
  const rowPtr = new Int32Array(w.rows + 1),
    col = new Uint16Array(nnz),
    val = new Float32Array(nnz);
  let p = 0;
  for (let r = 0; r < w.rows; r++) {
    const base = r * w.cols;
    for (let c = 0; c < w.cols; c++) {
      const v = w.data[base + c]!;
      if (v !== 0) {
        col[p] = c;
        val[p++] = v;
      }
    }
    rowPtr[r + 1] = p;
  }
  return { rows: w.rows, cols: w.cols, rowPtr, col, val };
}

/** The dense form of a CSR matrix. */
export function csrToDense(w: CsrMatrix): Matrix {
  const out = new Matrix(w.rows, w.cols, new Float32Array(w.rows * w.cols));
  for (let r = 0; r < w.rows; r++) {
    for (let p = w.rowPtr[r]!; p < w.rowPtr[r + 1]!; p++) {
      out.data[r * w.cols + w.col[p]!] = w.val[p]!;
    }
  }
  return out;
}

/** Bytes of the CSR arrays. */
export function csrBytes(w: CsrMatrix): number {
  return w.rowPtr.byteLength + w.col.byteLength + w.val.byteLength;
}

/**
 * `Y = X·Wᵀ` for dense `X[m,k]` and sparse `W[n,k]`.
 *
 * @example
 * ```ts
 * import { csrFromDense, csrMatmulT } from "./spmm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const y = csrMatmulT(Matrix.from([[1, 2, 3]]), csrFromDense(Matrix.from([[0, 2, 0], [1, 0, 3]])), { backend: "ts" });
 * if (y.data.join() !== "4,10") throw new Error("wrong product");
 * ```
 */
export function csrMatmulT(x: Matrix, w: CsrMatrix, options: KernelOptions = {}): Matrix {
  const y = spmmOutput(x, w);
  const backend = resolve(options);
  if (backend === "ts" || x.data instanceof Float64Array) {
    for (let o = 0; o < w.rows; o++) {
      const p0 = w.rowPtr[o]!, q = w.rowPtr[o + 1]! - p0;
      rowTimesTokens(x, y, o, w.col.subarray(p0, p0 + q), q, w.val, p0);
    }
    return y;
  }
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_csr_matmul_f32(
      x.data as Float32Array,
      x.data.length,
      w.rowPtr,
      w.rowPtr.length,
      w.col,
      w.col.length,
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

/**
 * A sparse matrix in row blocks whose nonzeros are sorted by column ("block sparse columns"): the
 * kernel loads each activation column once per block instead of once per nonzero. 7 bytes per
 * nonzero (16-bit column, 8-bit row in block, f32 value) plus 4 bytes per block.
 */
export interface BlockSparseMatrix {
  /** Rows (output features). */
  rows: number;
  /** Columns (input features), at most 65536. */
  cols: number;
  /** Rows per block (1…256). */
  blockRows: number;
  /** ceil(rows / blockRows) + 1 offsets into `col`, `row` and `val`. */
  blkPtr: Int32Array;
  /** Column of each nonzero, ascending within a block. */
  col: Uint16Array;
  /** Row of each nonzero within its block. */
  row: Uint8Array;
  /** Value of each nonzero. */
  val: Float32Array;
}

/** Throws unless `cols` fits 16-bit column indices and `blockRows` is in 1…256. */
export function checkBlockSparse(cols: number, blockRows: number): void {
  if (cols > 65536) {
    throw new ShapeError(
      `Cannot store ${cols} columns with 16-bit indices: expected at most 65536`,
    );
  }
  if (!Number.isInteger(blockRows) || blockRows < 1 || blockRows > 256) {
    throw new RangeError(`Block rows ${blockRows}: expected an integer in 1…256`);
  }
}

/** The block-sparse form of a dense matrix (exact zeros dropped), blocks of `blockRows` rows. */
export function blockSparseFromDense(w: Matrix, blockRows = 128): BlockSparseMatrix {
  checkBlockSparse(w.cols, blockRows);
  let nnz = 0;
  for (let i = 0; i < w.data.length; i++) if (w.data[i] !== 0) nnz++;
  const nblk = Math.ceil(w.rows / blockRows);
  const blkPtr = new Int32Array(nblk + 1), col = new Uint16Array(nnz), row = new Uint8Array(nnz);
  const val = new Float32Array(nnz);
  let p = 0;
  for (let b = 0; b < nblk; b++) {
    const r0 = b * blockRows, r1 = Math.min(w.rows, r0 + blockRows);
    for (let c = 0; c < w.cols; c++) {
      for (let r = r0; r < r1; r++) {
        const v = w.data[r * w.cols + c]!;
        if (v !== 0) {
          col[p] = c;
          row[p] = r - r0;
          val[p++] = v;
        }
      }
    }
    blkPtr[b + 1] = p;
  }
  return { rows: w.rows, cols: w.cols, blockRows, blkPtr, col, row, val };
}

/** The dense form of a block-sparse matrix. */
export function blockSparseToDense(w: BlockSparseMatrix): Matrix {
  const out = new Matrix(w.rows, w.cols, new Float32Array(w.rows * w.cols));
  for (let b = 0; b + 1 < w.blkPtr.length; b++) {
    for (let p = w.blkPtr[b]!; p < w.blkPtr[b + 1]!; p++) {
      out.data[(b * w.blockRows + w.row[p]!) * w.cols + w.col[p]!] = w.val[p]!;
    }
  }
  return out;
}

/** Bytes of the block-sparse arrays. */
export function blockSparseBytes(w: BlockSparseMatrix): number {
  return w.blkPtr.byteLength + w.col.byteLength + w.row.byteLength + w.val.byteLength;
}

/** `Y = X·Wᵀ` for dense `X[m,k]` and block-sparse `W[n,k]` (ts reference or the C kernel). */
export function blockSparseMatmulT(
  x: Matrix,
  w: BlockSparseMatrix,
  options: KernelOptions = {},
): Matrix {
  const y = spmmOutput(x, w);
  const backend = resolve(options);
  if (backend === "ts" || x.data instanceof Float64Array) {
    const k = x.cols, n = w.rows, nblk = w.blkPtr.length - 1;
    for (let i = 0; i < x.rows; i++) {
      for (let b = 0; b < nblk; b++) {
        for (let p = w.blkPtr[b]!; p < w.blkPtr[b + 1]!; p++) {
          y.data[i * n + b * w.blockRows + w.row[p]!]! += w.val[p]! * x.data[i * k + w.col[p]!]!;
        }
      }
    }
    return y;
  }
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_bsc_matmul_f32(
      x.data as Float32Array,
      x.data.length,
      w.blkPtr,
      w.blkPtr.length,
      w.col,
      w.col.length,
      w.row,
      w.row.length,
      w.val,
      w.val.length,
      y.data as Float32Array,
      y.data.length,
      x.rows,
      x.cols,
      w.rows,
      w.blockRows,
    ),
  );
  return y;
}
