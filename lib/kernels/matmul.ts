/**
 * Dense f32 matrix product, A·B or A·Bᵀ, on the ts, cpu or cuda backend.
 *
 * @module
 */
import { check, cpu, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve } from "./_backend.ts";

/** Options of {@linkcode matmul}. */
export interface MatmulOptions extends KernelOptions {
  /** Multiply by Bᵀ: B is n×k instead of k×n (default false). */
  transB?: boolean;
  /** An m×n matrix to write C into (reused buffers avoid an allocation per call). */
  out?: Matrix;
}

function shapeOf(a: Matrix, b: Matrix, transB: boolean): [number, number, number] {
  const [bk, n] = transB ? [b.cols, b.rows] : [b.rows, b.cols];
  if (a.cols !== bk) {
    throw new ShapeError(
      `Cannot multiply ${a.rows}×${a.cols} by ${b.rows}×${b.cols}${
        transB ? "ᵀ" : ""
      }: inner dimensions ${a.cols} and ${bk} differ`,
    );
  }
  return [a.rows, a.cols, n];
}

/**
 * C = A·B (or A·Bᵀ with `transB`), f32 in and out.
 *
 * @example
 * ```ts
 * import { matmul } from "./matmul.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const a = Matrix.from([[1, 2], [3, 4]]);
 * const c = matmul(a, a, { backend: "ts" });
 * assertEquals(Array.from(c.data), [7, 10, 15, 22]);
 * ```
 */
export function matmul(a: Matrix, b: Matrix, options: MatmulOptions = {}): Matrix {
  const transB = options.transB ?? false;
  const [m, k, n] = shapeOf(a, b, transB);
  const backend = resolve(options);
  const out = options.out;
  if (out && (out.rows !== m || out.cols !== n)) {
    throw new ShapeError(`Cannot write a ${m}×${n} product into a ${out.rows}×${out.cols} matrix`);
  }
  if (backend === "ts") {
    const c = matmulRef(a, b, transB);
    if (!out) return c;
    out.data.set(c.data);
    return out;
  }
  const c = out ?? Matrix.zeros(m, n);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_matmul_f32(
        a.data,
        a.data.length,
        b.data,
        b.data.length,
        c.data,
        c.data.length,
        m,
        k,
        n,
        transB ? 1 : 0,
      ),
    );
    return c;
  }
  const lib = cuda();
  using da = DeviceBuffer.from(a.data);
  using db = DeviceBuffer.from(b.data);
  using dc = DeviceBuffer.alloc("f32", m * n);
  check(lib, lib.lk_cuda_matmul_f32(da.handle, db.handle, dc.handle, m, k, n, transB ? 1 : 0));
  dc.download(c.data);
  return c;
}

/** The TypeScript reference: plain loops with f64 accumulation. */
export function matmulRef(a: Matrix, b: Matrix, transB = false): Matrix {
  const [m, k, n] = shapeOf(a, b, transB);
  const c = Matrix.zeros(m, n);
  const acc = new Float64Array(n);
  const A = a.data, B = b.data;
  for (let i = 0; i < m; i++) {
    acc.fill(0);
    for (let p = 0; p < k; p++) {
      const aip = A[i * k + p] as number;
      if (transB) {
        for (let j = 0; j < n; j++) acc[j]! += aip * (B[j * k + p] as number);
      } else {
        const off = p * n;
        for (let j = 0; j < n; j++) acc[j]! += aip * (B[off + j] as number);
      }
    }
    c.data.set(acc, i * n);
  }
  return c;
}
