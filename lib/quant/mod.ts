/**
 * Weight quantization: uniform quantizers, round-to-nearest, GPTQ (groups, act-order, static
 * groups, joint N:M sparsity), whole-model quantization with true-sequential order.
 *
 * @module
 */
export * from "./quantizer.ts";
export * from "./gptq.ts";
export * from "./quantize_model.ts";
