/**
 * One-shot pruning: magnitude, Wanda and SparseGPT (unstructured and N:M), per layer or for a
 * whole model on calibration data.
 *
 * @module
 */
export * from "./sparsegpt.ts";
export * from "./baselines.ts";
export * from "./prune_model.ts";
export * from "./router.ts";
export * from "./expansion.ts";
export * from "./expansion_io.ts";
export * from "./sparse_expert.ts";
export * from "./sparse_expert_cuda.ts";
export { checkModelPattern, type PatternOptions } from "./_pattern.ts";
export * from "./prune_layers.ts";
