// Internal to liblmkit_cuda.so: what the ffi/cuda/*.cu files share (defined in lmkit_cuda.cu).
// Hidden symbols, so that none of these helpers is exported next to the lk_* entry points.
// No CUDA include here: each .cu includes its CUDA headers before this one (the emulator's build,
// ffi/emu/build.sh, copies this header next to the rewritten sources and drops CUDA includes).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "../include/lmkit.h"

#define LK_HIDDEN __attribute__((visibility("hidden")))

// device-buffer element types, as numbered in lmkit.h (lk_cuda_alloc)
enum { DT_F32 = 0, DT_F64 = 1, DT_I32 = 2, DT_U8 = 3, DT_BF16 = 4 };

// Records the calling thread's error message (lk_last_error) and returns code.
LK_HIDDEN int32_t fail(int32_t code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// Looks up handle h (argument `what` of fn), expecting dtype and at least `need` elements.
LK_HIDDEN int32_t get(const char* fn, const char* what, int32_t h, int32_t dtype, double need, void** out);
// LK_EBACKEND naming fn when the last kernel launch failed.
LK_HIDDEN int32_t launched(const char* fn);
// Blocks of `threads` for a grid-stride loop over n elements (at least 1, capped).
LK_HIDDEN int blocks_for(size_t n, int threads);
// LK_EBACKEND unless cuBLAS is loaded.
LK_HIDDEN int32_t need_blas(const char* fn);
// Column-major cublasSgemm (C = alpha·op(A)·op(B) + beta·C); loads cuBLAS first.
LK_HIDDEN int32_t blas_sgemm(const char* fn, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                             const float* a, int lda, const float* b, int ldb, float beta, float* c, int ldc);

#define CUDA_TRY(fn, call)                                                                   \
  do {                                                                                       \
    cudaError_t e_ = (call);                                                                 \
    if (e_ != cudaSuccess)                                                                   \
      return fail(e_ == cudaErrorMemoryAllocation ? LK_ENOMEM : LK_EBACKEND, "%s: %s (%s)", \
                  fn, cudaGetErrorString(e_), #call);                                        \
  } while (0)
