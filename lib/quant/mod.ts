/**
 * Weight quantization: uniform quantizers, round-to-nearest, GPTQ (groups, act-order, static
 * groups, joint N:M sparsity), whole-model quantization with true-sequential order, GPTQ and
 * compressed-tensors checkpoints, the W4A16 / W8A16 layer they load as, and QUIK (W4A4 / W8A8 with
 * f32 outlier columns).
 *
 * @module
 */
export * from "./quantizer.ts";
export * from "./gptq.ts";
export * from "./quantize_model.ts";
export * from "./quant_linear.ts";
export * from "./checkpoint.ts";
export * from "./quik.ts";
export * from "./quik_linear.ts";
export * from "./quik_checkpoint.ts";
export * from "./quantize_layers.ts";
