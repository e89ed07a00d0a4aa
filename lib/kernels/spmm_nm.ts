/**
 * N:M sparse weights packed: in every group of M consecutive columns of a row exactly N entries
 * are kept, their values stored densely (N/M of the dense values) and their positions in the
 * group as 2-bit (M ≤ 4) or 4-bit (M ≤ 16) indices. 2:4 costs 2 + 0.125 bytes per entry (f32
 * values), the layout the GPU's sparse tensor cores read. The CPU product for 8 tokens or more
 * multiplies the kept entries only (N/M of the dense FLOPs, tokens as vector lanes), faster than
 * the dense GEMM at 2:4 (bench/RESULTS.md); a bitmap is as small, so models are saved as bitmaps
 * and N:M weights packed on load ({@linkcode nmFromBitmap}).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { FormatError, ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import {
  bitAt,
  fieldAt,
  type KernelOptions,
  resolve,
  rowTimesTokens,
  spmmOutput,
} from "./_backend.ts";
import type { BitmapMatrix } from "./spmm_bitmap.ts";

/** A `rows × cols` N:M sparse matrix, packed. */
export interface NmMatrix {
  /** Rows (output features). */
  rows: number;
  /** Columns (input features), a multiple of m. */
  cols: number;
  /** Entries kept per group (N). */
  n: number;
  /** Group size (M ≤ 16). */
  m: number;
  /** rows × cols/m·n kept values, row by row, by position within each group. */
  val: Float32Array;
  /**
   * The kept entries' positions in their group, {@linkcode nmIndexBits} bits each, least
   * significant first; each row's indices start on a new byte.
   */
  idx: Uint8Array;
}

/** Bits per position index: 2 for M ≤ 4, else 4. */
export function nmIndexBits(m: number): 2 | 4 {
  return m <= 4 ? 2 : 4;
}

function checkPattern(cols: number, n: number, m: number): void {
  if (!Number.isInteger(m) || m < 1 || m > 16 || !Number.isInteger(n) || n < 1 || n > m) {
    throw new RangeError(`Pattern ${n}:${m}: expected N:M with 1 ≤ N ≤ M ≤ 16`);
  }
  if (cols % m !== 0) {
    throw new ShapeError(
      `Cannot pack ${cols} columns in groups of ${m}: M must divide the columns`,
    );
  }
}

const rowIdxBytes = (cols: number, n: number, m: number) =>
  Math.ceil((cols / m) * n * nmIndexBits(m) / 8);

/** The N:M patterns that {@linkcode nmPatternOf} looks for, in order: 2:4, then 4:8. */
export const NM_PATTERNS: readonly { n: number; m: number }[] = [{ n: 2, m: 4 }, { n: 4, m: 8 }];

const POP = Uint8Array.from({ length: 256 }, (_, b) => {
  let c = 0;
  for (let v = b; v; v >>= 1) c += v & 1;
  return c;
});

/**
 * The first of `patterns` (default {@linkcode NM_PATTERNS}) that every group of `w` obeys (at
 * most N nonzeros in each M consecutive columns of a row), or undefined. `w` is a dense matrix or
 * a bitmap; an unstructured weight fails within its first few groups.
 *
 * @example
 * ```ts
 * import { nmPatternOf } from "./spmm_nm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * if (nmPatternOf(Matrix.from([[0, 5, 0, 7, 1, 0, 0, 2]]))?.m !== 4) throw new Error("2:4");
 * if (nmPatternOf(Matrix.from([[1, 5, 3, 0, 0, 0, 0, 0]]))?.m !== 8) throw new Error("4:8");
 * ```
 */
export function nmPatternOf(
  w: Matrix | BitmapMatrix,
  patterns: readonly { n: number; m: number }[] = NM_PATTERNS,
): { n: number; m: number } | undefined {
  const { rows, cols } = w;
  return patterns.find(({ n, m }) => {
    if (cols % m !== 0) return false;
    if (!("bits" in w)) {
      const d = w.data;
      for (let g = 0; g < d.length; g += m) {
        let nz = 0;
        for (let j = 0; j < m; j++) if (d[g + j] !== 0) nz++;
        if (nz > n) return false;
      }
      return true;
    }
    // bitmap rows start on whole bytes; groups of 1, 2, 4 or 8 columns never straddle a byte
    if (8 % m !== 0) {
      const rb = Math.ceil(cols / 8);
      for (let r = 0; r < rows; r++) {
        for (let g = 0; g < cols; g += m) {
          let nz = 0;
          for (let j = g; j < g + m; j++) nz += bitAt(w.bits, r * rb, j);
          if (nz > n) return false;
        }
      }
      return true;
    }
    const gmask = (1 << m) - 1;
    for (const byte of w.bits) {
      for (let sh = 0; sh < 8; sh += m) if (POP[(byte >> sh) & gmask]! > n) return false;
    }
    return true;
  });
}

/**
 * The packed N:M form of a bitmap matrix whose groups hold at most N stored entries, without a
 * dense copy; the same arrays as {@linkcode nmFromDense} of its dense form. Throws like it.
 */
export function nmFromBitmap(b: BitmapMatrix, n: number, m: number): NmMatrix {
  checkPattern(b.cols, n, m);
  const groups = b.cols / m, per = groups * n, ib = nmIndexBits(m), irb = rowIdxBytes(b.cols, n, m);
  const rb = Math.ceil(b.cols / 8);
  const val = new Float32Array(b.rows * per), idx = new Uint8Array(b.rows * irb);
  for (let r = 0; r < b.rows; r++) {
    let q = 0, o = b.rowPtr[r]!;
    for (let g = 0; g < groups; g++) {
      let nz = 0;
      for (let j = g * m; j < g * m + m; j++) nz += bitAt(b.bits, r * rb, j);
      if (nz > n) {
        throw new ShapeError(
          `Row ${r}, columns ${g * m}…${g * m + m - 1} hold ${nz} nonzeros: not ${n}:${m} sparse`,
        );
      }
      let fillers = n - nz; // zeros kept at the first free positions, as nmFromDense does
      for (let j = 0; j < m; j++) {
        const set = bitAt(b.bits, r * rb, g * m + j);
        if (!set) {
          if (fillers === 0) continue;
          fillers--;
        }
        val[r * per + q] = set ? b.val[o++]! : 0;
        const bit = q * ib;
        idx[r * irb + (bit >> 3)]! |= j << (bit & 7);
        q++;
      }
    }
  }
  return { rows: b.rows, cols: b.cols, n, m, val, idx };
}

/**
 * The packed N:M form of a dense matrix whose groups hold at most N nonzeros each (groups with
 * fewer keep zeros at their first free positions). Throws, naming the row and group, when a
 * group holds more than N nonzeros.
 *
 * @example
 * ```ts
 * import { nmFromDense, nmToDense } from "./spmm_nm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // positions 1, 3 | 0, 1 (a zero kept as filler), 2 bits each: 0b01_00_11_01 = 77
 * const w = nmFromDense(Matrix.from([[0, 5, 0, 7, 1, 0, 0, 0]]), 2, 4);
 * if (w.val.join() !== "5,7,1,0" || w.idx.join() !== "77") throw new Error("packing");
 * if (nmToDense(w).data.join() !== "0,5,0,7,1,0,0,0") throw new Error("round trip");
 * ```
 */
export function nmFromDense(w: Matrix, n: number, m: number): NmMatrix {
  checkPattern(w.cols, n, m);
  const groups = w.cols / m, per = groups * n, ib = nmIndexBits(m), irb = rowIdxBytes(w.cols, n, m);
  const val = new Float32Array(w.rows * per), idx = new Uint8Array(w.rows * irb);
  for (let r = 0; r < w.rows; r++) {
    let q = 0;
    for (let g = 0; g < groups; g++) {
      const base = r * w.cols + g * m;
      let nz = 0;
      for (let j = 0; j < m; j++) if (w.data[base + j] !== 0) nz++;
      if (nz > n) {
        throw new ShapeError(
          `Row ${r}, columns ${g * m}…${g * m + m - 1} hold ${nz} nonzeros: not ${n}:${m} sparse`,
        );
      }
      let zerosToKeep = n - nz; // filler positions, taken from the first zeros
      for (let j = 0; j < m; j++) {
        const v = w.data[base + j]!;
        if (v === 0) {
          if (zerosToKeep === 0) continue;
          zerosToKeep--;
        }
        val[r * per + q] = v;
        const bit = q * ib;
        idx[r * irb + (bit >> 3)]! |= j << (bit & 7);
        q++;
      }
    }
  }
  return { rows: w.rows, cols: w.cols, n, m, val, idx };
}

/**
 * A packed N:M matrix from its stored parts, checked: lengths, and positions rising within each
 * group and below M.
 */
export function nmFromParts(
  rows: number,
  cols: number,
  pattern: { n: number; m: number },
  parts: { val: Float32Array; idx: Uint8Array },
  where = "N:M weight",
): NmMatrix {
  const { n, m } = pattern;
  checkPattern(cols, n, m);
  const per = (cols / m) * n, irb = rowIdxBytes(cols, n, m), ib = nmIndexBits(m);
  if (parts.val.length !== rows * per || parts.idx.length !== rows * irb) {
    throw new FormatError(
      `${where}: ${parts.val.length} values and ${parts.idx.length} index bytes, expected ${
        rows * per
      } and ${rows * irb} for ${rows}×${cols} at ${n}:${m}`,
    );
  }
  for (let r = 0; r < rows; r++) {
    for (let q = 0; q < per; q++) {
      const pos = fieldAt(parts.idx, r * irb, q, ib);
      const prev = q % n === 0 ? -1 : fieldAt(parts.idx, r * irb, q - 1, ib);
      if (pos >= m || pos <= prev) {
        throw new FormatError(
          `${where}: row ${r} entry ${q} has position ${pos}, expected ${
            pos >= m ? `< M=${m}` : `above ${prev} (positions rise within a group)`
          }`,
        );
      }
    }
  }
  return { rows, cols, n, m, val: parts.val, idx: parts.idx };
}

/** The dense form of a packed N:M matrix. */
export function nmToDense(w: NmMatrix): Matrix {
  const out = new Matrix(w.rows, w.cols, new Float32Array(w.rows * w.cols));
  const per = (w.cols / w.m) * w.n, ib = nmIndexBits(w.m), irb = rowIdxBytes(w.cols, w.n, w.m);
  for (let r = 0; r < w.rows; r++) {
    for (let q = 0; q < per; q++) {
      const pos = fieldAt(w.idx, r * irb, q, ib);
      out.data[r * w.cols + Math.floor(q / w.n) * w.m + pos] = w.val[r * per + q]!;
    }
  }
  return out;
}

/** Bytes of the packed arrays. */
export function nmBytes(w: NmMatrix): number {
  return w.val.byteLength + w.idx.byteLength;
}

/**
 * `Y = X·Wᵀ` for dense `X[m,k]` and packed N:M `W[n,k]`.
 *
 * @example
 * ```ts
 * import { nmFromDense, nmMatmulT } from "./spmm_nm.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = nmFromDense(Matrix.from([[0, 5, 0, 7], [1, 0, 0, 2]]), 2, 4);
 * const y = nmMatmulT(Matrix.from([[1, 2, 3, 4]]), w, { backend: "ts" });
 * if (y.data.join() !== "38,9") throw new Error("wrong product");
 * ```
 */
export function nmMatmulT(x: Matrix, w: NmMatrix, options: KernelOptions = {}): Matrix {
  const y = spmmOutput(x, w);
  if (resolve(options) === "ts" || x.data instanceof Float64Array) {
    const k = x.cols, per = (k / w.m) * w.n, ib = nmIndexBits(w.m);
    const irb = rowIdxBytes(k, w.n, w.m), cols = new Int32Array(per);
    for (let o = 0; o < w.rows; o++) {
      for (let q = 0; q < per; q++) {
        cols[q] = Math.floor(q / w.n) * w.m + fieldAt(w.idx, o * irb, q, ib);
      }
      rowTimesTokens(x, y, o, cols, per, w.val, o * per);
    }
    return y;
  }
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_nm_matmul_f32(
      x.data as Float32Array,
      x.data.length,
      w.idx,
      w.idx.length,
      w.val,
      w.val.length,
      y.data as Float32Array,
      y.data.length,
      x.rows,
      x.cols,
      w.rows,
      w.n,
      w.m,
    ),
  );
  return y;
}
