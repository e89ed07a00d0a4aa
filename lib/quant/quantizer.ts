/**
 * Uniform integer quantizers of weights, as IST-DASLab/gptq's `Quantizer` defines them: per
 * output row (or per group of input columns of a row) a scale s and an integer zero z, levels
 * q = clamp(round(x/s) + z, 0, 2^b − 1) and values s·(q − z). Symmetric: z = 2^(b−1) and
 * s = 2·max|x|/(2^b − 1); asymmetric: the range [min(x, 0), max(x, 0)] over 2^b − 1 steps,
 * z = round(−min/s). An optional MSE search shrinks the range (grid 100, maxshrink 0.8,
 * ‖·‖^2.4) and keeps the best. Rounding is to nearest, ties to even (as `torch.round`).
 *
 * Unlike the reference, which keeps scales in f32 and casts them to f16 only when a checkpoint is
 * packed, the scale is rounded to f16 here as soon as it is chosen (`scaleDtype: "f16"`, the
 * default): the GPTQ sweep then compensates the error of the values a loader will really
 * reconstruct, and the in-memory model equals its saved checkpoint bit for bit.
 *
 * @module
 */

/** How to quantize. */
export interface QuantSpec {
  /** Bits per weight, 2–8. */
  bits: number;
  /** Symmetric (zero fixed at 2^(bits−1)) or asymmetric (default false, as GPTQ's default). */
  sym?: boolean;
  /** Input columns per group; 0 (default) or −1 for one group per output row. */
  groupSize?: number;
  /** MSE clipping search (default false). */
  mse?: boolean;
  /** Grid steps of the MSE search (default 100). */
  grid?: number;
  /** Smallest range factor tried is 1 − maxShrink (default 0.8). */
  maxShrink?: number;
  /** Error norm of the MSE search (default 2.4). */
  norm?: number;
  /** "f16" (default) rounds each scale to the nearest f16 when chosen; "f64" keeps it. */
  scaleDtype?: "f16" | "f64";
}

/** A {@linkcode QuantSpec} with every default filled in and checked. */
export interface ResolvedSpec {
  /** Bits per weight. */
  bits: number;
  /** Symmetric levels. */
  sym: boolean;
  /** Input columns per group; 0 means one group per row. */
  groupSize: number;
  /** MSE clipping search. */
  mse: boolean;
  /** Its grid steps. */
  grid: number;
  /** Its largest shrink. */
  maxShrink: number;
  /** Its error norm. */
  norm: number;
  /** Scales rounded to f16, or kept in f64. */
  scaleDtype: "f16" | "f64";
  /** 2^bits − 1. */
  maxq: number;
}

/**
 * Fills in and checks a spec; `cols` (when given) is the width the groups must fit.
 *
 * @example
 * ```ts
 * import { resolveSpec } from "./quantizer.ts";
 * const s = resolveSpec({ bits: 4, groupSize: 128 });
 * if (s.maxq !== 15 || s.sym) throw new Error("4-bit asymmetric expected");
 * ```
 */
export function resolveSpec(spec: QuantSpec, cols?: number): ResolvedSpec {
  const { bits } = spec;
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new RangeError(`Cannot quantize to ${bits} bits: expected an integer from 2 to 8`);
  }
  const g = spec.groupSize ?? 0;
  if (!Number.isInteger(g) || g < -1) {
    throw new RangeError(`Group size ${g} is not a positive integer (or 0/−1 for per-row)`);
  }
  const grid = spec.grid ?? 100, maxShrink = spec.maxShrink ?? 0.8, norm = spec.norm ?? 2.4;
  if (!Number.isInteger(grid) || grid < 1) {
    throw new RangeError(`MSE grid ${grid} is not a positive integer`);
  }
  if (!(maxShrink > 0 && maxShrink <= 1)) {
    throw new RangeError(`maxShrink ${maxShrink} is outside (0, 1]`);
  }
  if (!(norm > 0) || !Number.isFinite(norm)) {
    throw new RangeError(`MSE norm ${norm} is not a positive number`);
  }
  const scaleDtype = spec.scaleDtype ?? "f16";
  if (scaleDtype !== "f16" && scaleDtype !== "f64") {
    throw new RangeError(`Scale dtype '${scaleDtype}' is not f16 or f64`);
  }
  return {
    bits,
    sym: spec.sym ?? false,
    groupSize: g <= 0 || (cols !== undefined && g >= cols) ? 0 : g,
    mse: spec.mse ?? false,
    grid,
    maxShrink,
    norm,
    scaleDtype,
    maxq: 2 ** bits - 1,
  };
}

/** Round to nearest, ties to even (torch.round, C's rint). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The f16 value nearest to `x` (ties to even), as an f64; ±65504 is the largest finite one. */
export function roundToF16(x: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  // with 2^(e−1) ≤ |x| < 2^e, f16 keeps 11 significant bits: spacing 2^(e−11), at least 2^−24
  const a = Math.abs(x);
  let e = Math.floor(Math.log2(a)) + 1;
  if (a >= 2 ** e) e++; // log2 may be off by one next to a power of two
  else if (a < 2 ** (e - 1)) e--;
  const q = Math.max(e - 11, -24);
  const r = roundHalfEven(x / 2 ** q) * 2 ** q;
  return Math.abs(r) > 65504 ? Math.sign(r) * Infinity : r;
}

/** The level of `x`: clamp(round(x/scale) + zero, 0, maxq). */
export function quantLevel(x: number, scale: number, zero: number, maxq: number): number {
  const q = roundHalfEven(x / scale) + zero;
  return q < 0 ? 0 : q > maxq ? maxq : q;
}

/**
 * Scale and zero of one row's values `x[from, to)` (IST-DASLab/gptq's `find_params` for one row).
 * Writes them to `out[0]`, `out[1]`.
 */
export function findParams(
  x: ArrayLike<number>,
  from: number,
  to: number,
  spec: ResolvedSpec,
  out: Float64Array,
): void {
  const { maxq, sym } = spec;
  let xmin = 0, xmax = 0;
  for (let j = from; j < to; j++) {
    const v = x[j] as number;
    if (!Number.isFinite(v)) {
      throw new RangeError(`Cannot quantize a weight of ${v} (column ${j}): expected finite`);
    }
    if (v < xmin) xmin = v;
    if (v > xmax) xmax = v;
  }
  if (sym) {
    xmax = Math.max(-xmin, xmax);
    if (xmin < 0) xmin = -xmax;
  }
  if (xmin === 0 && xmax === 0) {
    xmin = -1;
    xmax = 1;
  }
  const pick = (lo: number, hi: number): [number, number] => {
    let s = (hi - lo) / maxq;
    if (spec.scaleDtype === "f16") s = roundToF16(s);
    if (!(s > 0) || !Number.isFinite(s)) {
      throw new RangeError(
        `Cannot quantize weights in [${lo}, ${hi}] to ${spec.bits} bits: the scale ${s} is not a positive ${spec.scaleDtype} number`,
      );
    }
    return [s, sym ? (maxq + 1) / 2 : roundHalfEven(-lo / s)];
  };
  let [scale, zero] = pick(xmin, xmax);
  if (spec.mse) {
    let best = Infinity;
    for (let i = 0; i < Math.floor(spec.maxShrink * spec.grid); i++) {
      const p = 1 - i / spec.grid;
      let s1: number, z1: number;
      try {
        [s1, z1] = pick(p * xmin, p * xmax);
      } catch {
        continue; // a scale that underflows f16 is not a candidate
      }
      let err = 0;
      for (let j = from; j < to; j++) {
        const v = x[j] as number;
        err += Math.abs(s1 * (quantLevel(v, s1, z1, maxq) - z1) - v) ** spec.norm;
      }
      if (err < best) {
        best = err;
        scale = s1;
        zero = z1;
      }
    }
  }
  out[0] = scale;
  out[1] = zero;
}

/** A quantized out × in weight: levels, per-group scales and zeros, and the dequantized values. */
export interface QuantizedWeight {
  /** Output rows. */
  rows: number;
  /** Input columns. */
  cols: number;
  /** The resolved spec. */
  spec: ResolvedSpec;
  /** Levels 0 … 2^bits − 1, rows × cols, row-major, original column order. */
  levels: Uint8Array;
  /** Scales, groups × rows (group-major, as the GPTQ format's `scales`). */
  scales: Float64Array;
  /** Integer zeros, groups × rows. */
  zeros: Float64Array;
  /** Group of each input column (the GPTQ format's `g_idx`). */
  gIdx: Int32Array;
  /** Number of groups. */
  groups: number;
}

/** Ŵ[r, j] = scale[g(j), r]·(q[r, j] − zero[g(j), r]) as f32, rows × cols row-major. */
export function dequantize(q: QuantizedWeight): Float32Array {
  const { rows, cols, levels, scales, zeros, gIdx } = q;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const g = (gIdx[j] as number) * rows + r;
      out[r * cols + j] = (scales[g] as number) *
        ((levels[r * cols + j] as number) - (zeros[g] as number));
    }
  }
  return out;
}
