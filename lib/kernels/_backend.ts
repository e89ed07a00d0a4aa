// Private helpers shared by the kernel files: backend resolution and argument checks.
import { type Backend, selectBackend } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";

export type { Backend };

/** Options every kernel takes. */
export interface KernelOptions {
  /** Force a backend; default: `LMKIT_BACKEND`, else the best available. */
  backend?: Backend;
}

export function resolve(options: KernelOptions): Backend {
  return selectBackend(options.backend);
}

/** The zeroed output `Y[m,n]` of `X[m,k]·Wᵀ` for a sparse `W[n,k]`; throws when k differs. */
export function spmmOutput(x: Matrix, w: { rows: number; cols: number }): Matrix {
  if (x.cols !== w.cols) {
    throw new ShapeError(
      `Cannot multiply X[${x.rows}×${x.cols}] by Wᵀ for W[${w.rows}×${w.cols}]: inner sizes differ`,
    );
  }
  return new Matrix(x.rows, w.rows, new Float32Array(x.rows * w.rows));
}
