/**
 * Row-wise top-k and threshold selection, by value or by magnitude: the selection step of
 * magnitude pruning, N:M masks and top-k gradient compression.
 *
 * @module
 */
import { check, cpu, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { NumericalError, ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve } from "./_backend.ts";

/** Options of {@linkcode topk} and {@linkcode thresholdMask}. */
export interface SelectOptions extends KernelOptions {
  /** Rank by |x| (default true) instead of x. */
  byAbs?: boolean;
}

/** Result of {@linkcode topk}: `rows × k` arrays, each row's indices ascending. */
export interface TopK {
  /** k per row. */
  k: number;
  /** Chosen column indices, ascending within each row. */
  indices: Int32Array;
  /** The (signed) values at those indices. */
  values: Float32Array;
  /** Per row, the k-th largest key (|x| or x): every chosen key is ≥ it. */
  thresholds: Float32Array;
}

function findNaN(x: Matrix): void {
  const i = x.data.findIndex(Number.isNaN);
  if (i >= 0) {
    throw new NumericalError(
      `x[${Math.floor(i / x.cols)},${i % x.cols}] is NaN: expected a number`,
    );
  }
}

/**
 * The k largest entries of each row (ties go to the lower column index).
 *
 * @example
 * ```ts
 * import { topk } from "./topk.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const r = topk(Matrix.from([[0.1, -3, 2, 0.5]]), 2, { backend: "ts" });
 * assertEquals(Array.from(r.indices), [1, 2]);
 * assertEquals(Array.from(r.thresholds), [2]);
 * ```
 */
export function topk(x: Matrix, k: number, options: SelectOptions = {}): TopK {
  if (!Number.isInteger(k) || k < 1 || k > x.cols) {
    throw new RangeError(
      `Cannot take the top ${k} of rows of ${x.cols}: expected 1 ≤ k ≤ ${x.cols}`,
    );
  }
  const byAbs = options.byAbs ?? true;
  const backend = resolve(options);
  if (backend === "ts") return topkRef(x, k, byAbs);
  const out: TopK = {
    k,
    indices: new Int32Array(x.rows * k),
    values: new Float32Array(x.rows * k),
    thresholds: new Float32Array(x.rows),
  };
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_topk_f32(
        x.data,
        x.data.length,
        x.rows,
        x.cols,
        k,
        byAbs ? 1 : 0,
        out.indices,
        out.indices.length,
        out.values,
        out.values.length,
        out.thresholds,
        out.thresholds.length,
      ),
    );
    return out;
  }
  const lib = cuda();
  using dx = DeviceBuffer.from(x.data);
  using di = DeviceBuffer.alloc("i32", out.indices.length);
  using dv = DeviceBuffer.alloc("f32", out.values.length);
  using dt = DeviceBuffer.alloc("f32", out.thresholds.length);
  check(
    lib,
    lib.lk_cuda_topk_f32(
      dx.handle,
      x.rows,
      x.cols,
      k,
      byAbs ? 1 : 0,
      di.handle,
      dv.handle,
      dt.handle,
    ),
  );
  di.download(out.indices);
  dv.download(out.values);
  dt.download(out.thresholds);
  return out;
}

/** The TypeScript reference: a full sort of each row. */
export function topkRef(x: Matrix, k: number, byAbs = true): TopK {
  findNaN(x);
  const { rows, cols, data } = x;
  const out: TopK = {
    k,
    indices: new Int32Array(rows * k),
    values: new Float32Array(rows * k),
    thresholds: new Float32Array(rows),
  };
  const order = new Array<number>(cols);
  const key = (v: number) => byAbs ? Math.abs(v) : v;
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let j = 0; j < cols; j++) order[j] = j;
    order.sort((a, b) => key(data[off + b] as number) - key(data[off + a] as number) || a - b);
    const chosen = order.slice(0, k).sort((a, b) => a - b);
    chosen.forEach((j, o) => {
      out.indices[r * k + o] = j;
      out.values[r * k + o] = data[off + j] as number;
    });
    out.thresholds[r] = key(data[off + (order[k - 1] as number)] as number) + 0; // -0 → +0
  }
  return out;
}

/** Result of {@linkcode thresholdMask}. */
export interface Selection {
  /** 1 where the key is ≥ the row's threshold, row-major like x. */
  mask: Uint8Array;
  /** Number of selected entries per row. */
  counts: Int32Array;
}

/**
 * Selects the entries whose key (|x| or x) is ≥ the row's threshold (one per row, or one for
 * all rows).
 *
 * @example
 * ```ts
 * import { thresholdMask } from "./topk.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const s = thresholdMask(Matrix.from([[0.1, -3, 2]]), 1, { backend: "ts" });
 * assertEquals(Array.from(s.mask), [0, 1, 1]);
 * ```
 */
export function thresholdMask(
  x: Matrix,
  thresholds: Float32Array | number,
  options: SelectOptions = {},
): Selection {
  const thr = typeof thresholds === "number"
    ? new Float32Array(x.rows).fill(thresholds)
    : thresholds;
  if (thr.length !== x.rows) {
    throw new ShapeError(
      `Cannot use ${thr.length} thresholds for ${x.rows} rows: expected one per row`,
    );
  }
  const byAbs = options.byAbs ?? true;
  const backend = resolve(options);
  const out: Selection = { mask: new Uint8Array(x.data.length), counts: new Int32Array(x.rows) };
  if (backend === "ts") {
    findNaN(x);
    const i = thr.findIndex(Number.isNaN);
    if (i >= 0) throw new NumericalError(`thr[${i}] is NaN: expected a number`);
    for (let r = 0; r < x.rows; r++) {
      let c = 0;
      const t = thr[r] as number;
      for (let j = 0; j < x.cols; j++) {
        const v = x.data[r * x.cols + j] as number;
        const s = (byAbs ? Math.abs(v) : v) >= t ? 1 : 0;
        out.mask[r * x.cols + j] = s;
        c += s;
      }
      out.counts[r] = c;
    }
    return out;
  }
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_threshold_f32(
        x.data,
        x.data.length,
        x.rows,
        x.cols,
        thr,
        thr.length,
        byAbs ? 1 : 0,
        out.mask,
        out.mask.length,
        out.counts,
        out.counts.length,
      ),
    );
    return out;
  }
  const lib = cuda();
  using dx = DeviceBuffer.from(x.data);
  using dt = DeviceBuffer.from(thr);
  using dm = DeviceBuffer.alloc("u8", out.mask.length);
  using dc = DeviceBuffer.alloc("i32", out.counts.length);
  check(
    lib,
    lib.lk_cuda_threshold_f32(
      dx.handle,
      x.rows,
      x.cols,
      dt.handle,
      byAbs ? 1 : 0,
      dm.handle,
      dc.handle,
    ),
  );
  dm.download(out.mask);
  dc.download(out.counts);
  return out;
}
