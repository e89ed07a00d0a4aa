/* The project's own cache-blocked, vectorised GEMM in f32 and f64 (see gemm_tmpl.h). Vector
 * width follows the build machine: 512-bit with AVX-512, else 256-bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"

#if defined(__AVX512F__)
#define VBYTES 64
#define LK_MR 8
#else
#define VBYTES 32
#define LK_MR 6
#endif

typedef float vf_t __attribute__((vector_size(VBYTES)));
typedef double vd_t __attribute__((vector_size(VBYTES)));

#define T float
#define V vf_t
#define VL (VBYTES / 4)
#define MR LK_MR
#define NR (2 * VL)
#define KC 256
#define MC 128
#define NC 2048
#define G sg
#define SRC_F32_ALLOWED 0
#include "gemm_tmpl.h"
#undef T
#undef V
#undef VL
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef G
#undef SRC_F32_ALLOWED

#define T double
#define V vd_t
#define VL (VBYTES / 8)
#define MR LK_MR
#define NR (2 * VL)
#define KC 256
#define MC 96
#define NC 2048
#define G dg
#define SRC_F32_ALLOWED 1
#include "gemm_tmpl.h"

void lk_sgemm(int m, int n, int k, float alpha, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
              const float* b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float* c, ptrdiff_t ldc,
              int lower_only) {
  sg_parallel(m, n, k, alpha, a, 0, rsa, csa, b, 0, rsb, csb, beta, c, ldc, lower_only);
}

void lk_dgemm(int m, int n, int k, double alpha, const void* a, int a_f32, ptrdiff_t rsa,
              ptrdiff_t csa, const void* b, int b_f32, ptrdiff_t rsb, ptrdiff_t csb, double beta,
              double* c, ptrdiff_t ldc, int lower_only) {
  dg_parallel(m, n, k, alpha, a, a_f32, rsa, csa, b, b_f32, rsb, csb, beta, c, ldc, lower_only);
}
