// PowerSGD (lib/comm/powersgd.ts): the simulation against an f64 transcription of the
// definition on awkward shapes, the error feedback's conservation, warm start converging to the
// best rank-r approximation, torch's powerSGD_hook on real gradients (a committed fixture), bad
// input, and real worlds of 2 and 4 ranks (mpirun) equal to the simulation bit for bit.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { Matrix as MlMatrix, SingularValueDecomposition } from "ml-matrix";
import {
  orthogonalize,
  PowerSgdCompressor,
  powerSgdRoundTrip,
  simulateAllReduce,
  simulatePowerSgd,
} from "../../lib/comm/powersgd.ts";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, mpirunDeno, mpirunMissing, relL2 } from "../_util.ts";

const seed = freshSeed();
const u = 2 ** -24;

/** The definition in f64 with plain loops: one step of N ranks from start Q `q` (cols × r). */
function reference(ms: Float64Array[], q: Float64Array, rows: number, cols: number, r: number) {
  const gs = (a: Float64Array, n: number) => {
    for (let i = 0; i < r; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += a[j * r + i]! ** 2;
      const d = Math.sqrt(s);
      for (let j = 0; j < n; j++) a[j * r + i] = d === 0 ? 0 : a[j * r + i]! / d;
      for (let c = i + 1; c < r; c++) {
        let dot = 0;
        for (let j = 0; j < n; j++) dot += a[j * r + i]! * a[j * r + c]!;
        for (let j = 0; j < n; j++) a[j * r + c] = a[j * r + c]! - dot * a[j * r + i]!;
      }
    }
  };
  gs(q, cols);
  const p = new Float64Array(rows * r);
  for (const m of ms) {
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < r; k++) {
        for (let j = 0; j < cols; j++) p[i * r + k]! += m[i * cols + j]! * q[j * r + k]!;
      }
    }
  }
  gs(p, rows);
  const q2 = new Float64Array(cols * r);
  for (const m of ms) {
    for (let j = 0; j < cols; j++) {
      for (let k = 0; k < r; k++) {
        for (let i = 0; i < rows; i++) q2[j * r + k]! += m[i * cols + j]! * p[i * r + k]!;
      }
    }
  }
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      for (let k = 0; k < r; k++) out[i * cols + j]! += p[i * r + k]! * q2[j * r + k]!;
    }
  }
  return { out, q: q2 };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 1],
  [17, 1, 1],
  [7, 13, 2],
  [129, 33, 4],
  [6, 9, 6], // rank ≥ min(rows, cols)
  [8, 8, 3], // (8 + 8)·3 ≥ 64: not smaller
  [40, 30, 3],
];

for (const [rows, cols, rank] of SHAPES) {
  Deno.test(`powersgd ${rows}×${cols} rank ${rank}: 3 ranks, 3 steps match the definition (seed ${seed})`, () => {
    const N = 3, rng = new Rng(seed + rows * 1000 + cols);
    const states = Array.from(
      { length: N },
      () => new PowerSgdCompressor(rows, cols, { rank, seed: 5 }),
    );
    const r = Math.min(rank, rows, cols);
    const compressed = (rows + cols) * r < rows * cols;
    assertEquals(states[0]!.compressed, compressed);
    const res: Float64Array[] = Array.from({ length: N }, () => new Float64Array(rows * cols));
    let q: Float64Array | null = null;
    for (let step = 0; step < 3; step++) {
      const grads = Array.from({ length: N }, () => rng.normalArray(rows * cols));
      const start: Float64Array = q ?? Float64Array.from(new Rng(5).normalArray(cols * r));
      const ms = grads.map((g, i) => Float64Array.from(g, (v, j) => v + res[i]![j]!));
      const got = simulatePowerSgd(states, grads);
      for (const g of got) assertEquals(g.sum, got[0]!.sum, "the same sum on every rank");
      if (!compressed) {
        const raw = simulateAllReduce(grads);
        assertEquals(got[0]!.sum, raw);
        assertEquals(got[0]!.bytesSent, 4 * rows * cols);
        assert(states.every((s) => s.residual === null));
        continue;
      }
      assertEquals(got[0]!.bytesSent, 4 * (rows + cols) * r);
      const want = reference(ms, start, rows, cols, r);
      const err = relL2(got[0]!.sum, want.out);
      assert(err < 2e-5, `step ${step}: relative error ${err}`);
      q = want.q;
      for (let i = 0; i < N; i++) {
        for (let j = 0; j < rows * cols; j++) res[i]![j] = ms[i]![j]! - want.out[j]! / N;
        const e = relL2(states[i]!.residual!, res[i]!);
        assert(e < 1e-4, `rank ${i} step ${step}: residual relative error ${e}`);
        // carry lmkit's own residual on (the reference follows the same trajectory)
        res[i]!.set(states[i]!.residual!);
      }
      q = Float64Array.from(states[0]!.q!);
    }
  });
}

Deno.test("powersgd: error feedback conserves the sum (residual = fl(M − sum / N), one rounding)", () => {
  const N = 2, rows = 31, cols = 20, rng = new Rng(seed);
  const states = Array.from({ length: N }, () => new PowerSgdCompressor(rows, cols, { rank: 2 }));
  for (let step = 0; step < 4; step++) {
    const prev = states.map((s) => s.residual ?? new Float32Array(rows * cols));
    const grads = Array.from({ length: N }, () => rng.normalArray(rows * cols));
    const ms = grads.map((g, r) => g.map((v, i) => v + prev[r]![i]!));
    const out = simulatePowerSgd(states, grads)[0]!.sum;
    for (let i = 0; i < rows * cols; i++) {
      let sumM = 0, sumRes = 0, bound = 0;
      for (let r = 0; r < N; r++) {
        const res = states[r]!.residual![i]!, exact = ms[r]![i]! - out[i]! / N; // exact: N = 2
        assertEquals(res, Math.fround(exact), "residual is M − sum/N, rounded once");
        sumM += ms[r]![i]!;
        sumRes += res;
        bound += u * Math.abs(exact);
      }
      // transmitted + residuals = raw, up to the one rounding of each residual (f64 sums are exact here)
      assert(Math.abs(out[i]! + sumRes - sumM) <= bound, `element ${i}`);
    }
  }
});

Deno.test("powersgd: warm start on a fixed matrix converges to the best rank-r error (SVD)", () => {
  const rows = 30, cols = 20, r = 3, rng = new Rng(seed);
  const m = rng.normalArray(rows * cols);
  // give it a spectrum with a gap, so that 25 power iterations converge
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < cols; j++) {
      m[i * cols + j]! += (i < 3 ? 8 - i : 0) * Math.sin(i + j * (i + 1));
    }
  }
  const sv = new SingularValueDecomposition(
    new MlMatrix(
      Array.from({ length: rows }, (_, i) => Array.from(m.subarray(i * cols, (i + 1) * cols))),
    ),
  ).diagonal;
  const best = sv.slice(r).reduce((s, v) => s + v * v, 0);
  const c = new PowerSgdCompressor(rows, cols, { rank: r, errorFeedback: false });
  using comm = createCommunicator("single");
  let err = 0;
  for (let step = 0; step < 25; step++) {
    const out = c.exchangeSync(comm, m).sum;
    err = out.reduce((s, v, i) => s + (v - m[i]!) ** 2, 0);
  }
  assert(Math.abs(err - best) / best < 1e-3, `error ${err}, best rank-${r} ${best}`);
  const rt = powerSgdRoundTrip(m, [rows, cols], r, { iterations: 25 });
  assert(Math.abs(rt.error - best) / best < 1e-3, `round trip ${rt.error}, best ${best}`);
  assertEquals(rt.bytes, 4 * (rows + cols) * r);
  const cold = new PowerSgdCompressor(rows, cols, {
    rank: r,
    errorFeedback: false,
    warmStart: false,
  });
  for (let step = 0; step < 3; step++) cold.exchangeSync(comm, m);
  const coldErr = cold.exchangeSync(comm, m).sum.reduce((s, v, i) => s + (v - m[i]!) ** 2, 0);
  assert(coldErr > err * 1.0001, "without warm start every step is one power iteration");
});

Deno.test("powersgd: round trip at one rank equals the first exchange of a fresh compressor", () => {
  const x = new Rng(seed).normalArray(20 * 14);
  const c = new PowerSgdCompressor(20, 14, { rank: 2, seed: 3 });
  using comm = createCommunicator("single");
  const { sum } = c.exchangeSync(comm, x);
  const rt = powerSgdRoundTrip(x, [20, 14], 2, { seed: 3 });
  assertEquals(rt.approximation, sum);
  assertEquals(rt.error, sum.reduce((s, v, i) => s + (v - x[i]!) ** 2, 0));
  const flat = powerSgdRoundTrip(x, [280, 1], 1);
  assertEquals([flat.error, flat.bytes], [0, 280 * 4]);
});

Deno.test("powersgd: matches torch's powerSGD_hook on real gradients (2 ranks, 3 steps, same start Q)", () => {
  const dir = new URL("./fixtures/", import.meta.url);
  const meta = JSON.parse(Deno.readTextFileSync(new URL("powersgd_torch.json", dir)));
  const all = new Float32Array(Deno.readFileSync(new URL("powersgd_torch.bin", dir)).buffer);
  const part = (k: string) =>
    all.subarray(meta.offsets[k][0], meta.offsets[k][0] + meta.offsets[k][1]);
  const [grads, q0, approx, residual] = ["grads", "q0", "approx", "residual"].map(part);
  const layers = meta.layers as { name: string; rows: number; cols: number; rank: number }[];
  const N: number = meta.world, S: number = meta.steps;
  const sizes = layers.map((l) => l.rows * l.cols), per = sizes.reduce((a, b) => a + b);
  const lOff = (l: number) => sizes.slice(0, l).reduce((a, b) => a + b, 0);
  let qo = 0;
  const lines: string[] = [];
  for (const [li, l] of layers.entries()) {
    const states = Array.from(
      { length: N },
      () => new PowerSgdCompressor(l.rows, l.cols, { rank: l.rank }),
    );
    const q = q0!.subarray(qo, qo + l.cols * l.rank);
    qo += l.cols * l.rank;
    for (const s of states) s.setQ(q);
    for (let s = 0; s < S; s++) {
      const g = Array.from(
        { length: N },
        (_, r) =>
          grads!.subarray((s * N + r) * per + lOff(li), (s * N + r) * per + lOff(li) + sizes[li]!),
      );
      const sum = simulatePowerSgd(states, g)[0]!.sum;
      const t = approx!.subarray(s * per + lOff(li), s * per + lOff(li) + sizes[li]!).map((v) =>
        v * N
      );
      const e = relL2(sum, t);
      const raw = simulateAllReduce(g);
      lines.push(
        `${l.name} ${l.rows}×${l.cols} r${l.rank} step ${s}: ‖lmkit − N·torch‖/‖N·torch‖ ${
          e.toExponential(1)
        }, compression error lmkit ${relL2(sum, raw).toFixed(4)} torch ${relL2(t, raw).toFixed(4)}`,
      );
      assert(e < 1e-5, lines.at(-1));
    }
    for (let r = 0; r < N; r++) {
      const t = residual!.subarray(r * per + lOff(li), r * per + lOff(li) + sizes[li]!);
      const e = relL2(states[r]!.residual!, t);
      assert(e < 1e-5, `${l.name} rank ${r}: residual relative error ${e}`);
    }
  }
  console.log(`  torch ${meta.torch}:\n  ${lines.join("\n  ")}`);
});

Deno.test("powersgd: bad input fails with one sentence quoting the value", () => {
  const one = (f: () => unknown, cls: new (m: string) => Error, re: RegExp) => {
    const e = assertThrows(f, cls) as Error;
    assert(re.test(e.message) && !e.message.includes("\n"), e.message);
  };
  one(() => new PowerSgdCompressor(4, 4, { rank: 0 }), RangeError, /^PowerSGD rank 0 is invalid/);
  one(() => new PowerSgdCompressor(4, 4, { rank: 1.5 }), RangeError, /rank 1\.5 is invalid/);
  one(() => new PowerSgdCompressor(4, 4, { rank: NaN }), RangeError, /rank NaN is invalid/);
  one(() => new PowerSgdCompressor(0, 4), RangeError, /row count 0 is invalid/);
  one(() => new PowerSgdCompressor(4, 4, { epsilon: -1 }), RangeError, /epsilon -1 is invalid/);
  const c = new PowerSgdCompressor(4, 5, { rank: 1 });
  using comm = createCommunicator("single");
  one(
    () => c.exchangeSync(comm, new Float32Array(19)),
    ShapeError,
    /has 19 elements: expected 20$/,
  );
  const g = new Float32Array(20);
  g[7] = NaN;
  one(() => c.exchangeSync(comm, g), NumericalError, /holds NaN at element 7/);
  g[7] = -Infinity;
  one(
    () => simulatePowerSgd([c, new PowerSgdCompressor(4, 5)], [new Float32Array(20), g]),
    NumericalError,
    /^On rank 1: the gradient .* holds -Infinity at element 7/,
  );
  one(() => c.setQ(new Float32Array(3)), ShapeError, /Q of 3 values/);
  assertEquals(c.steps, 0);
  assertEquals(c.residual, null);
  c.exchangeSync(comm, new Float32Array(20).fill(1)); // still usable
  assertEquals(c.steps, 1);
});

Deno.test("powersgd: orthogonalize keeps a zero column zero and leaves orthonormal columns", () => {
  const a = new Float32Array([1, 0, 2, 3, 0, 4, 5, 0, 6, 7, 0, 8]); // 4×3, column 1 zero
  orthogonalize(a, 4, 3);
  assert(a.every(Number.isFinite));
  for (let j = 0; j < 4; j++) assertEquals(a[j * 3 + 1], 0);
  let dot = 0;
  for (let j = 0; j < 4; j++) dot += a[j * 3]! * a[j * 3 + 2]!;
  assert(Math.abs(dot) < 1e-6);
});

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the PowerSGD mpi worlds: ${skip}`);
for (const np of [2, 4]) {
  Deno.test({
    name:
      `powersgd mpi world of ${np}: 4 steps of 7 layers equal the simulation bit for bit on every rank; a NaN on one rank fails every rank (seed ${seed})`,
    ignore: !!skip,
    fn: async () => {
      const w = await mpirunDeno(np, [
        "--no-prompt",
        "--allow-ffi=ffi/build",
        "--allow-read",
        "--allow-env",
        "tests/comm/_compress_world.ts",
        "powersgd",
        "--seed",
        String(seed),
      ], { limitS: 60 });
      const out = w.stdout + w.stderr;
      assert(!w.timedOut, `the world did not finish within 60 s:\n${out}`);
      assertEquals(w.code, 0, out);
      for (let r = 0; r < np; r++) {
        assert(
          out.includes(
            `rank ${r}: ok 28 PowerSGD exchanges of ${np} ranks equal the simulation bit for bit`,
          ),
          out,
        );
        assert(out.includes(`rank ${r}: ok a NaN on rank 1 failed every rank`), out);
      }
    },
  });
}
