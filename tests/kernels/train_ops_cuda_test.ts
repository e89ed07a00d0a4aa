// The training kernels of the CUDA library (ffi/cuda/train.cu) against their ts references, on
// fresh random inputs of awkward shapes, and their refusals of bad shapes, handles, dtypes and
// lengths. Kernel tests are ignored without a cuda backend (run them on the CUDA emulator with
// LMKIT_CUDA_EMU=1); the argument checks run wherever the library is built.
import { assertEquals, assertThrows } from "@std/assert";
import { assertClose } from "@std/assert";
import { check, cudaLibraryWithoutDevice, DeviceBuffer } from "../../ffi/mod.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { gemm, gemmRef } from "../../lib/kernels/gemm.ts";
import { rmsNormBackward, rmsNormForward } from "../../lib/kernels/rmsnorm.ts";
import { applyRope } from "../../lib/kernels/rope.ts";
import { attentionBackward } from "../../lib/kernels/attention.ts";
import { swigluBackward } from "../../lib/kernels/activation.ts";
import { embeddingBackward } from "../../lib/kernels/embedding.ts";
import { crossEntropy, IGNORE_TARGET } from "../../lib/kernels/cross_entropy.ts";
import { type AdamWStep, adamwStep } from "../../lib/kernels/adamw.ts";
import { AWKWARD, freshSeed, NATIVE, randn } from "../_util.ts";

const ignore = NATIVE.find((n) => n.backend === "cuda")!.ignore;
const cuda = { backend: "cuda" } as const, ts = { backend: "ts" } as const;

function copy(m: Matrix): Matrix {
  return new Matrix(m.rows, m.cols, m.data.slice());
}

/**
 * Asserts ‖got − want‖₂ ≤ tol·‖mag‖₂, where `mag` holds the sizes of the terms each element is
 * summed from (|A|·|B| for a product): f32 sums that cancel are accurate only to their terms.
 */
function closeTo(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  mag: ArrayLike<number>,
  tol: number,
  msg: string,
): void {
  let norm = 0;
  for (let i = 0; i < mag.length; i++) norm += mag[i]! ** 2;
  const n = Math.max(1, got.length);
  assertClose(got, want, { rtol: 0, atol: (tol * Math.sqrt(norm)) / Math.sqrt(n), msg });
}

const abs = (a: Float32Array): Float32Array => a.map(Math.abs);

/** dgate = dy·up·s·(1 + g·(1 − s)) cancels near g ≈ −1.28: the sizes of its terms. */
function swigluMag(gate: Matrix, up: Matrix, dout: Matrix): Float32Array {
  return gate.data.map((g, i) => {
    const s = 1 / (1 + Math.exp(-g));
    return Math.abs(dout.data[i]! * up.data[i]! * s) * (1 + Math.abs(g) * (1 - s));
  });
}

/** Runs `fn` and checks that no device buffer outlived it. */
function noLeak(fn: () => void): void {
  const live = DeviceBuffer.live;
  fn();
  assertEquals(DeviceBuffer.live, live, "device buffers leaked");
}

Deno.test({
  name: "gemm cuda matches ts in all four transpose combinations, overwriting and accumulating",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const shapes = [[1, 1, 1], [3, 17, 1], [17, 3, 129], [129, 33, 17], [5, 0, 4], [1, 130, 3]];
    noLeak(() => {
      for (const [m, k, n] of shapes as [number, number, number][]) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const a = transA ? randn(rng, k, m) : randn(rng, m, k);
            const b = transB ? randn(rng, n, k) : randn(rng, k, n);
            const at = `seed ${seed} m=${m} k=${k} n=${n} tA=${transA} tB=${transB}`;
            const want = Matrix.zeros(m, n), mag = new Float32Array(m * n);
            gemmRef(a.data, b.data, want.data, [m, k, n], transA, transB, 0);
            gemmRef(abs(a.data), abs(b.data), mag, [m, k, n], transA, transB, 0);
            const got = gemm(a, b, { ...cuda, transA, transB });
            closeTo(got.data, want.data, mag, 1e-6, `${at} beta 0`);
            const c0 = randn(rng, m, n), acc = copy(c0), wantAcc = copy(c0);
            gemmRef(a.data, b.data, wantAcc.data, [m, k, n], transA, transB, 1);
            const back = gemm(a, b, { ...cuda, transA, transB, accumulate: acc });
            assertEquals(back, acc);
            const magAcc = mag.map((x, i) => x + Math.abs(c0.data[i]!));
            closeTo(acc.data, wantAcc.data, magAcc, 1e-6, `${at} beta 1`);
          }
        }
      }
    });
  },
});

Deno.test({
  name: "rmsNorm forward and backward cuda match ts (dw accumulated over rows and calls)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const rows of AWKWARD) {
      for (const cols of [...AWKWARD, 300]) {
        const at = `seed ${seed} ${rows}×${cols}`;
        const x = randn(rng, rows, cols), w = rng.normalArray(cols), eps = 1e-5;
        if (rows > 1) x.data.fill(0, 0, cols); // an all-zero row: rstd = 1/√eps
        const f = rmsNormForward(x, w, eps, ts), g = rmsNormForward(x, w, eps, cuda);
        assertClose(g.rstd, f.rstd, { rtol: 1e-6, msg: `${at} rstd` });
        assertClose(g.y.data, f.y.data, { rtol: 1e-6, msg: `${at} y` });
        const dy = randn(rng, rows, cols), dw0 = rng.normalArray(cols);
        const dwWant = dw0.slice(), dwGot = dw0.slice();
        const dxWant = rmsNormBackward(dy, x, w, f.rstd, dwWant, ts);
        const dxGot = rmsNormBackward(dy, x, w, f.rstd, dwGot, cuda);
        assertClose(dxGot.data, dxWant.data, { rtol: 1e-5, msg: `${at} dx` });
        assertClose(dwGot, dwWant, { rtol: 1e-5, msg: `${at} dw` });
      }
    }
  },
});

Deno.test({
  name: "applyRope cuda matches ts both ways, and backward undoes forward",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const T of [1, 2, 17, 130]) {
      for (const [heads, d] of [[1, 2], [3, 6], [2, 64]] as const) {
        const half = d / 2, at = `seed ${seed} T=${T} heads=${heads} d=${d}`;
        const ang = rng.uniformArray(T * half, -10, 10);
        const cos = ang.map(Math.cos), sin = ang.map(Math.sin);
        const x = randn(rng, T, heads * d);
        for (const dir of [1, -1] as const) {
          const want = applyRope(copy(x), cos, sin, d, { ...ts, dir });
          const got = applyRope(copy(x), cos, sin, d, { ...cuda, dir });
          assertClose(got.data, want.data, { rtol: 1e-6, msg: `${at} dir ${dir}` });
        }
        const round = applyRope(applyRope(copy(x), cos, sin, d, cuda), cos, sin, d, {
          ...cuda,
          dir: -1,
        });
        assertClose(round.data, x.data, { rtol: 1e-6, msg: `${at} round trip` });
      }
    }
  },
});

Deno.test({
  name: "attentionBackward cuda matches ts (GQA groups 1, 2, 4; T = 1, 2, 17, 130; wide heads)",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const cases = [
      [1, 1, 1, 1],
      [2, 2, 1, 3],
      [17, 4, 1, 16],
      [17, 4, 2, 13],
      [130, 4, 4, 8],
      [130, 2, 1, 17],
      [64, 4, 2, 64],
      [5, 2, 1, 200], // d > 128: two outputs per thread
      [3, 1, 1, 256],
    ];
    noLeak(() => {
      for (const [T, heads, kvHeads, d] of cases as [number, number, number, number][]) {
        const at = `seed ${seed} T=${T} heads=${heads} kv=${kvHeads} d=${d}`;
        const q = randn(rng, T, heads * d), dout = randn(rng, T, heads * d);
        const k = rng.normalArray(kvHeads * T * d), v = rng.normalArray(kvHeads * T * d);
        const shape = { heads, kvHeads, headDim: d };
        const want = attentionBackward(q, k, v, dout, shape, ts);
        const got = attentionBackward(q, k, v, dout, shape, cuda);
        assertClose(got.dq.data, want.dq.data, { rtol: 2e-5, atol: 1e-7, msg: `${at} dq` });
        assertClose(got.dk, want.dk, { rtol: 2e-5, atol: 1e-7, msg: `${at} dk` });
        assertClose(got.dv, want.dv, { rtol: 2e-5, atol: 1e-7, msg: `${at} dv` });
      }
    });
  },
});

Deno.test({
  name: "swigluBackward cuda matches ts, large gates included",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const [rows, cols] of [[1, 1], [3, 17], [129, 5], [17, 1000]] as const) {
      const gate = new Matrix(rows, cols, rng.normalArray(rows * cols, 6));
      const up = randn(rng, rows, cols), dout = randn(rng, rows, cols);
      const want = swigluBackward(gate, up, dout, ts), got = swigluBackward(gate, up, dout, cuda);
      const at = `seed ${seed} ${rows}×${cols}`;
      closeTo(got.dgate.data, want.dgate.data, swigluMag(gate, up, dout), 1e-6, `${at} dgate`);
      assertClose(got.dup.data, want.dup.data, { rtol: 1e-6, msg: `${at} dup` });
    }
  },
});

Deno.test({
  name: "embeddingBackward cuda matches ts with repeated ids",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const [T, vocab, d] of [[1, 1, 1], [17, 3, 17], [130, 5, 3], [129, 300, 64]] as const) {
      const ids = Int32Array.from({ length: T }, () => rng.int(vocab));
      if (T > 2) ids[T - 1] = ids[0]!; // at least one repeat
      const dh = randn(rng, T, d), table = rng.normalArray(vocab * d);
      const want = table.slice(), got = table.slice(), mag = abs(table);
      embeddingBackward(ids, dh, want, ts);
      embeddingBackward(ids, dh, got, cuda);
      embeddingBackward(ids, new Matrix(T, d, abs(dh.data)), mag, ts);
      // the GPU adds repeated rows in any order
      closeTo(got, want, mag, 1e-6, `seed ${seed} T=${T} vocab=${vocab} d=${d}`);
    }
  },
});

Deno.test({
  name: "crossEntropy cuda matches ts with ignored rows and wide logits",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const rows of [1, 3, 17, 130]) {
      for (const vocab of [1, 2, 17, 129, 1000]) {
        const logits = new Matrix(rows, vocab, rng.normalArray(rows * vocab, 1 + rng.int(8)));
        const targets = Int32Array.from(
          { length: rows },
          () => rng.uniform() < 0.25 ? IGNORE_TARGET : rng.int(vocab),
        );
        const scale = 1 / rows, at = `seed ${seed} ${rows}×${vocab}`;
        const want = crossEntropy(logits, targets, scale, ts);
        const got = crossEntropy(logits, targets, scale, cuda);
        assertClose(got.loss, want.loss, { rtol: 1e-6, atol: 1e-7, msg: `${at} loss` });
        assertClose(got.dlogits.data, want.dlogits.data, { rtol: 1e-5, msg: `${at} dlogits` });
        for (let r = 0; r < rows; r++) {
          if (targets[r] !== IGNORE_TARGET) continue;
          assertEquals(got.loss[r], 0, at);
          assertEquals(got.dlogits.row(r).every((x) => x === 0), true, `${at} row ${r}`);
        }
      }
    }
  },
});

Deno.test({
  name: "crossEntropy cuda: NaN or ±Infinity in a used row is a NumericalError naming it",
  ignore,
  fn() {
    const rng = new Rng(freshSeed());
    const logits = randn(rng, 5, 40), targets = Int32Array.of(3, IGNORE_TARGET, 0, 7, 39);
    logits.set(1, 4, Infinity); // an ignored row may hold anything
    logits.set(1, 5, NaN);
    crossEntropy(logits, targets, 1, cuda);
    logits.set(3, 11, NaN);
    logits.set(4, 2, -Infinity);
    assertThrows(
      () => crossEntropy(logits, targets, 1, cuda),
      NumericalError,
      "logit 11 of row 3 is NaN",
    );
    logits.set(3, 11, 0);
    assertThrows(
      () => crossEntropy(logits, targets, 1, cuda),
      NumericalError,
      "logit 2 of row 4 is -Infinity",
    );
  },
});

Deno.test({
  name: "adamwStep cuda matches ts over several steps",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    for (const n of [1, 17, 1000]) {
      const p0 = rng.normalArray(n), pc = p0.slice(), pt = p0.slice();
      const mc = new Float32Array(n), mt = new Float32Array(n);
      const vc = new Float32Array(n), vt = new Float32Array(n);
      // sizes of the terms behind each m and p, carried over the steps (errors carry over too)
      const magM = new Float64Array(n), magP = new Float64Array(n);
      for (let step = 1; step <= 5; step++) {
        const g = rng.normalArray(n, step);
        const h: AdamWStep = {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.999,
          eps: 1e-8,
          weightDecay: step % 2 ? 0.1 : 0,
          step,
        };
        const bc1 = 1 - h.beta1 ** step, bc2 = 1 - h.beta2 ** step;
        for (let i = 0; i < n; i++) {
          const vi = h.beta2 * vt[i]! + (1 - h.beta2) * g[i]! ** 2;
          const den = Math.sqrt(vi / bc2) + h.eps;
          magM[i] = h.beta1 * (magM[i]! + Math.abs(mt[i]!)) + (1 - h.beta1) * Math.abs(g[i]!);
          magP[i] = magP[i]! + Math.abs(pt[i]!) + (h.lr / bc1) * magM[i]! / den;
        }
        adamwStep(pt, g, mt, vt, h, ts);
        adamwStep(pc, g, mc, vc, h, cuda);
        const at = `seed ${seed} n=${n} step ${step}`;
        closeTo(mc, mt, magM, 1e-6, `${at} m`);
        assertClose(vc, vt, { rtol: 1e-6, msg: `${at} v` });
        closeTo(pc, pt, magP, 1e-6, `${at} p`);
      }
    }
  },
});

// handles far above any other test creates (one handle table per process)
const lib = cudaLibraryWithoutDevice();

Deno.test({
  name:
    "cuda training kernels refuse bad shapes, options and unknown handles before any device work",
  ignore: lib === null,
  fn() {
    const l = lib!, H = 900401; // H … H + 7: no live buffer
    const refuses = (status: number, cls: typeof RangeError | typeof ShapeError, msg: string) =>
      assertThrows(() => check(l, status), cls, msg);
    refuses(l.lk_cuda_gemm_f32(H, H, H, -1, 2, 3, 0, 0, 0), ShapeError, "got m=-1 k=2 n=3");
    refuses(l.lk_cuda_gemm_f32(H, H, H, 1, 2, 3, 2, 0, 0), RangeError, "trans_a is 2");
    refuses(l.lk_cuda_gemm_f32(H, H, H, 1, 2, 3, 0, -1, 0), RangeError, "trans_b is -1");
    refuses(l.lk_cuda_gemm_f32(H, H, H, 1, 2, 3, 0, 0, 0.5), RangeError, "beta is 0.5");
    refuses(l.lk_cuda_gemm_f32(H, H, H, 1, 2, 3, 0, 0, NaN), RangeError, "beta is nan");
    refuses(l.lk_cuda_gemm_f32(H, H, H, 1, 2, 3, 1, 1, 1), RangeError, `a is handle ${H}`);
    refuses(l.lk_cuda_rmsnorm_f32(H, H, H, H, 2, 0, 1e-5), ShapeError, "rows=2 cols=0");
    refuses(l.lk_cuda_rmsnorm_f32(H, H, H, H, 2, 3, -1), RangeError, "eps=-1");
    refuses(l.lk_cuda_rmsnorm_f32(H, H, H, H, 2, 3, Infinity), RangeError, "eps=inf");
    refuses(l.lk_cuda_rmsnorm_f32(H, H, H, H, 2, 3, 1e-6), RangeError, `x is handle ${H}`);
    refuses(l.lk_cuda_rmsnorm_bwd_f32(H, H, H, H, H, H, -1, 3), ShapeError, "rows=-1 cols=3");
    refuses(l.lk_cuda_rmsnorm_bwd_f32(H, H, H, H, H, H, 1, 3), RangeError, `dy is handle ${H}`);
    refuses(l.lk_cuda_rope_f32(H, H, H, 2, 1, 3, 1), ShapeError, "an even d >= 2");
    refuses(l.lk_cuda_rope_f32(H, H, H, 2, 0, 4, 1), ShapeError, "heads=0");
    refuses(l.lk_cuda_rope_f32(H, H, H, 2, 1, 4, 0), RangeError, "dir is 0, expected 1 or -1");
    refuses(l.lk_cuda_rope_f32(H, H, H, 2, 1, 4, -1), RangeError, `x is handle ${H}`);
    const att = (t: number, heads: number, kv: number, d: number) =>
      l.lk_cuda_attention_bwd_f32(H, H, H, H, H, H, H, t, heads, kv, d);
    refuses(att(4, 4, 3, 8), ShapeError, "kv_heads dividing heads");
    refuses(att(4, 4, 0, 8), ShapeError, "kv_heads=0");
    refuses(att(4, 4, 2, 0), ShapeError, "d=0");
    refuses(att(4, 4, 2, 257), RangeError, "head width d=257, expected at most 256 on cuda");
    refuses(att(4, 4, 2, 8), RangeError, `q is handle ${H}`);
    refuses(l.lk_cuda_swiglu_bwd_f32(H, H, H, H, H, 2.5), ShapeError, "n=2.5");
    refuses(l.lk_cuda_swiglu_bwd_f32(H, H, H, H, H, -1), ShapeError, "n=-1");
    refuses(l.lk_cuda_swiglu_bwd_f32(H, H, H, H, H, 4), RangeError, `gate is handle ${H}`);
    refuses(l.lk_cuda_embedding_bwd_f32(H, H, H, 3, 5, 0), ShapeError, "d=0");
    refuses(l.lk_cuda_embedding_bwd_f32(H, H, H, 3, 5, 2), RangeError, `ids is handle ${H}`);
    refuses(l.lk_cuda_cross_entropy_f32(H, H, H, H, 3, 0, 1), ShapeError, "vocab=0");
    refuses(l.lk_cuda_cross_entropy_f32(H, H, H, H, 3, 5, NaN), RangeError, "scale=nan");
    refuses(l.lk_cuda_cross_entropy_f32(H, H, H, H, 3, 5, 1), RangeError, `logits is handle ${H}`);
    const adam = (n: number, lr: number, b1: number, bc1: number) =>
      l.lk_cuda_adamw_f32(H, H, H, H, n, lr, b1, 0.999, 1e-8, 0, bc1, 0.001);
    refuses(adam(0.5, 1e-3, 0.9, 0.1), ShapeError, "n=0.5");
    refuses(adam(4, -1e-3, 0.9, 0.1), RangeError, "lr=-0.001");
    refuses(adam(4, 1e-3, NaN, 0.1), RangeError, "b1=nan");
    refuses(adam(4, 1e-3, 0.9, 0), RangeError, "bc1=0 bc2=0.001, expected bias corrections");
    refuses(adam(4, 1e-3, 0.9, 0.1), RangeError, `p is handle ${H}`);
  },
});

Deno.test({
  name: "cuda training kernels refuse wrong dtypes and short buffers, and bad ids and targets",
  ignore,
  fn() {
    const l = lib!;
    const refuses = (
      status: number,
      cls: typeof RangeError | typeof ShapeError,
      msg: string,
    ) => assertThrows(() => check(l, status), cls, msg);
    using f6 = DeviceBuffer.from(new Float32Array(6));
    using f5 = DeviceBuffer.from(new Float32Array(5));
    using d6 = DeviceBuffer.from(new Float64Array(6));
    using i3 = DeviceBuffer.from(Int32Array.of(0, 4, 1));
    using f3 = DeviceBuffer.from(new Float32Array(3));
    using g6 = DeviceBuffer.from(new Float32Array(6));
    const [F, S, D] = [f6.handle, f5.handle, d6.handle];
    // 2×3 by 3×2
    refuses(l.lk_cuda_gemm_f32(F, F, S, 3, 2, 2, 0, 0, 0), ShapeError, "c holds 5 elements");
    refuses(l.lk_cuda_gemm_f32(F, D, F, 2, 3, 2, 0, 0, 0), ShapeError, "b holds f64, expected f32");
    refuses(
      l.lk_cuda_rmsnorm_f32(F, f3.handle, F, i3.handle, 2, 3, 1e-5),
      ShapeError,
      "rstd holds i32",
    );
    refuses(l.lk_cuda_rmsnorm_f32(S, f3.handle, F, S, 2, 3, 1e-5), ShapeError, "buffer x holds 5");
    refuses(
      l.lk_cuda_rmsnorm_bwd_f32(F, F, f3.handle, S, F, D, 2, 3),
      ShapeError,
      "dw holds f64, expected f32",
    );
    refuses(l.lk_cuda_rope_f32(S, f3.handle, f3.handle, 3, 1, 2, 1), ShapeError, "x holds 5");
    refuses(l.lk_cuda_rope_f32(F, f3.handle, i3.handle, 3, 1, 2, 1), ShapeError, "sin holds i32");
    refuses(
      l.lk_cuda_attention_bwd_f32(F, F, F, F, F, F, S, 3, 1, 1, 2),
      ShapeError,
      "dv holds 5",
    );
    refuses(
      l.lk_cuda_attention_bwd_f32(F, F, D, F, F, F, F, 3, 1, 1, 2),
      ShapeError,
      "v holds f64",
    );
    refuses(l.lk_cuda_swiglu_bwd_f32(F, F, F, F, S, 6), ShapeError, "dup holds 5");
    refuses(l.lk_cuda_swiglu_bwd_f32(F, D, F, F, F, 6), ShapeError, "up holds f64");
    refuses(l.lk_cuda_embedding_bwd_f32(F, F, F, 3, 3, 2), ShapeError, "ids holds f32");
    refuses(l.lk_cuda_embedding_bwd_f32(i3.handle, S, F, 3, 3, 2), ShapeError, "dh holds 5");
    refuses(l.lk_cuda_cross_entropy_f32(F, F, f3.handle, F, 3, 2, 1), ShapeError, "targets holds");
    refuses(
      l.lk_cuda_cross_entropy_f32(F, i3.handle, f3.handle, S, 3, 2, 1),
      ShapeError,
      "dlogits holds 5",
    );
    refuses(
      l.lk_cuda_adamw_f32(F, F, F, S, 6, 1e-3, 0.9, 0.999, 0, 0, 0.1, 0.1),
      ShapeError,
      "buffer v holds 5",
    );
    refuses(
      l.lk_cuda_adamw_f32(F, F, D, F, 6, 1e-3, 0.9, 0.999, 0, 0, 0.1, 0.1),
      ShapeError,
      "m holds f64",
    );
    // id 4 of row 1 is outside a vocabulary of 3: refused before anything is written
    const table = Float32Array.of(1, 2, 3, 4, 5, 6);
    f6.upload(table);
    refuses(
      l.lk_cuda_embedding_bwd_f32(i3.handle, F, F, 3, 3, 2),
      RangeError,
      "token id 4 at row 1 is outside the vocabulary [0, 3)",
    );
    assertEquals(f6.download(new Float32Array(6)), table);
    // target 4 of row 1 is outside a vocabulary of 2 (and is not -1)
    refuses(
      l.lk_cuda_cross_entropy_f32(F, i3.handle, f3.handle, g6.handle, 3, 2, 1),
      RangeError,
      "target 4 of row 1 is outside the vocabulary [0, 2) and is not -1",
    );
  },
});

Deno.test({
  name: "cuda training kernels overwrite every element of their outputs (buffers start as NaN)",
  ignore,
  fn() {
    const l = lib!, seed = freshSeed(), rng = new Rng(seed), at = `seed ${seed}`;
    /** Uploads `ins`, NaN-filled outputs of the given lengths, runs `call`, returns the outputs. */
    const run = (
      ins: (Float32Array | Int32Array)[],
      outLens: number[],
      call: (h: number[]) => number,
    ): Float32Array[] => {
      const bufs = [...ins.map((a) => DeviceBuffer.from(a))];
      try {
        for (const n of outLens) bufs.push(DeviceBuffer.from(new Float32Array(n).fill(NaN)));
        check(l, call(bufs.map((b) => b.handle)));
        return bufs.slice(ins.length).map((b) => b.download(new Float32Array(b.length)));
      } finally {
        for (const b of bufs) b.dispose();
      }
    };
    noLeak(() => {
      const [m, k, n] = [3, 17, 5], a = randn(rng, m, k), b = randn(rng, k, n);
      const [c] = run(
        [a.data, b.data],
        [m * n],
        (h) => l.lk_cuda_gemm_f32(...h as [number, number, number], m, k, n, 0, 0, 0),
      );
      closeTo(
        c!,
        gemm(a, b, ts).data,
        gemm(new Matrix(m, k, abs(a.data)), new Matrix(k, n, abs(b.data)), ts).data,
        1e-6,
        `${at} gemm`,
      );
      const [rows, cols] = [17, 33], x = randn(rng, rows, cols), w = rng.normalArray(cols);
      const f = rmsNormForward(x, w, 1e-6, ts);
      const [y, rstd] = run(
        [x.data, w],
        [rows * cols, rows],
        (h) => l.lk_cuda_rmsnorm_f32(h[0]!, h[1]!, h[2]!, h[3]!, rows, cols, 1e-6),
      );
      assertClose(y!, f.y.data, { rtol: 1e-6, msg: `${at} rmsnorm y` });
      assertClose(rstd!, f.rstd, { rtol: 1e-6, msg: `${at} rmsnorm rstd` });
      const dy = randn(rng, rows, cols), dw = new Float32Array(cols);
      const dxWant = rmsNormBackward(dy, x, w, f.rstd, dw, ts);
      const [dx] = run(
        [dy.data, x.data, w, f.rstd, new Float32Array(cols)],
        [rows * cols],
        (h) => l.lk_cuda_rmsnorm_bwd_f32(h[0]!, h[1]!, h[2]!, h[3]!, h[5]!, h[4]!, rows, cols),
      );
      assertClose(dx!, dxWant.data, { rtol: 1e-5, msg: `${at} rmsnorm dx` });
      const [T, heads, kv, d] = [130, 2, 1, 5];
      const q = randn(rng, T, heads * d), dout = randn(rng, T, heads * d);
      const kk = rng.normalArray(kv * T * d), vv = rng.normalArray(kv * T * d);
      const g = attentionBackward(q, kk, vv, dout, { heads, kvHeads: kv, headDim: d }, ts);
      const [dq, dk, dv] = run(
        [q.data, kk, vv, dout.data],
        [T * heads * d, kv * T * d, kv * T * d],
        (h) =>
          l.lk_cuda_attention_bwd_f32(
            h[0]!,
            h[1]!,
            h[2]!,
            h[3]!,
            h[4]!,
            h[5]!,
            h[6]!,
            T,
            heads,
            kv,
            d,
          ),
      );
      assertClose(dq!, g.dq.data, { rtol: 2e-5, msg: `${at} attention dq` });
      assertClose(dk!, g.dk, { rtol: 2e-5, msg: `${at} attention dk` });
      assertClose(dv!, g.dv, { rtol: 2e-5, msg: `${at} attention dv` });
      const gate = randn(rng, 4, 9), up = randn(rng, 4, 9), dsw = randn(rng, 4, 9);
      const sw = swigluBackward(gate, up, dsw, ts);
      const [dgate, dup] = run(
        [gate.data, up.data, dsw.data],
        [36, 36],
        (h) => l.lk_cuda_swiglu_bwd_f32(h[0]!, h[1]!, h[2]!, h[3]!, h[4]!, 36),
      );
      closeTo(dgate!, sw.dgate.data, swigluMag(gate, up, dsw), 1e-6, `${at} swiglu dgate`);
      assertClose(dup!, sw.dup.data, { rtol: 1e-6, msg: `${at} swiglu dup` });
      const [cr, vocab] = [6, 40], logits = randn(rng, cr, vocab);
      const targets = Int32Array.of(3, IGNORE_TARGET, 0, IGNORE_TARGET, 39, 7);
      const ce = crossEntropy(logits, targets, 0.5, ts);
      const [loss, dl] = run(
        [logits.data, targets],
        [cr, cr * vocab],
        (h) => l.lk_cuda_cross_entropy_f32(h[0]!, h[1]!, h[2]!, h[3]!, cr, vocab, 0.5),
      );
      assertClose(loss!, ce.loss, { rtol: 1e-6, msg: `${at} cross-entropy loss` });
      assertClose(dl!, ce.dlogits.data, { rtol: 1e-5, msg: `${at} cross-entropy dlogits` });
    });
  },
});
