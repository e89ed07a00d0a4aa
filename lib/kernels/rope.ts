/**
 * Rotary position embedding applied in place, forward (+angle) or backward (−angle, its
 * transpose).
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { expectLength, type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** Options of {@linkcode applyRope}. */
export interface RopeOptions extends KernelOptions {
  /** 1: rotate by +angle (the forward); −1: by −angle (the backward). Default 1. */
  dir?: 1 | -1;
}

/**
 * Rotates each head of every row of `x` (T × heads·d, HF `rotate_half` layout: element i pairs
 * with i + d/2) by the angles whose cos and sin are given per row (T × d/2 each), in place.
 *
 * @example
 * ```ts
 * import { applyRope } from "./rope.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const x = Matrix.from([[1, 0]]); // one head of d = 2
 * const cos = new Float32Array([0]), sin = new Float32Array([1]); // a quarter turn
 * applyRope(x, cos, sin, 2, { backend: "ts" });
 * if (x.get(0, 0) !== 0 || x.get(0, 1) !== 1) throw new Error("wrong rotation");
 * applyRope(x, cos, sin, 2, { backend: "ts", dir: -1 }); // and back
 * if (x.get(0, 0) !== 1 || x.get(0, 1) !== 0) throw new Error("wrong inverse");
 * ```
 */
export function applyRope(
  x: Matrix,
  cos: Float32Array,
  sin: Float32Array,
  headDim: number,
  options: RopeOptions = {},
): Matrix {
  const dir = options.dir ?? 1, d = headDim, T = x.rows;
  if (!Number.isInteger(d) || d <= 0 || d % 2 !== 0 || x.cols % d !== 0) {
    throw new ShapeError(`applyRope: head width ${d} is not even or does not divide ${x.cols}`);
  }
  if (dir !== 1 && dir !== -1) throw new RangeError(`applyRope: dir ${dir}, expected 1 or -1`);
  const heads = x.cols / d, half = d / 2;
  expectLength("applyRope", "cos", cos, T * half);
  expectLength("applyRope", "sin", sin, T * half);
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_rope_f32(
        x.data,
        x.data.length,
        cos,
        cos.length,
        sin,
        sin.length,
        T,
        heads,
        d,
        dir,
      ),
    );
    return x;
  }
  if (backend === "cuda") {
    runOnDevice(
      [x.data, cos, sin],
      [0],
      (lib, [hx, hc, hs]) => lib.lk_cuda_rope_f32(hx!, hc!, hs!, T, heads, d, dir),
    );
    return x;
  }
  const X = x.data;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < heads; h++) {
      const o = t * x.cols + h * d;
      for (let i = 0; i < half; i++) {
        const a = X[o + i]!, b = X[o + i + half]!;
        const c = cos[t * half + i]!, s = dir * sin[t * half + i]!;
        X[o + i] = a * c - b * s;
        X[o + i + half] = b * c + a * s;
      }
    }
  }
  return x;
}
