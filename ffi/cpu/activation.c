/* Element-wise activations of the model. */
#include "internal.h"

int32_t lk_cpu_swiglu_f32(const float* gate, double gate_len, const float* up, double up_len,
                          float* out, double out_len, double n) {
  const char* fn = "lk_cpu_swiglu_f32";
  if (!(n >= 0) || n != (double)(ptrdiff_t)n)
    return lk_fail(LK_ESHAPE, "%s: n=%g, expected a whole number >= 0", fn, n);
  if (lk_check_len(fn, "gate", gate_len, n) || lk_check_len(fn, "up", up_len, n) ||
      lk_check_len(fn, "out", out_len, n))
    return LK_ESHAPE;
  ptrdiff_t len = (ptrdiff_t)n;
#pragma omp parallel for simd schedule(static) if (len > 65536)
  for (ptrdiff_t i = 0; i < len; i++) out[i] = gate[i] / (1.0f + lk_expf(-gate[i])) * up[i];
  return LK_OK;
}
