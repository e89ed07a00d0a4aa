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

size_t lk_sgemm_serial_scratch(void) {
  return (size_t)((MC + MR - 1) / MR * MR) * KC + (size_t)KC * NC;
}

void lk_sgemm_serial(int m, int n, int k, float alpha, const float* a, ptrdiff_t rsa, ptrdiff_t csa,
                     const float* b, ptrdiff_t rsb, ptrdiff_t csb, float beta, float* c,
                     ptrdiff_t ldc, int lower_only, float* scratch) {
  if (m <= 0 || n <= 0) return;
  sg_serial(m, n, k, alpha, a, 0, rsa, csa, b, 0, rsb, csb, beta, c, ldc, lower_only, 0, scratch,
            scratch + (size_t)((MC + MR - 1) / MR * MR) * KC);
}

/* Y = X·Wᵀ with W written by `fill` straight into the packed B panels (see internal.h). X is
 * packed once, whole: k block pc holds the mpad × kc slice at xp + pc·mpad, MR-row slivers of
 * kc × MR. For each NC × KC block of W the threads fill their own slivers (the same static split
 * as the products that read them, so each thread reads what it wrote), then run the micro-kernel
 * over all tokens, MC at a time so that the block of X stays in L2. */
_Static_assert(NR == LK_FILL_NR, "lk_fill_fn's slivers are the f32 micro-kernel's");

int lk_sgemm_nt_fill(int m, int n, int k, const float* x, ptrdiff_t ldx, lk_fill_fn fill,
                     void* ctx, float* y, ptrdiff_t ldy) {
  if (m <= 0 || n <= 0) return 0;
  const int mpad = (m + MR - 1) / MR * MR, mcb = MC / MR * MR; /* whole slivers: MR need not divide MC */
  float* xp = lk_alloc(sizeof(float) * (size_t)mpad * k);
  float* bp = lk_alloc(sizeof(float) * (size_t)LK_FILL_KC * NC);
  if (!xp || !bp) {
    free(xp);
    free(bp);
    return 1;
  }
#pragma omp parallel for schedule(static) collapse(2)
  for (int pc = 0; pc < k; pc += LK_FILL_KC)
    for (int is = 0; is < mpad; is += MR) {
      const int kc = k - pc < LK_FILL_KC ? k - pc : LK_FILL_KC, mr = m - is < MR ? m - is : MR;
      sg_pack_a(mr, kc, x + is * ldx + pc, 0, ldx, 1, xp + (size_t)pc * mpad + (size_t)is * kc);
    }
  for (int jc = 0; jc < n; jc += NC) {
    const int nc = n - jc < NC ? n - jc : NC, nsl = (nc + NR - 1) / NR;
    for (int pc = 0; pc < k; pc += LK_FILL_KC) {
      const int kc = k - pc < LK_FILL_KC ? k - pc : LK_FILL_KC;
      const float* xb = xp + (size_t)pc * mpad;
      const float beta = pc == 0 ? 0.0f : 1.0f;
#pragma omp parallel
      {
#pragma omp for schedule(static)
        for (int s = 0; s < nsl; s++) {
          const int nr = nc - s * NR < NR ? nc - s * NR : NR;
          fill(ctx, jc + s * NR, nr, pc, kc, bp + (size_t)s * NR * kc);
        }
        for (int ic = 0; ic < mpad; ic += mcb) {
          const int ie = mpad - ic < mcb ? mpad : ic + mcb;
#pragma omp for schedule(static) nowait
          for (int s = 0; s < nsl; s++) {
            const int nr = nc - s * NR < NR ? nc - s * NR : NR;
            for (int ir = ic; ir < ie; ir += MR)
              sg_micro(kc, xb + (size_t)ir * kc, bp + (size_t)s * NR * kc,
                       y + (ptrdiff_t)ir * ldy + jc + s * NR, ldy, m - ir < MR ? m - ir : MR, nr,
                       1.0f, beta);
          }
        }
      }
    }
  }
  free(xp);
  free(bp);
  return 0;
}
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
