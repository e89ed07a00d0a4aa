/**
 * The backward of an embedding lookup: gradient rows scattered back onto the table.
 *
 * @module
 */
import { check, cpu } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import type { Matrix } from "../core/matrix.ts";
import { expectLength, type KernelOptions, resolve, runOnDevice } from "./_backend.ts";

/**
 * dtable[ids[i]] += dh[i] for every row i of `dh` (T × d); `dtable` is vocab × d, flat. Every id
 * is checked to lie in [0, vocab) before anything is written.
 *
 * @example
 * ```ts
 * import { embeddingBackward } from "./embedding.ts";
 * import { Matrix } from "../core/matrix.ts";
 * import { assertEquals } from "@std/assert";
 * const table = new Float32Array(3 * 2); // vocab 3, d 2
 * embeddingBackward(Int32Array.of(2, 0, 2), Matrix.from([[1, 2], [3, 4], [5, 6]]), table, { backend: "ts" });
 * assertEquals(Array.from(table), [3, 4, 0, 0, 6, 8]);
 * ```
 */
export function embeddingBackward(
  ids: Int32Array,
  dh: Matrix,
  dtable: Float32Array,
  options: KernelOptions = {},
): void {
  const T = dh.rows, d = dh.cols;
  expectLength("embeddingBackward", "ids", ids, T);
  if (d === 0 || dtable.length % d !== 0) {
    throw new ShapeError(
      `embeddingBackward: a table of ${dtable.length} values has no rows of width ${d}`,
    );
  }
  const vocab = dtable.length / d;
  for (let i = 0; i < T; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= vocab) {
      throw new RangeError(
        `embeddingBackward: token id ${id} at row ${i} is outside the vocabulary [0, ${vocab})`,
      );
    }
  }
  const backend = resolve(options);
  if (backend === "cpu") {
    const lib = cpu();
    check(
      lib,
      lib.lk_cpu_embedding_bwd_f32(
        ids,
        T,
        dh.data,
        dh.data.length,
        dtable,
        dtable.length,
        T,
        vocab,
        d,
      ),
    );
  } else if (backend === "cuda") {
    runOnDevice(
      [ids, dh.data, dtable],
      [2],
      (lib, [hi, hd, ht]) => lib.lk_cuda_embedding_bwd_f32(hi!, hd!, ht!, T, vocab, d),
    );
  } else {
    for (let i = 0; i < T; i++) {
      const o = ids[i]! * d;
      for (let e = 0; e < d; e++) dtable[o + e] = dtable[o + e]! + dh.data[i * d + e]!;
    }
  }
}
