/**
 * Training Llama models: flat parameters with named views, the loss and the gradient of every
 * parameter (the backward of every forward op, on ts, cpu and cuda kernels), AdamW with clipping
 * and a warm-up + cosine schedule, gradient accumulation, and checkpoints in the HF layout that
 * resume exactly.
 *
 * @module
 */
export * from "./params.ts";
export * from "./data.ts";
export * from "./backward.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./checkpoint.ts";
export * from "./ddp.ts";
export * from "./trainer.ts";
export * from "./compressed.ts";
export * from "./compressors.ts";
export * from "./fsdp.ts";
