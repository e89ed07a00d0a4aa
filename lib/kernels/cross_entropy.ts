/**
 * Softmax cross-entropy over logits, with its gradient, in one pass.
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { NumericalError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { expectLength, type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/** Targets of rows to leave out of the loss (padding). */
export const IGNORE_TARGET: number = -1;

/** What {@linkcode crossEntropy} returns. */
export interface CrossEntropyResult {
  /** logsumexp − logit of the target, per row (0 for ignored rows). */
  loss: Float32Array;
  /** scale·(softmax − onehot(target)) per row (zero for ignored rows). */
  dlogits: Matrix;
}

/**
 * Cross-entropy of each row of `logits` (rows × vocab) against `targets` (one per row,
 * {@linkcode IGNORE_TARGET} to skip a row), and the gradient of `scale`·Σ loss.
 *
 * @example
 * ```ts
 * import { crossEntropy } from "./cross_entropy.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const { loss, dlogits } = crossEntropy(Matrix.from([[0, 0], [5, 1]]), Int32Array.of(1, -1), 1, { backend: "ts" });
 * if (Math.abs(loss[0]! - Math.LN2) > 1e-7 || loss[1] !== 0) throw new Error("wrong loss");
 * if (dlogits.get(0, 0) !== 0.5 || dlogits.get(0, 1) !== -0.5 || dlogits.get(1, 0) !== 0) throw new Error();
 * ```
 */
export function crossEntropy(
  logits: Matrix,
  targets: Int32Array,
  scale: number,
  options: KernelOptions = {},
): CrossEntropyResult {
  const rows = logits.rows, vocab = logits.cols;
  expectLength("crossEntropy", "targets", targets, rows);
  if (!Number.isFinite(scale)) throw new RangeError(`crossEntropy: scale ${scale} is not finite`);
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t !== IGNORE_TARGET && (t < 0 || t >= vocab)) {
      throw new RangeError(
        `crossEntropy: target ${t} of row ${r} is outside the vocabulary [0, ${vocab}) and is not ${IGNORE_TARGET}`,
      );
    }
  }
  const loss = new Float32Array(rows), dlogits = Matrix.zeros(rows, vocab);
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_cross_entropy_f32(
        logits.data,
        logits.data.length,
        targets,
        rows,
        loss,
        rows,
        dlogits.data,
        dlogits.data.length,
        rows,
        vocab,
        scale,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [logits.data, targets, loss, dlogits.data],
      [2, 3],
      (lib, h) => lib.lk_cuda_cross_entropy_f32(h[0]!, h[1]!, h[2]!, h[3]!, rows, vocab, scale),
    );
  } else {
    const L = logits.data;
    for (let r = 0; r < rows; r++) {
      const t = targets[r]!, o = r * vocab;
      if (t === IGNORE_TARGET) continue;
      let max = -Infinity;
      for (let i = 0; i < vocab; i++) {
        const x = L[o + i]!;
        if (!Number.isFinite(x)) {
          throw new NumericalError(`crossEntropy: logit ${i} of row ${r} is ${x}`);
        }
        if (x > max) max = x;
      }
      let sum = 0;
      for (let i = 0; i < vocab; i++) sum += Math.exp(L[o + i]! - max);
      const lse = max + Math.log(sum);
      loss[r] = lse - L[o + t]!;
      for (let i = 0; i < vocab; i++) {
        dlogits.data[o + i] = scale * (Math.exp(L[o + i]! - lse) - (i === t ? 1 : 0));
      }
    }
  }
  return { loss, dlogits };
}
