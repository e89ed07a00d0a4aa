/**
 * The kernel layer: one function per operation, each with a TypeScript reference (`ts`), a C
 * implementation (`cpu`) and a CUDA implementation (`cuda`), chosen at run time.
 *
 * @module
 */
export * from "./matmul.ts";
export * from "./gram.ts";
export * from "./obs.ts";
export * from "./topk.ts";
export * from "./attention.ts";
export * from "./activation.ts";
export * from "./spmm.ts";
export * from "./spmm_bitmap.ts";
export * from "./spmm_nm.ts";
export * from "./sparse_weight.ts";
export type { KernelOptions } from "./_backend.ts";
export {
  availableBackends,
  type Backend,
  BACKENDS,
  type DevArray,
  DeviceBuffer,
  DeviceDType,
  selectBackend,
} from "../../ffi/mod.ts";
export * from "./gemm.ts";
export * from "./rmsnorm.ts";
export * from "./rope.ts";
export * from "./embedding.ts";
export * from "./cross_entropy.ts";
export * from "./adamw.ts";
export * from "./quant_matmul.ts";
export * from "./quik_matmul.ts";
export * from "./selfcheck.ts";
