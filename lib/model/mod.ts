/**
 * Llama-architecture models: configuration, checkpoint loading, the forward pass with hooks and
 * KV cache, tokenizers, generation, perplexity / bits per byte and calibration capture.
 *
 * @module
 */
export * from "./config.ts";
export * from "./linear.ts";
export * from "./llama.ts";
export * from "./tokenizer.ts";
export * from "./generate.ts";
export * from "./perplexity.ts";
export * from "./calibration.ts";
export * from "./corpus.ts";
export * from "./convenience.ts";
