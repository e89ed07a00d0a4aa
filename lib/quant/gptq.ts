/**
 * GPTQ (Frantar et al. 2023) as IST-DASLab/gptq's `fasterquant` runs it, on the OBS preparation
 * that SparseGPT uses (U = upper Cholesky factor of (H + λI)⁻¹, λ = 1 % of mean diag H, ten times
 * more per retry): columns in lazy blocks of 128, each column quantized and its error
 * (w − q)/U_cc spread over the columns after it.
 *
 * - Groups (`groupSize` g): a group's scale and zero are found when the sweep reaches its first
 *   column, from the weights as they stood at the start of the current block (the reference reads
 *   `W`, not the block's running copy `W1`; identical when g is a multiple of the block).
 * - Act-order (`actOrder`): columns swept by descending diag H (ties by index); the result is
 *   put back in the original order and `gIdx[j]` = (position of column j in the sweep) / g.
 * - Static groups (`staticGroups`): every group's parameters come from the unquantized weight by
 *   original column, before the sweep, so that with act-order `gIdx[j]` = j / g and inference
 *   needs no reordering.
 * - A mask (`mask`, 1 = pruned; e.g. SparseGPT's 2:4 mask) keeps those weights at 0 (level =
 *   zero point) and compensates their error like any other: joint sparsity and quantization.
 *
 * @module
 */
import { check, cpu, cpuLibrary } from "../../ffi/mod.ts";
import { ShapeError } from "../core/errors.ts";
import { Matrix } from "../core/matrix.ts";
import { type KernelOptions, obsPrepare, selectBackend } from "../kernels/mod.ts";
import {
  findParams,
  type QuantizedWeight,
  quantLevel,
  type QuantSpec,
  type ResolvedSpec,
  resolveSpec,
} from "./quantizer.ts";

/** Options of {@linkcode gptq}. */
export interface GptqOptions extends QuantSpec, KernelOptions {
  /** Sweep columns by descending diag H (default false). */
  actOrder?: boolean;
  /** Group parameters from the unquantized weight (default false). */
  staticGroups?: boolean;
  /** Lazy-update block width (default 128). */
  blockSize?: number;
  /** Relative damping of H (default 0.01), ten times more per retry (6 tries). */
  percdamp?: number;
  /** rows × cols, 1 where a weight is pruned (kept at zero). */
  mask?: Uint8Array;
  /** An explicit sweep order (a permutation of the columns; replaces `actOrder`). */
  order?: Int32Array;
  /**
   * The last `keep` columns of the sweep are left unquantized (QUIK's outlier columns): they only
   * receive the error updates of the columns before them. Their levels are reported as 0.
   */
  keep?: number;
  /**
   * Given per-row parameters (one group: `scales[r]`, `zeros[r]`), used as static groups are.
   */
  params?: { scales: Float64Array; zeros: Float64Array };
}

/** Result of {@linkcode gptq} and {@linkcode rtn}. */
export interface QuantResult {
  /** The dequantized weight Ŵ (rows × cols, f32). */
  weight: Matrix;
  /** Levels, scales, zeros and group index, for packing. */
  quantized: QuantizedWeight;
  /** The damping that succeeded (GPTQ only). */
  percdamp?: number;
}

/**
 * Quantizes `weight` (out × in) given the layer Hessian `hessian` (in × in, e.g. from
 * `HessianAccumulator`). The input is not modified. The sweep runs in C on the cpu and cuda
 * backends (cuda prepares U on the CPU too for now), in TypeScript on ts.
 *
 * @example
 * ```ts
 * import { gptq } from "./gptq.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const w = Matrix.from([[0.3, -1.2, 0.7, 0.05]]);
 * const h = new Matrix(4, 4, Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0.1)));
 * const { weight, quantized } = gptq(w, h, { bits: 4, backend: "ts" });
 * if (quantized.levels.some((q) => q > 15) || weight.cols !== 4) throw new Error("not 4-bit");
 * ```
 */
export function gptq(
  weight: Matrix,
  hessian: Matrix<Float64Array>,
  options: GptqOptions,
): QuantResult {
  const rows = weight.rows, cols = weight.cols;
  if (hessian.rows !== cols || hessian.cols !== cols) {
    throw new ShapeError(
      `A ${rows}×${cols} weight needs a ${cols}×${cols} Hessian, got ${hessian.rows}×${hessian.cols}`,
    );
  }
  const spec = resolveSpec(options, cols);
  const B = options.blockSize ?? 128;
  if (!Number.isInteger(B) || B < 1) {
    throw new RangeError(`Block size ${B} is not a positive integer`);
  }
  if (options.mask && options.mask.length !== rows * cols) {
    throw new ShapeError(
      `A mask of ${options.mask.length} entries does not fit a ${rows}×${cols} weight`,
    );
  }
  for (let i = 0; i < weight.data.length; i++) {
    if (!Number.isFinite(weight.data[i])) {
      throw new RangeError(
        `Weight [${Math.floor(i / cols)}, ${i % cols}] is ${weight.data[i]}: expected finite`,
      );
    }
  }
  // dead inputs: weights zeroed (H's diagonal is set to 1 by the OBS preparation)
  const W0 = Float64Array.from(weight.data);
  for (let j = 0; j < cols; j++) {
    if (hessian.data[j * cols + j] !== 0) continue;
    for (let r = 0; r < rows; r++) W0[r * cols + j] = 0;
  }
  const keep = options.keep ?? 0;
  if (!Number.isInteger(keep) || keep < 0 || keep > cols) {
    throw new RangeError(`Cannot keep ${keep} of ${cols} columns unquantized`);
  }
  if (options.params && spec.groupSize !== 0) {
    throw new RangeError("Given parameters are per row: the spec must have no groups");
  }
  const g = spec.groupSize, groups = g > 0 ? Math.ceil(cols / g) : 1;
  const perm = Int32Array.from({ length: cols }, (_, j) => j);
  if (options.order) {
    const o = options.order, seen = new Uint8Array(cols);
    if (o.length !== cols || o.some((j) => !(j >= 0 && j < cols) || seen[j]!++)) {
      throw new RangeError(`The sweep order is not a permutation of the ${cols} columns`);
    }
    perm.set(o);
  } else if (options.actOrder) {
    // by the diagonal after the dead inputs' 0 became 1, as the reference sorts
    const d = (j: number) => (hessian.data[j * cols + j] as number) || 1;
    perm.sort((a, b) => d(b) - d(a) || a - b);
  }
  const scales = new Float64Array(groups * rows), zeros = new Float64Array(groups * rows);
  const staticGroups = !!options.staticGroups || !!options.params;
  if (options.params) {
    const { scales: s, zeros: z } = options.params;
    if (s.length !== rows || z.length !== rows) {
      throw new RangeError(
        `Given parameters hold ${s.length} scales and ${z.length} zeros for ${rows} rows`,
      );
    }
    for (let r = 0; r < rows; r++) {
      const zr = z[r] as number;
      if (
        !(s[r]! > 0 && Number.isFinite(s[r])) || !Number.isInteger(zr) || zr < 0 || zr > spec.maxq
      ) {
        throw new RangeError(`Row ${r}'s given scale ${s[r]} or zero ${zr} is invalid`);
      }
    }
    scales.set(s);
    zeros.set(z);
  }
  const colGroup = new Int32Array(cols), gIdx = new Int32Array(cols);
  for (let c = 0; c < cols; c++) {
    const j = perm[c] as number;
    colGroup[c] = g === 0 ? 0 : options.staticGroups ? Math.floor(j / g) : Math.floor(c / g);
    gIdx[j] = colGroup[c] as number;
  }
  if (options.staticGroups && !options.params) {
    const out = new Float64Array(2), row = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        row[j] = options.mask?.[r * cols + j] ? 0 : W0[r * cols + j] as number;
      }
      for (let k = 0; k < groups; k++) {
        findParams(
          row,
          g === 0 ? 0 : k * g,
          g === 0 ? cols : Math.min(cols, (k + 1) * g),
          spec,
          out,
        );
        scales[k * rows + r] = out[0] as number;
        zeros[k * rows + r] = out[1] as number;
      }
    }
  }
  // permute W, H and the mask into sweep order
  const W = new Float64Array(rows * cols), H = new Float64Array(cols * cols);
  const mask = options.mask ? new Uint8Array(rows * cols) : undefined;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      W[r * cols + c] = W0[r * cols + (perm[c] as number)] as number;
      if (mask) mask[r * cols + c] = options.mask![r * cols + (perm[c] as number)] as number;
    }
  }
  for (let a = 0; a < cols; a++) {
    for (let b = 0; b < cols; b++) {
      H[a * cols + b] = hessian.data[(perm[a] as number) * cols + (perm[b] as number)] as number;
    }
  }
  const backend = selectBackend(options.backend);
  const prep = obsPrepare(new Matrix(cols, cols, H), {
    percdamp: options.percdamp ?? 0.01,
    maxTries: 6,
    backend: backend === "ts" ? "ts" : "cpu",
  });
  const U = prep.u.data;
  const levelsP = new Uint8Array(rows * cols);
  const sweep = {
    W,
    U,
    rows,
    cols,
    spec,
    colGroup,
    scales,
    zeros,
    staticGroups,
    mask,
    qcols: cols - keep,
    block: B,
    levels: levelsP,
  };
  if (backend !== "ts" && cpuLibrary().lib) gptqSweepC(sweep);
  else gptqSweepRef(sweep);
  // back to the original column order
  const out = new Float32Array(rows * cols), levels = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const j = r * cols + (perm[c] as number);
      out[j] = W[r * cols + c] as number;
      levels[j] = levelsP[r * cols + c] as number;
    }
  }
  return {
    weight: new Matrix(rows, cols, out),
    quantized: { rows, cols, spec, levels, scales, zeros, gIdx, groups },
    percdamp: prep.percdamp,
  };
}

/** Everything the column sweep reads and writes (sweep order). */
interface Sweep {
  /** rows × cols, in place: becomes the dequantized weight. */
  W: Float64Array;
  /** Upper Cholesky factor of H⁻¹, cols × cols. */
  U: Float64Array;
  rows: number;
  cols: number;
  spec: ResolvedSpec;
  /** Parameter set of each column. */
  colGroup: Int32Array;
  /** groups × rows; inputs with static groups, else outputs. */
  scales: Float64Array;
  zeros: Float64Array;
  staticGroups: boolean;
  mask: Uint8Array | undefined;
  block: number;
  /** Columns from here on are kept unquantized. */
  qcols: number;
  /** rows × cols out. */
  levels: Uint8Array;
}

/** The TypeScript sweep (the reference of the C one). */
function gptqSweepRef(s: Sweep): void {
  const { W, U, rows, cols, spec, colGroup, scales, zeros, mask, block: B, levels, qcols } = s;
  const g = spec.groupSize;
  const err = new Float64Array(rows * B), snap = new Float64Array(cols), out = new Float64Array(2);
  for (let i1 = 0; i1 < qcols; i1 += B) {
    const i2 = Math.min(i1 + B, cols), count = i2 - i1;
    for (let r = 0; r < rows; r++) {
      const wr = r * cols;
      // the row as it stands at the block start (pruned weights as 0), for new groups' parameters
      // (only the columns that groups starting in this block read; per row: all, in block 0)
      const hi = s.staticGroups ? i1 : g > 0 ? Math.min(cols, i2 + g) : i1 === 0 ? cols : i1;
      for (let j = i1; j < hi; j++) snap[j] = mask?.[wr + j] ? 0 : W[wr + j] as number;
      for (let i = 0; i < count; i++) {
        const c = i1 + i, k = colGroup[c] as number;
        if (c >= qcols) { // kept: no level, no error of its own
          err[r * B + i] = 0;
          continue;
        }
        if (!s.staticGroups && (g === 0 ? c === 0 : c % g === 0)) {
          findParams(snap, c, g === 0 ? cols : Math.min(cols, c + g), spec, out);
          scales[k * rows + r] = out[0] as number;
          zeros[k * rows + r] = out[1] as number;
        }
        const sc = scales[k * rows + r] as number, z = zeros[k * rows + r] as number;
        const w = W[wr + c] as number;
        const lv = mask?.[wr + c] ? z : quantLevel(w, sc, z, spec.maxq);
        const q = sc * (lv - z), d = U[c * cols + c] as number, e = (w - q) / d;
        levels[wr + c] = lv;
        W[wr + c] = q;
        err[r * B + i] = e;
        if (e !== 0) {
          for (let j = c + 1; j < i2; j++) W[wr + j]! -= e * (U[c * cols + j] as number);
        }
      }
      // W[r, i2:] -= Err[r] · U[i1:i2, i2:]
      for (let i = 0; i < count; i++) {
        const e = err[r * B + i] as number;
        if (e === 0) continue;
        const urow = (i1 + i) * cols;
        for (let j = i2; j < cols; j++) W[wr + j]! -= e * (U[urow + j] as number);
      }
    }
  }
}

function gptqSweepC(s: Sweep): void {
  const { spec } = s;
  const iopt = Int32Array.from([
    spec.bits,
    spec.sym ? 1 : 0,
    spec.groupSize,
    spec.mse ? 1 : 0,
    spec.grid,
    spec.scaleDtype === "f16" ? 1 : 0,
    s.staticGroups ? 1 : 0,
    s.block,
    s.qcols,
  ]);
  const dopt = Float64Array.from([spec.maxShrink, spec.norm]);
  const mask = s.mask ?? new Uint8Array(0);
  const lib = cpu();
  check(
    lib,
    lib.lk_cpu_gptq_f64(
      s.W,
      s.W.length,
      s.U,
      s.U.length,
      s.rows,
      s.cols,
      iopt,
      iopt.length,
      dopt,
      dopt.length,
      s.colGroup,
      s.colGroup.length,
      s.scales,
      s.scales.length,
      s.zeros,
      s.zeros.length,
      mask,
      mask.length,
      s.levels,
      s.levels.length,
    ),
  );
}

/**
 * Round-to-nearest: every group's parameters from the weight itself, no error compensation (the
 * baseline GPTQ is measured against).
 *
 * @example
 * ```ts
 * import { rtn } from "./gptq.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const { weight } = rtn(Matrix.from([[1, -1, 0.5, 0]]), { bits: 8, sym: true });
 * if (Math.abs(weight.get(0, 2) - 0.5) > 0.01) throw new Error("8-bit RTN should be close");
 * ```
 */
export function rtn(weight: Matrix, spec: QuantSpec): QuantResult {
  const rows = weight.rows, cols = weight.cols, s = resolveSpec(spec, cols);
  const g = s.groupSize, groups = g > 0 ? Math.ceil(cols / g) : 1;
  const scales = new Float64Array(groups * rows), zeros = new Float64Array(groups * rows);
  const levels = new Uint8Array(rows * cols), out = new Float32Array(rows * cols);
  const gIdx = Int32Array.from({ length: cols }, (_, j) => (g > 0 ? Math.floor(j / g) : 0));
  const p = new Float64Array(2);
  for (let r = 0; r < rows; r++) {
    const row = weight.data.subarray(r * cols, (r + 1) * cols);
    for (let k = 0; k < groups; k++) {
      const from = g > 0 ? k * g : 0, to = g > 0 ? Math.min(cols, from + g) : cols;
      findParams(row, from, to, s, p);
      const sc = p[0] as number, z = p[1] as number;
      scales[k * rows + r] = sc;
      zeros[k * rows + r] = z;
      for (let j = from; j < to; j++) {
        const lv = quantLevel(row[j] as number, sc, z, s.maxq);
        levels[r * cols + j] = lv;
        out[r * cols + j] = sc * (lv - z);
      }
    }
  }
  return {
    weight: new Matrix(rows, cols, out),
    quantized: { rows, cols, spec: s, levels, scales, zeros, gIdx, groups },
  };
}

/**
 * ½·Σ_r Δ_r H Δ_rᵀ with Δ = W − Ŵ: the mean squared output error per token of a quantized
 * (or pruned) weight when H = 2XᵀX/N is the layer's Hessian.
 *
 * @example
 * ```ts
 * import { outputError } from "./gptq.ts";
 * import { Matrix } from "../core/matrix.ts";
 * const h = new Matrix(2, 2, Float64Array.of(2, 0, 0, 2)); // 2XᵀX/N for X = I₂, N = 2
 * const e = outputError(Matrix.from([[1, 2]]), Matrix.from([[1, 1.5]]), h);
 * if (e !== 0.25) throw new Error(`got ${e}`); // ½·2·0.5²
 * ```
 */
export function outputError(
  weight: Matrix,
  quantized: Matrix,
  hessian: Matrix<Float64Array>,
): number {
  const n = weight.cols, d = new Float64Array(n);
  let total = 0;
  for (let r = 0; r < weight.rows; r++) {
    for (let j = 0; j < n; j++) {
      d[j] = (weight.data[r * n + j] as number) - (quantized.data[r * n + j] as number);
    }
    for (let a = 0; a < n; a++) {
      if (d[a] === 0) continue;
      let s = 0;
      for (let b = 0; b < n; b++) s += (hessian.data[a * n + b] as number) * (d[b] as number);
      total += (d[a] as number) * s;
    }
  }
  return total / 2;
}
