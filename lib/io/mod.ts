/**
 * File I/O: safetensors (lazy, sharded), `.npy`, streaming CSV/TSV/JSONL readers (gzip too) with
 * file-and-line errors, and all-or-nothing output writing.
 *
 * @module
 */
export * from "./safetensors.ts";
export * from "./npy.ts";
export * from "./text.ts";
export * from "./output.ts";
