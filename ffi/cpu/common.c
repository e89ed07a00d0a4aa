/* Error state, buffer checks, library info and the run-time OpenBLAS loader. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <sys/resource.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "internal.h"

static __thread char err_msg[512];

int32_t lk_fail(int32_t code, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err_msg, sizeof err_msg, fmt, ap);
  va_end(ap);
  return code;
}

int32_t lk_check_len(const char* fn, const char* what, double have, double need) {
  if (!(have >= 0) || have != floor(have))
    return lk_fail(LK_ESHAPE, "%s: buffer %s length %g is not a whole number of elements", fn,
                   what, have);
  if (have < need)
    return lk_fail(LK_ESHAPE, "%s: buffer %s holds %.0f elements, expected at least %.0f", fn,
                   what, have, need);
  return LK_OK;
}

int32_t lk_check_dims(const char* fn, int32_t m, int32_t k, int32_t n) {
  if (m < 0 || k < 0 || n < 0)
    return lk_fail(LK_ESHAPE, "%s: dimensions must be >= 0, got m=%d k=%d n=%d", fn, m, k, n);
  return LK_OK;
}

void* lk_alloc(size_t bytes) {
  size_t rounded = (bytes + 63) / 64 * 64;
  return aligned_alloc(64, rounded ? rounded : 64);
}

int32_t lk_abi_version(int32_t* out, double out_len) {
  if (lk_check_len("lk_abi_version", "out", out_len, 1)) return LK_ESHAPE;
  out[0] = LK_ABI_VERSION;
  return LK_OK;
}

int32_t lk_last_error(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  snprintf(buf, (size_t)cap, "%s", err_msg);
  return LK_OK;
}

static lk_blas_t blas;
static int blas_found = 0, blas_enabled = 1;
static char blas_name[64] = "";
static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void load_blas(void) {
  const char* names[] = {"libopenblas.so.0", "libopenblas.so", "libopenblasp.so.0"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    void* h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!h) continue;
    *(void**)&blas.sgemm = dlsym(h, "cblas_sgemm");
    *(void**)&blas.dgemm = dlsym(h, "cblas_dgemm");
    *(void**)&blas.ssyrk = dlsym(h, "cblas_ssyrk");
    *(void**)&blas.dsyrk = dlsym(h, "cblas_dsyrk");
    *(void**)&blas.dpotrf = dlsym(h, "dpotrf_");
    *(void**)&blas.dtrtri = dlsym(h, "dtrtri_");
    if (blas.sgemm && blas.dgemm && blas.ssyrk && blas.dsyrk && blas.dpotrf && blas.dtrtri) {
      blas_found = 1;
      snprintf(blas_name, sizeof blas_name, "%s", names[i]);
      return;
    }
    memset(&blas, 0, sizeof blas);
    dlclose(h);
  }
}

const lk_blas_t* lk_blas(void) {
  pthread_once(&blas_once, load_blas);
  return blas_found && blas_enabled ? &blas : NULL;
}

int32_t lk_cpu_set_blas(int32_t mode) {
  if (mode != 0 && mode != 1) return lk_fail(LK_EARG, "lk_cpu_set_blas: mode %d, expected 0 or 1", mode);
  pthread_once(&blas_once, load_blas);
  blas_enabled = mode;
  return LK_OK;
}

/* The process's peak resident set (getrusage's ru_maxrss, KiB on Linux), for benchmarks. */
static long peak_rss_kib(void) {
  struct rusage ru;
  return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int32_t lk_info(char* buf, int32_t cap) {
  if (cap <= 0) return LK_EARG;
  pthread_once(&blas_once, load_blas);
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const char* simd =
#if defined(__AVX512F__)
      "avx512";
#elif defined(__AVX2__)
      "avx2";
#else
      "generic";
#endif
  snprintf(buf, (size_t)cap,
           "{\"backend\":\"cpu\",\"abi\":%d,\"threads\":%d,\"simd\":\"%s\",\"blas\":%s%s%s,"
           "\"blasEnabled\":%s,\"peakRssKiB\":%ld}",
           LK_ABI_VERSION, threads, simd, blas_found ? "\"" : "", blas_found ? blas_name : "null",
           blas_found ? "\"" : "", blas_found && blas_enabled ? "true" : "false", peak_rss_kib());
  return LK_OK;
}
