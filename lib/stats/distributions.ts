/**
 * The distribution functions the tests need: the standard normal CDF (through erfc, accurate to
 * about 1e-15 relative) and Student's t CDF (through the regularized incomplete beta function).
 *
 * @module
 */

/** erfc(x) by W. J. Cody's rational approximations (about 1e-15 relative error). */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const z = Math.abs(x);
  let r: number;
  if (z < 0.5) {
    r = 1 - erfSmall(z);
  } else if (z < 4) {
    const p = [
      3.004592610201616005e2,
      4.519189537118729422e2,
      3.393208167343436870e2,
      1.529892850469404039e2,
      4.316222722205673530e1,
      7.211758250883093659,
      5.641955174789739711e-1,
      -1.368648573827167067e-7,
    ];
    const q = [
      3.004592609569832933e2,
      7.909509253278980272e2,
      9.313540948506096211e2,
      6.389802644656311665e2,
      2.775854447439876434e2,
      7.700015293522947295e1,
      1.278272731962942351e1,
      1,
    ];
    let num = 0, den = 0;
    for (let i = 7; i >= 0; i--) {
      num = num * z + p[i]!;
      den = den * z + q[i]!;
    }
    r = Math.exp(-z * z) * num / den;
  } else {
    const p = [
      -2.99610707703542174e-3,
      -4.94730910623250734e-2,
      -2.26956593539686930e-1,
      -2.78661308609647788e-1,
      -2.23192459734184686e-2,
    ];
    const q = [
      1.06209230528467918e-2,
      1.91308926107829841e-1,
      1.05167510706793207,
      1.98733201817135256,
      1,
    ];
    const iz2 = 1 / (z * z);
    let num = 0, den = 0;
    for (let i = 4; i >= 0; i--) {
      num = num * iz2 + p[i]!;
      den = den * iz2 + q[i]!;
    }
    r = (Math.exp(-z * z) / z) * (1 / Math.sqrt(Math.PI) + iz2 * num / den);
  }
  return x < 0 ? 2 - r : r;
}

function erfSmall(z: number): number {
  const p = [
    3.209377589138469472562e3,
    3.774852376853020208137e2,
    1.138641541510501556495e2,
    3.161123743870565596947,
    1.857777061846031526730e-1,
  ];
  const qq = [
    2.844236833439170622273e3,
    1.282616526077372275645e3,
    2.440246379344441733056e2,
    2.360129095234412093499e1,
    1,
  ];
  const z2 = z * z;
  let num = 0, den = 0;
  for (let i = 4; i >= 0; i--) {
    num = num * z2 + p[i]!;
    den = den * z2 + qq[i]!;
  }
  return z * num / den;
}

/**
 * Φ(x), the standard normal CDF.
 *
 * @example
 * ```ts
 * import { normalCdf } from "./distributions.ts";
 * if (Math.abs(normalCdf(1.959963984540054) - 0.975) > 1e-12) throw new Error("Φ(1.96)");
 * ```
 */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/** Two-sided p-value of a standard normal statistic. */
export function normalTwoSidedP(z: number): number {
  return erfc(Math.abs(z) / Math.SQRT2);
}

function lnGamma(x: number): number {
  // Lanczos (g = 7, n = 9)
  const c = [
    0.99999999999980993,
    676.5203681218851,
    -1259.1392167224028,
    771.32342877765313,
    -176.61502916214059,
    12.507343278686905,
    -0.13857109526572012,
    9.9843695780195716e-6,
    1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - lnGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

function betaCf(a: number, b: number, x: number): number {
  // modified Lentz continued fraction
  const tiny = 1e-300;
  let c = 1, d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 10000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-16) break;
  }
  return h;
}

/** The regularized incomplete beta function I_x(a, b). */
export function incompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const lbt = lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x);
  if (x < (a + 1) / (a + b + 2)) return (Math.exp(lbt) * betaCf(a, b, x)) / a;
  return 1 - (Math.exp(lbt) * betaCf(b, a, 1 - x)) / b;
}

/** Two-sided p-value of Student's t statistic with `df` degrees of freedom. */
export function tTwoSidedP(t: number, df: number): number {
  if (!Number.isFinite(t)) return Number.isNaN(t) ? NaN : 0;
  return incompleteBeta(df / (df + t * t), df / 2, 0.5);
}
