// GPTQ against an independent explicit-inverse implementation (tests/quant/_reference.ts) on
// fresh random layers of awkward sizes, for every option combination, on ts and cpu; GPTQ's loss
// below RTN's; joint 2:4 + 4-bit; bad input refused.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { gptq, type GptqOptions, rtn } from "../../lib/quant/gptq.ts";
import { dequantize, roundHalfEven, roundToF16 } from "../../lib/quant/quantizer.ts";
import { f16ToF32, f32ToF16 } from "../../lib/io/safetensors.ts";
import { layerLoss, sparseGpt } from "../../lib/sparse/sparsegpt.ts";
import { freshSeed, randn, relL2 } from "../_util.ts";
import { check, cpu, Status } from "../../ffi/mod.ts";
import { gptqExplicit } from "./_reference.ts";

const seed = freshSeed();
console.log(`gptq_test seed ${seed} (LMKIT_SEED=${seed} replays it)`);

/** A layer, calibration tokens with a few strong channels (as real activations), and H = 2XᵀX/N. */
function layer(rng: Rng, rows: number, cols: number, tokens = 2 * cols + 8) {
  const w = randn(rng, rows, cols);
  const x = randn(rng, tokens, cols);
  for (let j = 0; j < cols; j += 5) for (let t = 0; t < tokens; t++) x.data[t * cols + j]! *= 4;
  const h = Matrix.zeros64(cols, cols);
  for (let t = 0; t < tokens; t++) {
    for (let a = 0; a < cols; a++) {
      const xa = x.data[t * cols + a]!;
      for (let b = 0; b < cols; b++) {
        h.data[a * cols + b]! += (2 / tokens) * xa * x.data[t * cols + b]!;
      }
    }
  }
  return { w, x, h };
}

Deno.test("rounding helpers: ties to even, f16 as the f16 conversion", () => {
  assertEquals([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999].map(roundHalfEven), [0, 2, 2, -0, -2, 2]);
  const rng = new Rng(seed);
  for (let i = 0; i < 2000; i++) {
    const x = Math.exp(rng.normal() * 6) * (rng.uniform() < 0.5 ? -1 : 1);
    const f = Math.fround(x); // f32 → f16 rounds exactly once from an f32 input
    assertEquals(roundToF16(f), f16ToF32(f32ToF16(f)), `x = ${f}`);
  }
  assertEquals(roundToF16(1e6), Infinity);
});

const COMBOS: Omit<GptqOptions, "backend">[] = [];
for (const bits of [2, 3, 4, 8]) {
  for (const sym of [false, true]) {
    for (const groupSize of [0, 8, 5]) {
      for (const actOrder of [false, true]) {
        for (const staticGroups of [false, true]) {
          if (staticGroups && groupSize === 0) continue;
          for (const mse of [false, true]) {
            COMBOS.push({ bits, sym, groupSize, actOrder, staticGroups, mse });
          }
        }
      }
    }
  }
}

for (const backend of ["ts", "cpu"] as const) {
  Deno.test(`gptq (${backend}) equals the explicit-inverse reference for every option combination`, () => {
    const rng = new Rng(seed + (backend === "ts" ? 1 : 2));
    const shapes: [number, number][] = [[3, 17], [1, 37], [17, 29], [5, 3]];
    let worst = 0, n = 0;
    for (const [ci, o] of COMBOS.entries()) {
      const [rows, cols] = shapes[ci % shapes.length]!;
      const { w, h, x } = layer(rng, rows, cols);
      if (ci % 7 === 0 && cols > 2) {
        // a dead input now and then: a channel that is always 0
        for (let j = 0; j < cols; j++) h.data[2 * cols + j] = h.data[j * cols + 2] = 0;
      }
      const block = ci % 3 === 0 ? 4 : 128;
      const got = gptq(w, h, { ...o, blockSize: block, backend });
      const ref = gptqExplicit(w, h, {
        bits: o.bits,
        sym: !!o.sym,
        groupSize: o.groupSize!,
        actOrder: !!o.actOrder,
        staticGroups: !!o.staticGroups,
        mse: !!o.mse,
        block,
        percdamp: 0.01,
      });
      const e = relL2(got.weight.data, ref.w);
      worst = Math.max(worst, e);
      assert(e < 1e-6, `${JSON.stringify(o)} block ${block} ${rows}×${cols}: Ŵ rel. error ${e}`);
      assertEquals(Array.from(got.quantized.gIdx), ref.gIdx, JSON.stringify(o));
      const refW = new Matrix(rows, cols, Float32Array.from(ref.w));
      const l1 = layerLoss(w, got.weight, x), l2 = layerLoss(w, refW, x);
      assert(Math.abs(l1 - l2) <= 1e-6 * l2, `loss ${l1} vs ${l2}`);
      // the levels, scales and zeros reproduce Ŵ exactly
      assertEquals(Array.from(dequantize(got.quantized)), Array.from(got.weight.data));
      n++;
    }
    console.log(`  ${n} combinations, worst Ŵ relative error ${worst.toExponential(2)}`);
  });
}

Deno.test("gptq on cpu equals ts level for level on a wider layer (several blocks)", () => {
  const rng = new Rng(seed + 3);
  const { w, h } = layer(rng, 23, 301, 700);
  for (const o of [{ bits: 4, groupSize: 32, actOrder: true }, { bits: 3, sym: true, mse: true }]) {
    const a = gptq(w, h, { ...o, backend: "ts" }), b = gptq(w, h, { ...o, backend: "cpu" });
    const diff = a.quantized.levels.reduce(
      (s, v, i) => s + (v !== b.quantized.levels[i] ? 1 : 0),
      0,
    );
    assert(diff <= 2, `${diff} levels differ`); // f64 FMA ordering may flip a tie, rarely
    assert(relL2(b.weight.data, a.weight.data) < 1e-6);
  }
});

Deno.test("gptq's layer loss is below round-to-nearest's", () => {
  const rng = new Rng(seed + 4);
  for (const o of [{ bits: 4 }, { bits: 3, groupSize: 16 }, { bits: 2, groupSize: 8, sym: true }]) {
    const { w, x, h } = layer(rng, 32, 96, 400);
    const lg = layerLoss(w, gptq(w, h, { ...o, backend: "cpu" }).weight, x);
    const lr = layerLoss(w, rtn(w, o).weight, x);
    assert(lg < lr, `${JSON.stringify(o)}: gptq ${lg} ≥ rtn ${lr}`);
    console.log(`  ${JSON.stringify(o)}: loss gptq/rtn = ${(lg / lr).toFixed(3)}`);
  }
});

Deno.test("joint 2:4 + 4-bit: SparseGPT's mask, then GPTQ, equals the reference with that mask", () => {
  const rng = new Rng(seed + 5);
  const { w, h, x } = layer(rng, 9, 40);
  const { mask } = sparseGpt(w, h, { nm: [2, 4], backend: "cpu" });
  for (const backend of ["ts", "cpu"] as const) {
    const got = gptq(w, h, { bits: 4, groupSize: 8, mask, backend });
    for (let i = 0; i < mask.length; i++) if (mask[i]) assertEquals(got.weight.data[i], 0);
    const ref = gptqExplicit(w, h, {
      bits: 4,
      sym: false,
      groupSize: 8,
      actOrder: false,
      staticGroups: false,
      mse: false,
      block: 128,
      percdamp: 0.01,
      mask,
    });
    assert(relL2(got.weight.data, ref.w) < 1e-6);
    assert(layerLoss(w, got.weight, x) > 0);
  }
});

Deno.test("gptq and rtn refuse bad input with one clear sentence", () => {
  const w = Matrix.from([[1, 2, 3]]);
  const h = new Matrix(3, 3, Float64Array.from([1, 0, 0, 0, 1, 0, 0, 0, 1]));
  assertThrows(() => gptq(w, h, { bits: 1 }), RangeError, "expected an integer from 2 to 8");
  assertThrows(() => gptq(w, h, { bits: 9 }), RangeError, "2 to 8");
  assertThrows(() => gptq(w, h, { bits: 4, groupSize: 2.5 }), RangeError, "Group size 2.5");
  assertThrows(() => gptq(w, Matrix.zeros64(2, 2), { bits: 4 }), Error, "needs a 3×3 Hessian");
  assertThrows(() => gptq(w, h, { bits: 4, blockSize: 0 }), RangeError, "Block size 0");
  assertThrows(() => gptq(w, h, { bits: 4, mask: new Uint8Array(2) }), Error, "mask of 2 entries");
  const bad = Matrix.from([[1, NaN, 3]]);
  assertThrows(() => gptq(bad, h, { bits: 4 }), RangeError, "Weight [0, 1] is NaN");
  assertThrows(() => rtn(bad, { bits: 4 }), RangeError, "NaN");
  assertThrows(() => rtn(w, { bits: 4, mse: true, maxShrink: 0 }), RangeError, "maxShrink 0");
});

Deno.test("lk_cpu_gptq_f64 refuses bad shapes and options with a status, touching nothing", () => {
  const lib = cpu();
  const rows = 2, cols = 4;
  const call = (o: { iopt?: number[]; w?: number; u?: number; groups?: number; cg?: number[] }) => {
    const w = new Float64Array(o.w ?? rows * cols).fill(0.5);
    const u = new Float64Array(o.u ?? cols * cols);
    for (let j = 0; j < cols; j++) u[j * cols + j] = 1;
    const iopt = Int32Array.from(o.iopt ?? [4, 0, 0, 0, 100, 1, 0, 128]);
    const g = o.groups ?? 1;
    const status = lib.lk_cpu_gptq_f64(
      w,
      w.length,
      u,
      u.length,
      rows,
      cols,
      iopt,
      iopt.length,
      Float64Array.from([0.8, 2.4]),
      2,
      Int32Array.from(o.cg ?? [0, 0, 0, 0]),
      cols,
      new Float64Array(g * rows),
      g * rows,
      new Float64Array(g * rows),
      g * rows,
      new Uint8Array(0),
      0,
      new Uint8Array(rows * cols),
      rows * cols,
    );
    return { status, w };
  };
  assertEquals(call({}).status, Status.OK);
  for (
    const bad of [
      { w: 7 },
      { u: 15 },
      { iopt: [9, 0, 0, 0, 100, 1, 0, 128] },
      {
        iopt: [4, 0, 0, 0, 100, 1, 0, 0],
      },
      { cg: [0, 0, 1, 0] },
      { iopt: [4, 0, 2, 0, 100, 1, 0, 128], groups: 1 },
    ]
  ) {
    const r = call(bad);
    assert(r.status !== Status.OK, JSON.stringify(bad));
    assert(r.w.every((v) => v === 0.5), "the weight was touched");
    assertThrows(() => check(lib, r.status), Error, "lk_cpu_gptq_f64");
  }
});
