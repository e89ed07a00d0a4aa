/**
 * SwiGLU, the activation of Llama MLPs: silu(gate)·up element-wise.
 *
 * @module
 */
import { check, cpu, cpuLibrary } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

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

/** Gradients from {@linkcode swigluBackward}. */
export interface SwigluGrads {
  /** Gradient of the gate. */
  dgate: Matrix;
  /** Gradient of up. */
  dup: Matrix;
}

/**
 * The backward of {@linkcode swiglu}: with s = σ(gate), dgate = dout·up·s·(1 + gate·(1 − s)) and
 * dup = dout·gate·s.
 *
 * @example
 * ```ts
 * import { swigluBackward } from "./activation.ts";
 * import { Matrix } from "../core/matrix.ts";
 * // at gate 0: silu'(0) = 1/2 and silu(0) = 0
 * const g = swigluBackward(Matrix.from([[0]]), Matrix.from([[3]]), Matrix.from([[2]]), { backend: "ts" });
 * if (g.dgate.get(0, 0) !== 3 || g.dup.get(0, 0) !== 0) throw new Error("wrong gradients");
 * ```
 */
export function swigluBackward(
  gate: Matrix,
  up: Matrix,
  dout: Matrix,
  options: KernelOptions = {},
): SwigluGrads {
  for (const [name, m] of [["up", up], ["dout", dout]] as const) {
    if (m.rows !== gate.rows || m.cols !== gate.cols) {
      throw new ShapeError(
        `swigluBackward: ${name} is ${m.rows}×${m.cols}, expected the gate's ${gate.rows}×${gate.cols}`,
      );
    }
  }
  const dgate = Matrix.zeros(gate.rows, gate.cols), dup = Matrix.zeros(gate.rows, gate.cols);
  const n = gate.data.length, backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_swiglu_bwd_f32(
        gate.data,
        n,
        up.data,
        n,
        dout.data,
        n,
        dgate.data,
        n,
        dup.data,
        n,
        n,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [gate.data, up.data, dout.data, dgate.data, dup.data],
      [3, 4],
      (lib, h) => lib.lk_cuda_swiglu_bwd_f32(h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, n),
    );
  } else {
    for (let i = 0; i < n; i++) {
      const g = gate.data[i]!, s = 1 / (1 + Math.exp(-g)), dy = dout.data[i]!;
      dgate.data[i] = dy * up.data[i]! * s * (1 + g * (1 - s));
      dup.data[i] = dy * g * s;
    }
  }
  return { dgate, dup };
}
