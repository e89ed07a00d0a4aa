/**
 * lmkit: a Deno toolkit for research on language-model compression and language data.
 *
 * This module re-exports the library: core types, file I/O and the kernel layer (ts / cpu / cuda
 * backends behind one function per operation).
 *
 * @example
 * ```ts
 * import { Matrix, matmul } from "./mod.ts";
 * const c = matmul(Matrix.from([[1, 2]]), Matrix.from([[3], [4]]), { backend: "ts" });
 * if (c.get(0, 0) !== 11) throw new Error("wrong product");
 * ```
 *
 * @module
 */
export * from "./lib/core/mod.ts";
export * from "./lib/io/mod.ts";
export * from "./lib/kernels/mod.ts";
export * from "./lib/model/mod.ts";
export * from "./lib/train/mod.ts";
export * from "./lib/comm/mod.ts";
export * from "./lib/sparse/mod.ts";
export * from "./lib/quant/mod.ts";
export * from "./lib/wasserstein/mod.ts";
export * from "./lib/report/mod.ts";
export * from "./lib/ambiguity/mod.ts";
export * from "./lib/crosslingual/mod.ts";
export * from "./lib/toxicity/mod.ts";
export * from "./lib/stats/mod.ts";
export * from "./lib/probes/mod.ts";
export * from "./lib/probes/collect.ts";
export * from "./lib/probes/cache.ts";
export * from "./lib/probes/data.ts";
