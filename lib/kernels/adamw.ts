/**
 * One AdamW step over a flat parameter buffer and its moment buffers.
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { expectLength, type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** Hyperparameters of one {@linkcode adamwStep}. */
export interface AdamWStep {
  /** Learning rate of this step. */
  lr: number;
  /** First-moment decay. */
  beta1: number;
  /** Second-moment decay. */
  beta2: number;
  /** Added to the root of the second moment. */
  eps: number;
  /** Decoupled weight decay (0 for parameters without decay). */
  weightDecay: number;
  /** The step number, from 1 (for the bias corrections). */
  step: number;
}

/**
 * In place, as `torch.optim.AdamW` (decay first, then the bias-corrected Adam update):
 * m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; p −= lr·(wd·p + (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)).
 *
 * @example
 * ```ts
 * import { adamwStep } from "./adamw.ts";
 * const p = Float32Array.of(1), g = Float32Array.of(0.5), m = new Float32Array(1), v = new Float32Array(1);
 * adamwStep(p, g, m, v, { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 0, weightDecay: 0, step: 1 }, { backend: "ts" });
 * // the first bias-corrected step moves every parameter by lr·sign(g)
 * if (Math.abs(p[0]! - 0.9) > 1e-7) throw new Error("wrong step");
 * ```
 */
export function adamwStep(
  p: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  h: AdamWStep,
  options: KernelOptions = {},
): void {
  const n = p.length;
  expectLength("adamwStep", "g", g, n);
  expectLength("adamwStep", "m", m, n);
  expectLength("adamwStep", "v", v, n);
  if (!Number.isInteger(h.step) || h.step < 1) {
    throw new RangeError(`adamwStep: step ${h.step} is not an integer ≥ 1`);
  }
  for (const k of ["lr", "beta1", "beta2", "eps", "weightDecay"] as const) {
    if (!Number.isFinite(h[k]) || h[k] < 0) {
      throw new RangeError(`adamwStep: ${k} ${h[k]} is not a finite number ≥ 0`);
    }
  }
  const bc1 = 1 - h.beta1 ** h.step, bc2 = 1 - h.beta2 ** h.step;
  const args = [n, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, bc1, bc2] as const;
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(lib, lib.lk_cpu_adamw_f32(p, n, g, n, m, n, v, n, ...args));
    return;
  }
  if (backend === "cuda") {
    runOnDevice(
      [p, g, m, v],
      [0, 2, 3],
      (lib, hd) => lib.lk_cuda_adamw_f32(hd[0]!, hd[1]!, hd[2]!, hd[3]!, ...args),
    );
    return;
  }
  const b1 = h.beta1, b2 = h.beta2, decay = 1 - h.lr * h.weightDecay;
  const stepSize = h.lr / bc1, bc2Sqrt = Math.sqrt(bc2);
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    m[i] = b1 * m[i]! + (1 - b1) * gi;
    v[i] = b2 * v[i]! + (1 - b2) * gi * gi;
    p[i] = p[i]! * decay - stepSize * m[i]! / (Math.sqrt(v[i]!) / bc2Sqrt + h.eps);
  }
}
