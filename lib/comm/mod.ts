/**
 * Communication between the ranks of a job: one communicator interface (rank, size, all-reduce,
 * reduce-scatter, all-gather, all-to-all, broadcast, barrier; each blocking and non-blocking)
 * with two backends, `single` (a world of one, no dependency) and `mpi` (Open MPI through
 * `ffi/build/liblmkit_mpi.so`, processes started by `mpirun`), and the same collectives over GPU
 * memory (`DeviceCommunicator`) with the `nccl` backend (one process per GPU, NCCL loaded at run
 * time by `ffi/build/liblmkit_cuda.so`).
 *
 * @module
 */
export * from "./communicator.ts";
export * from "./errors.ts";
export * from "./single.ts";
export * from "./mpi.ts";
export * from "./nccl.ts";
export * from "./ranks.ts";
export * from "./quantize.ts";
export * from "./quantized.ts";
export * from "./topk.ts";
export * from "./powersgd.ts";
export * from "./lgreco.ts";
export * from "./timed.ts";
