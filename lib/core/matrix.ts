/**
 * The row-major dense matrix used everywhere in lmkit: a shape and a flat typed array.
 * Float32Array by default; Float64Array where an algorithm needs the precision (Hessians,
 * Cholesky factors).
 *
 * @module
 */
import { ShapeError } from "./errors.ts";

/** Element storage of a {@linkcode Matrix}. */
export type MatrixData = Float32Array | Float64Array;
/** Element type name of a {@linkcode Matrix}. */
export type DType = "f32" | "f64";

/**
 * A row-major matrix. `data[i * cols + j]` is element (i, j).
 *
 * @example
 * ```ts
 * import { Matrix } from "./matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const m = Matrix.from([[1, 2, 3], [4, 5, 6]]);
 * assertEquals(m.get(1, 2), 6);
 * assertEquals(m.transpose().shape, [3, 2]);
 * ```
 */
export class Matrix<T extends MatrixData = Float32Array> {
  /** Number of rows. */
  readonly rows: number;
  /** Number of columns. */
  readonly cols: number;
  /** Row-major elements, length rows × cols. */
  readonly data: T;

  /**
   * Wraps existing storage (no copy).
   * @param rows Number of rows.
   * @param cols Number of columns.
   * @param data Row-major elements; its length must be rows × cols.
   */
  constructor(rows: number, cols: number, data: T) {
    checkDim(rows, "rows");
    checkDim(cols, "cols");
    if (data.length !== rows * cols) {
      throw new ShapeError(
        `Cannot view ${data.length} elements as a ${rows}×${cols} matrix: expected ${rows * cols}`,
      );
    }
    this.rows = rows;
    this.cols = cols;
    this.data = data;
  }

  /** A rows×cols f32 matrix of zeros. */
  static zeros(rows: number, cols: number): Matrix<Float32Array> {
    checkDim(rows, "rows");
    checkDim(cols, "cols");
    return new Matrix(rows, cols, new Float32Array(rows * cols));
  }

  /** A rows×cols f64 matrix of zeros. */
  static zeros64(rows: number, cols: number): Matrix<Float64Array> {
    checkDim(rows, "rows");
    checkDim(cols, "cols");
    return new Matrix(rows, cols, new Float64Array(rows * cols));
  }

  /** An f32 matrix from nested arrays; all rows must have the same length. */
  static from(rows: ArrayLike<number>[]): Matrix<Float32Array> {
    const r = rows.length;
    const c = r === 0 ? 0 : (rows[0] as ArrayLike<number>).length;
    const m = Matrix.zeros(r, c);
    rows.forEach((row, i) => {
      if (row.length !== c) {
        throw new ShapeError(
          `Cannot build a matrix: row ${i} has ${row.length} values, expected ${c}`,
        );
      }
      m.data.set(row, i * c);
    });
    return m;
  }

  /** [rows, cols]. */
  get shape(): [number, number] {
    return [this.rows, this.cols];
  }

  /** "f32" or "f64". */
  get dtype(): DType {
    return this.data instanceof Float64Array ? "f64" : "f32";
  }

  /** Element (i, j). */
  get(i: number, j: number): number {
    return this.data[i * this.cols + j] as number;
  }

  /** Sets element (i, j). */
  set(i: number, j: number, v: number): void {
    this.data[i * this.cols + j] = v;
  }

  /** Row i as a view (no copy). */
  row(i: number): T {
    return this.data.subarray(i * this.cols, (i + 1) * this.cols) as T;
  }

  /** A transposed copy. */
  transpose(): Matrix<T> {
    const { rows, cols, data } = this;
    const out = new (data.constructor as { new (n: number): T })(rows * cols);
    for (let i = 0; i < rows; i++) {
      for (let j = 0; j < cols; j++) out[j * rows + i] = data[i * cols + j] as number;
    }
    return new Matrix(cols, rows, out);
  }

  /** A copy with Float64Array storage. */
  toF64(): Matrix<Float64Array> {
    return new Matrix(this.rows, this.cols, Float64Array.from(this.data));
  }

  /** A copy with Float32Array storage. */
  toF32(): Matrix<Float32Array> {
    return new Matrix(this.rows, this.cols, Float32Array.from(this.data));
  }
}

function checkDim(n: number, what: string): void {
  if (!Number.isInteger(n) || n < 0) {
    throw new ShapeError(`Cannot use ${n} as the number of ${what}: expected an integer ≥ 0`);
  }
}
