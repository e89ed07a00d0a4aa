/**
 * The entry points a user reaches for first: perplexity in one call, the golden validation batch
 * and its check, and the selection of projections by name (which `pruneLayers` in lib/sparse and
 * `quantizeLayers` in lib/quant take).
 *
 * @module
 */
export * from "./text_perplexity.ts";
export * from "./golden.ts";
export * from "./layer_names.ts";
export type { LayerError } from "./_layer_pass.ts";
