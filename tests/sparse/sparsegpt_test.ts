import { assert, assertClose, assertEquals, assertRejects, assertThrows } from "@std/assert";
import { pruneModel } from "../../lib/sparse/prune_model.ts";
import { layerLoss, sparseGpt } from "../../lib/sparse/sparsegpt.ts";
import { magnitudePrune, wandaPrune } from "../../lib/sparse/baselines.ts";
import { gramRef } from "../../lib/kernels/gram.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, NATIVE, randn } from "../_util.ts";

/**
 * An independent implementation of the paper's algorithm: the OBS update with the explicit
 * inverse Hessian (Gauss–Jordan, no Cholesky), eliminating one column at a time; masks chosen at
 * the same moments as SparseGPT (block start for unstructured, group start for N:M) from the
 * inverse-Hessian diagonal each column will have when it is reached.
 */
function naive(
  w0: Matrix,
  h0: Matrix<Float64Array>,
  o: { sparsity?: number; nm?: [number, number]; blockSize?: number; rows?: Uint8Array },
): { w: Float64Array; mask: Uint8Array } {
  const rows = w0.rows, n = w0.cols, B = o.blockSize ?? 128;
  const W = Float64Array.from(w0.data), H = Float64Array.from(h0.data);
  for (let j = 0; j < n; j++) {
    if (H[j * n + j] === 0) {
      H[j * n + j] = 1;
      for (let r = 0; r < rows; r++) W[r * n + j] = 0;
    }
  }
  let mean = 0;
  for (let j = 0; j < n; j++) mean += H[j * n + j]! / n;
  for (let j = 0; j < n; j++) H[j * n + j]! += 0.01 * mean;
  // Gauss–Jordan inverse
  const A = Float64Array.from(H), inv = new Float64Array(n * n);
  for (let j = 0; j < n; j++) inv[j * n + j] = 1;
  for (let c = 0; c < n; c++) {
    const piv = A[c * n + c]!;
    for (let j = 0; j < n; j++) {
      A[c * n + j]! /= piv;
      inv[c * n + j]! /= piv;
    }
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r * n + c]!;
      if (f === 0) continue;
      for (let j = 0; j < n; j++) {
        A[r * n + j]! -= f * A[c * n + j]!;
        inv[r * n + j]! -= f * inv[c * n + j]!;
      }
    }
  }
  const eliminate = (M: Float64Array, i: number) => {
    const d = M[i * n + i]!;
    for (let a = i + 1; a < n; a++) {
      const f = M[a * n + i]! / d;
      for (let b = i + 1; b < n; b++) M[a * n + b]! -= f * M[i * n + b]!;
    }
  };
  const diagsFrom = (from: number, to: number) => { // Hinv_i[i,i] for i in [from, to)
    const M = Float64Array.from(inv), out: number[] = [];
    for (let i = from; i < to; i++) {
      out.push(M[i * n + i]!);
      eliminate(M, i);
    }
    return out;
  };
  const mask = new Uint8Array(rows * n), prunable = o.rows ?? new Uint8Array(rows).fill(1);
  for (let b = 0; b < n; b += B) {
    const e = Math.min(b + B, n);
    if (!o.nm) {
      const d = diagsFrom(b, e), tmp: number[] = [];
      for (let r = 0; r < rows; r++) {
        if (prunable[r]) { for (let j = b; j < e; j++) tmp.push(W[r * n + j]! ** 2 / d[j - b]!); }
      }
      const t = tmp.sort((x, y) => x - y)[Math.floor(tmp.length * o.sparsity!)]!;
      for (let r = 0; r < rows; r++) {
        if (prunable[r]) {
          for (let j = b; j < e; j++) {
            if (W[r * n + j]! ** 2 / d[j - b]! <= t) mask[r * n + j] = 1;
          }
        }
      }
    }
    for (let i = b; i < e; i++) {
      if (o.nm && i % o.nm[1] === 0) {
        const [N, M] = o.nm, d = diagsFrom(i, i + M);
        for (let r = 0; r < rows; r++) {
          if (!prunable[r]) continue;
          const k = Array.from({ length: M }, (_, x) => x).sort((x, y) =>
            W[r * n + i + x]! ** 2 / d[x]! - W[r * n + i + y]! ** 2 / d[y]! || x - y
          );
          for (let x = 0; x < N; x++) mask[r * n + i + k[x]!] = 1;
        }
      }
      const d = inv[i * n + i]!;
      for (let r = 0; r < rows; r++) {
        const w = W[r * n + i]!, q = mask[r * n + i] ? 0 : w, err = (w - q) / d;
        W[r * n + i] = q;
        for (let j = i + 1; j < n; j++) W[r * n + j]! -= err * inv[i * n + j]!;
      }
      eliminate(inv, i);
    }
  }
  return { w: W, mask };
}

function layer(rng: Rng, rows: number, cols: number, tokens: number, deadCols = 0) {
  const w = randn(rng, rows, cols), x = randn(rng, tokens, cols);
  for (let t = 0; t < tokens; t++) {
    for (let j = 1; j < cols; j++) x.data[t * cols + j]! += 0.6 * x.data[t * cols + j - 1]!; // correlated inputs
    for (let d = 0; d < deadCols; d++) x.data[t * cols + 5 * d + 2] = 0;
  }
  const h = Matrix.zeros64(cols, cols);
  gramRef(h, x, 2 / tokens, 0);
  return { w, x, h };
}

// every backend this machine has: ts, cpu, and cuda where a GPU is present (the sweep then runs
// on the device: lk_cuda_sparsegpt_f64)
const BACKENDS = ["ts", ...NATIVE.filter((b) => !b.ignore).map((b) => b.backend)] as const;

Deno.test("SparseGPT on every backend (ts, cpu, cuda where present) equals an independent explicit-inverse OBS implementation (weights, masks, layer loss)", () => {
  const seed = freshSeed(), rng = new Rng(seed);
  const cases: {
    rows: number;
    cols: number;
    o: { sparsity?: number; nm?: [number, number]; blockSize?: number };
  }[] = [
    { rows: 7, cols: 300, o: { sparsity: 0.5 } }, // three blocks, the last partial
    { rows: 3, cols: 17, o: { sparsity: 0.9, blockSize: 5 } },
    { rows: 9, cols: 64, o: { nm: [2, 4] } },
    { rows: 5, cols: 136, o: { nm: [4, 8], blockSize: 16 } },
    // blocks that are not a multiple of M (rounded down to one) or smaller than M (raised to M):
    // the N:M result must not depend on the block size
    { rows: 6, cols: 48, o: { nm: [2, 4], blockSize: 6 } },
    { rows: 4, cols: 40, o: { nm: [4, 8], blockSize: 5 } },
  ];
  for (const { rows, cols, o } of cases) {
    const { w, x, h } = layer(rng, rows, cols, 2 * cols + 7, 2);
    const want = naive(w, h, o);
    for (const backend of BACKENDS) {
      const got = sparseGpt(w, h, { ...o, backend });
      const at = `seed ${seed} ${rows}×${cols} ${JSON.stringify(o)} ${backend}`;
      assertEquals(got.mask, want.mask, at);
      assertClose(got.weight.data, Float32Array.from(want.w), { rtol: 1e-6 });
      const lossGot = layerLoss(w, got.weight, x),
        lossWant = layerLoss(w, new Matrix(rows, cols, Float32Array.from(want.w)), x);
      assertClose([lossGot], [lossWant], { rtol: 1e-5 });
    }
  }
});

Deno.test("SparseGPT N:M on every backend (ts, cpu, cuda where present): equal scores in a group prune its lowest-indexed weights", () => {
  // H = I: U is diagonal with equal entries, so every weight of a group scores alike and the error
  // compensation moves nothing; magnitudes differ between groups, signs at random
  const seed = freshSeed(), rng = new Rng(seed), rows = 5, cols = 48;
  const h = Matrix.zeros64(cols, cols);
  for (let j = 0; j < cols; j++) h.set(j, j, 1);
  const w = Matrix.zeros(rows, cols);
  for (let i = 0; i < rows * cols; i++) {
    w.data[i] = (rng.uniform() < 0.5 ? -1 : 1) * (1 + Math.floor(i / 8) % 3);
  }
  for (const [n, m] of [[2, 4], [1, 4], [4, 8]] as const) {
    for (const backend of BACKENDS) {
      const got = sparseGpt(w, h, { nm: [n, m], backend });
      const at = `seed ${seed} ${n}:${m} ${backend}`;
      for (let i = 0; i < rows * cols; i++) {
        const pruned = i % cols % m < n;
        assertEquals(got.mask[i], pruned ? 1 : 0, `${at}: mask at ${i}`);
        assertEquals(got.weight.data[i], pruned ? 0 : w.data[i], `${at}: weight at ${i}`);
      }
    }
  }
});

// the C sweep once cleared the mask with memset(NULL, 0, 0) here (an empty typed array crosses
// the FFI as a null pointer): undefined behaviour that ffi/cpu/sanitize_check.sh's UBSan reports
Deno.test("SparseGPT on every backend: a weight with no rows gives an empty weight and mask", () => {
  const h = Matrix.zeros64(8, 8);
  for (let j = 0; j < 8; j++) h.data[j * 8 + j] = 1;
  for (const backend of BACKENDS) {
    for (const o of [{ sparsity: 0.5 }, { nm: [2, 4] as [number, number] }]) {
      const r = sparseGpt(Matrix.zeros(0, 8), h, { ...o, backend });
      assertEquals([r.weight.rows, r.weight.cols, r.mask.length], [0, 8, 0], backend);
    }
  }
});

Deno.test("SparseGPT: exact sparsity, N:M groups, dense rows kept, and a lower loss than magnitude", () => {
  const rng = new Rng(freshSeed());
  const { w, x, h } = layer(rng, 16, 256, 600);
  const s = sparseGpt(w, h, { sparsity: 0.5, backend: "cpu" });
  // as upstream: `tmp <= sorted[floor(n·s)]` prunes floor(n·s) + 1 weights in each 128-column block
  assertEquals(s.mask.reduce((a, b) => a + b, 0), 2 * (16 * 128 / 2 + 1));
  for (let i = 0; i < s.mask.length; i++) if (s.mask[i]) assertEquals(s.weight.data[i], 0);
  const nm = sparseGpt(w, h, { nm: [2, 4] });
  for (let r = 0; r < 16; r++) {
    for (let g = 0; g < 256; g += 4) {
      assertEquals(nm.mask.slice(r * 256 + g, r * 256 + g + 4).reduce((a, b) => a + b, 0), 2);
    }
  }
  const rowsMask = new Uint8Array(16).fill(1);
  rowsMask[3] = 0;
  const kept = sparseGpt(w, h, { sparsity: 0.7, prunableRows: rowsMask });
  assertEquals(Array.from(kept.weight.row(3)), Array.from(w.row(3)));
  const mag = magnitudePrune(w, { sparsity: 0.5 });
  assert(
    layerLoss(w, s.weight, x) < layerLoss(w, mag.weight, x),
    "SparseGPT should beat magnitude on its own calibration data",
  );
});

Deno.test("magnitude and Wanda pick the expected weights", () => {
  const w = Matrix.from([[1, -4, 2, 3], [5, 0.1, -0.2, 6]]);
  assertEquals(Array.from(magnitudePrune(w, { sparsity: 0.5 }).mask), [1, 0, 1, 0, 0, 1, 1, 0]);
  assertEquals(Array.from(magnitudePrune(w, { nm: [2, 4] }).mask), [1, 0, 1, 0, 0, 1, 1, 0]);
  // Wanda weighs by input norms: a large norm on column 0 protects it
  assertEquals(Array.from(wandaPrune(w, [10, 1, 1, 1], { sparsity: 0.5 }).mask), [
    0,
    0,
    1,
    1,
    0,
    1,
    1,
    0,
  ]);
});

Deno.test("pruners reject bad patterns, shapes and names with clear errors", async () => {
  const w = Matrix.zeros(2, 6), h = Matrix.zeros64(6, 6);
  for (const s of [0, 1, -0.1, 1.5, NaN]) {
    assertThrows(() => magnitudePrune(w, { sparsity: s }), RangeError, "outside (0, 1)");
  }
  assertThrows(
    () => sparseGpt(w, h, { nm: [2, 4] }),
    ShapeError,
    "needs M to divide the 6 columns",
  );
  assertThrows(() => wandaPrune(w, [1, 2], { sparsity: 0.5 }), ShapeError, "needs 6 input norms");
  assertThrows(
    () => sparseGpt(w, Matrix.zeros64(5, 5), { sparsity: 0.5 }),
    ShapeError,
    "needs a 6×6 Hessian",
  );
  assertThrows(() => magnitudePrune(w, { nm: [4, 4] }), RangeError, "1 ≤ N < M");
  // a projection that does not exist, and an unknown method, before any work is done
  const model = { backend: "ts" } as unknown as Parameters<typeof pruneModel>[0];
  await assertRejects(
    () =>
      pruneModel(model, [], {
        method: "sparsegpt",
        sparsity: 0.5,
        names: ["gate_prj" as "gate_proj"],
      }),
    RangeError,
    "Unknown projection 'gate_prj': expected one of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
  );
  await assertRejects(
    () => pruneModel(model, [], { method: "obs" as "sparsegpt", sparsity: 0.5 }),
    RangeError,
    "Unknown pruning method 'obs'",
  );
  // a pattern that does not fit a projection: refused before the calibration pass starts (the
  // model here has no blocks to run, only shapes)
  const shaped = {
    backend: "ts",
    blocks: [{ linears: { up_proj: { outFeatures: 768, inFeatures: 256 } } }],
  } as unknown as Parameters<typeof pruneModel>[0];
  await assertRejects(
    () => pruneModel(shaped, [[1, 2]], { method: "sparsegpt", nm: [1, 3], names: ["up_proj"] }),
    ShapeError,
    "Block 0 up_proj: N:M pattern 1:3 needs M to divide the 256 columns",
  );
  assertThrows(
    () => magnitudePrune(w, { sparsity: 0.5, prunableRows: new Uint8Array(3) }),
    ShapeError,
  );
});

Deno.test("pruners refuse a non-finite weight, naming it (magnitude pruning kept a NaN)", () => {
  const w = Matrix.from([[1, -2, 3, 0.5], [0.1, NaN, 2, 4]]);
  const h = new Matrix(4, 4, Float64Array.from({ length: 16 }, (_, i) => (i % 5 === 0 ? 1 : 0)));
  assertThrows(() => magnitudePrune(w, { sparsity: 0.5 }), RangeError, "Weight [1, 1] is NaN");
  assertThrows(() => magnitudePrune(w, { nm: [2, 4] }), RangeError, "Weight [1, 1] is NaN");
  assertThrows(() => wandaPrune(w, [1, 1, 1, 1], { sparsity: 0.5 }), RangeError, "[1, 1] is NaN");
  assertThrows(
    () => sparseGpt(w, h, { sparsity: 0.5, backend: "ts" }),
    RangeError,
    "[1, 1] is NaN",
  );
  const ok = Matrix.from([[1, -2, 3, 0.5]]);
  assertThrows(
    () => wandaPrune(ok, [1, Infinity, 1, 1], { sparsity: 0.5 }),
    RangeError,
    "Input norm [1] is Infinity",
  );
});
