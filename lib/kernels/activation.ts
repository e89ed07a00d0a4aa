/**
 * SwiGLU, the activation of Llama MLPs: silu(gate)·up element-wise.
 *
 * @module
 */
import { check, cpu, cpuLibrary } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve } from "./_backend.ts";

/**
 * silu(gate)·up = gate/(1 + e^(−gate))·up, element-wise, into a new matrix. The cpu kernel uses a
 * vectorised exp accurate to about 2 ulp. The cuda backend runs the cpu kernel (activations are
 * on the host between projections), else ts.
 *
 * @example
 * ```ts
 * import { swiglu } from "./activation.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const y = swiglu(Matrix.from([[0, 1]]), Matrix.from([[5, 2]]), { backend: "ts" });
 * if (y.get(0, 0) !== 0 || Math.abs(y.get(0, 1) - 2 / (1 + Math.exp(-1))) > 1e-6) throw new Error();
 * ```
 */
export function swiglu(gate: Matrix, up: Matrix, options: KernelOptions = {}): Matrix {
  if (gate.rows !== up.rows || gate.cols !== up.cols) {
    throw new ShapeError(
      `Cannot combine a ${gate.rows}×${gate.cols} gate with a ${up.rows}×${up.cols} up`,
    );
  }
  let backend = resolve(options);
  if (backend === "cuda") backend = cpuLibrary().lib ? "cpu" : "ts";
  const out = Matrix.zeros(gate.rows, gate.cols);
  if (backend === "cpu") {
    const lib = cpu(), n = gate.data.length;
    check(lib, lib.lk_cpu_swiglu_f32(gate.data, n, up.data, n, out.data, n, n));
    return out;
  }
  for (let i = 0; i < out.data.length; i++) {
    const g = gate.data[i] as number;
    out.data[i] = (g / (1 + Math.exp(-g))) * (up.data[i] as number);
  }
  return out;
}
