// Small dense kernels on flat f64 arrays used by the probes (row-major n×d matrices).

/** σ(x), computed without overflow. */
export function _sigmoid(x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x));
  const e = Math.exp(x);
  return e / (1 + e);
}

/** torch.logit(p, eps): log(z / (1 − z)) with z = clamp(p, eps, 1 − eps). */
export function _logit(p: number, eps = 1e-6): number {
  const z = Math.min(Math.max(p, eps), 1 - eps);
  return Math.log(z / (1 - z));
}

/** a · b over the first `a.length` entries. */
export function _dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] as number) * (b[i] as number);
  return s;
}

/** ‖a‖₂. */
export function _norm(a: ArrayLike<number>): number {
  return Math.sqrt(_dot(a, a));
}

/** out = X v for a row-major n×d X. */
export function _matvec(
  x: Float64Array,
  n: number,
  d: number,
  v: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  for (let i = 0; i < n; i++) {
    let s = 0;
    const o = i * d;
    for (let j = 0; j < d; j++) s += (x[o + j] as number) * (v[j] as number);
    out[i] = s;
  }
  return out;
}

/** out += Xᵀ c for a row-major n×d X. */
export function _addMatTvec(
  x: Float64Array,
  n: number,
  d: number,
  c: ArrayLike<number>,
  out: Float64Array,
): Float64Array {
  for (let i = 0; i < n; i++) {
    const ci = c[i] as number;
    if (ci === 0) continue;
    const o = i * d;
    for (let j = 0; j < d; j++) out[j]! += ci * (x[o + j] as number);
  }
  return out;
}

/** neg − pos (or any a − b) elementwise. */
export function _sub(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) - (b[i] as number);
  return out;
}
