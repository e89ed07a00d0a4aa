/* GEMM template, included by gemm.c once per element type. Expects:
 *   T (element), V (vector of VL elements), VL, MR, NR (= 2·VL), KC, MC, NC, G (name prefix),
 *   SRC_F32_ALLOWED (whether sources may be f32 when T is double).
 * BLIS-style: B panels (KC×NC) and A blocks (MC×KC) are packed into contiguous slivers, and an
 * MR×NR register-tiled micro-kernel runs over them. Strided packing handles every transpose. */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

static inline T CAT(G, _ld)(const void* src, int f32, ptrdiff_t i) {
  return SRC_F32_ALLOWED && f32 ? (T)((const float*)src)[i] : ((const T*)src)[i];
}

static void CAT(G, _pack_a)(int mc, int kc, const void* a, int f32, ptrdiff_t rsa, ptrdiff_t csa,
                            T* restrict ap) {
  for (int is = 0; is < mc; is += MR) {
    int mr = mc - is < MR ? mc - is : MR;
    T* dst = ap + (ptrdiff_t)is * kc;
    for (int r = 0; r < MR; r++) {
      if (r < mr) {
        ptrdiff_t base = (ptrdiff_t)(is + r) * rsa;
        for (int p = 0; p < kc; p++) dst[p * MR + r] = CAT(G, _ld)(a, f32, base + p * csa);
      } else {
        for (int p = 0; p < kc; p++) dst[p * MR + r] = 0;
      }
    }
  }
}

static void CAT(G, _pack_b)(int kc, int nc, const void* b, int f32, ptrdiff_t rsb, ptrdiff_t csb,
                            T* restrict bp) {
  for (int js = 0; js < nc; js += NR) {
    int nr = nc - js < NR ? nc - js : NR;
    T* dst = bp + (ptrdiff_t)js * kc;
    if (csb == 1 && nr == NR) {
      for (int p = 0; p < kc; p++) {
        if (!(SRC_F32_ALLOWED && f32))
          memcpy(dst + p * NR, (const T*)b + p * rsb + js, sizeof(T) * NR);
        else
          for (int j = 0; j < NR; j++) dst[p * NR + j] = CAT(G, _ld)(b, f32, p * rsb + js + j);
      }
    } else {
      for (int j = 0; j < NR; j++) {
        if (j < nr) {
          ptrdiff_t base = (ptrdiff_t)(js + j) * csb;
          for (int p = 0; p < kc; p++) dst[p * NR + j] = CAT(G, _ld)(b, f32, base + p * rsb);
        } else {
          for (int p = 0; p < kc; p++) dst[p * NR + j] = 0;
        }
      }
    }
  }
}

static inline void CAT(G, _micro)(int kc, const T* restrict ap, const T* restrict bp, T* c,
                                  ptrdiff_t ldc, int mr, int nr, T alpha, T beta) {
  V acc[MR][2];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = (V){0};
  for (int p = 0; p < kc; p++) {
    V b0, b1;
    memcpy(&b0, bp + p * NR, sizeof(V));
    memcpy(&b1, bp + p * NR + VL, sizeof(V));
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      T av = ap[p * MR + r];
      acc[r][0] += av * b0;
      acc[r][1] += av * b1;
    }
  }
  if (mr == MR && nr == NR) {
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      T* cr = c + r * ldc;
      V c0 = alpha * acc[r][0], c1 = alpha * acc[r][1];
      if (beta != 0) {
        V o0, o1;
        memcpy(&o0, cr, sizeof(V));
        memcpy(&o1, cr + VL, sizeof(V));
        c0 += beta * o0;
        c1 += beta * o1;
      }
      memcpy(cr, &c0, sizeof(V));
      memcpy(cr + VL, &c1, sizeof(V));
    }
  } else {
    T tmp[MR * NR];
    for (int r = 0; r < MR; r++) {
      memcpy(tmp + r * NR, &acc[r][0], sizeof(V));
      memcpy(tmp + r * NR + VL, &acc[r][1], sizeof(V));
    }
    for (int r = 0; r < mr; r++)
      for (int j = 0; j < nr; j++) {
        T* cij = c + r * ldc + j;
        *cij = alpha * tmp[r * NR + j] + (beta != 0 ? beta * *cij : 0);
      }
  }
}

/* One thread's GEMM on a block of C whose first row is row0 of the whole C (for lower_only). */
static void CAT(G, _serial)(int m, int n, int k, T alpha, const void* a, int a_f32, ptrdiff_t rsa,
                            ptrdiff_t csa, const void* b, int b_f32, ptrdiff_t rsb, ptrdiff_t csb,
                            T beta, T* c, ptrdiff_t ldc, int lower_only, int row0, T* ap, T* bp) {
  if (k == 0) {
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) c[i * ldc + j] = beta != 0 ? beta * c[i * ldc + j] : 0;
    return;
  }
  for (int jc = 0; jc < n; jc += NC) {
    int nc = n - jc < NC ? n - jc : NC;
    if (lower_only && jc > row0 + m - 1) break;
    for (int pc = 0; pc < k; pc += KC) {
      int kc = k - pc < KC ? k - pc : KC;
      T beta_p = pc == 0 ? beta : (T)1;
      CAT(G, _pack_b)(kc, nc, (const char*)b + (pc * rsb + jc * csb) * (b_f32 && SRC_F32_ALLOWED ? 4 : (ptrdiff_t)sizeof(T)),
                      b_f32, rsb, csb, bp);
      for (int ic = 0; ic < m; ic += MC) {
        int mc = m - ic < MC ? m - ic : MC;
        if (lower_only && jc > row0 + ic + mc - 1) continue;
        CAT(G, _pack_a)(mc, kc, (const char*)a + (ic * rsa + pc * csa) * (a_f32 && SRC_F32_ALLOWED ? 4 : (ptrdiff_t)sizeof(T)),
                        a_f32, rsa, csa, ap);
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = nc - jr < NR ? nc - jr : NR;
          for (int ir = 0; ir < mc; ir += MR) {
            int mr = mc - ir < MR ? mc - ir : MR;
            if (lower_only && jc + jr > row0 + ic + ir + mr - 1) continue;
            CAT(G, _micro)(kc, ap + (ptrdiff_t)ir * kc, bp + (ptrdiff_t)jr * kc,
                           c + (ptrdiff_t)(ic + ir) * ldc + jc + jr, ldc, mr, nr, alpha, beta_p);
          }
        }
      }
    }
  }
}

/* Splits C among the OpenMP threads and runs the serial kernel on each part. */
static void CAT(G, _parallel)(int m, int n, int k, T alpha, const void* a, int a_f32,
                              ptrdiff_t rsa, ptrdiff_t csa, const void* b, int b_f32,
                              ptrdiff_t rsb, ptrdiff_t csb, T beta, T* c, ptrdiff_t ldc,
                              int lower_only) {
  if (m == 0 || n == 0) return;
  ptrdiff_t esz_a = a_f32 && SRC_F32_ALLOWED ? 4 : (ptrdiff_t)sizeof(T);
  ptrdiff_t esz_b = b_f32 && SRC_F32_ALLOWED ? 4 : (ptrdiff_t)sizeof(T);
  int threads = 1;
#ifdef _OPENMP
  if ((double)m * n * k > 262144.0) threads = omp_get_max_threads();
#endif
  int by_rows = lower_only || m > n;
  int units = by_rows ? (m + MR - 1) / MR : (n + NR - 1) / NR;
  if (threads > units) threads = units;
#pragma omp parallel num_threads(threads)
  {
    int t = 0, nt = 1;
#ifdef _OPENMP
    t = omp_get_thread_num();
    nt = omp_get_num_threads();
#endif
    int u0, u1;
    if (lower_only) { /* equal triangle areas: boundaries at units·sqrt(t/nt) */
      u0 = (int)(units * sqrt((double)t / nt));
      u1 = (int)(units * sqrt((double)(t + 1) / nt));
      if (t == nt - 1) u1 = units;
    } else {
      u0 = (int)((long)units * t / nt);
      u1 = (int)((long)units * (t + 1) / nt);
    }
    /* pack_a fills whole MR-row slivers: MC rounded up (128 rows are 22 slivers of 6 without AVX-512) */
    T* ap = lk_alloc(sizeof(T) * (size_t)((MC + MR - 1) / MR * MR) * KC);
    T* bp = lk_alloc(sizeof(T) * (size_t)KC * NC);
    if (ap && bp && u1 > u0) {
      if (by_rows) {
        int r0 = u0 * MR, r1 = u1 * MR < m ? u1 * MR : m;
        CAT(G, _serial)(r1 - r0, n, k, alpha, (const char*)a + r0 * rsa * esz_a, a_f32, rsa, csa,
                        b, b_f32, rsb, csb, beta, c + (ptrdiff_t)r0 * ldc, ldc, lower_only, r0,
                        ap, bp);
      } else {
        int c0 = u0 * NR, c1 = u1 * NR < n ? u1 * NR : n;
        CAT(G, _serial)(m, c1 - c0, k, alpha, a, a_f32, rsa, csa,
                        (const char*)b + c0 * csb * esz_b, b_f32, rsb, csb, beta, c + c0, ldc, 0,
                        0, ap, bp);
      }
    }
    free(ap);
    free(bp);
  }
}
#undef CAT
#undef CAT_
