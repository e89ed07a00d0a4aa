// Top-K (lib/comm/topk.ts): the simulation against a sort-based transcription of the definition
// on awkward sizes, error feedback conserving the sum bit for bit (inputs are multiples of 1/8,
// so every f32 sum here is exact), the uncompressed path, the round trip, bad input, and real
// worlds of 2 and 4 ranks (mpirun) equal to the simulation bit for bit.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { simulateTopK, TopKCompressor, topKCount, topKRoundTrip } from "../../lib/comm/topk.ts";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, mpirunDeno, mpirunMissing } from "../_util.ts";

const seed = freshSeed();

/** n multiples of 1/8 in [−125, 125], with repeats (ties). */
function eighths(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => (rng.int(201) - 100) / 8);
}

/** The definition: the k largest |x| (ties to the lower index), by a full sort. */
function chosen(x: Float32Array, k: number): number[] {
  return [...x.keys()].sort((a, b) => Math.abs(x[b]!) - Math.abs(x[a]!) || a - b).slice(0, k);
}

const CASES: [number, number][] = [
  [1, 1],
  [1, 0.3],
  [3, 0.34],
  [17, 0.1],
  [129, 0.05],
  [1000, 0.001],
  [4, 0.5], // 2k = n: not smaller, uncompressed
  [50, 0.9],
];

for (const [n, density] of CASES) {
  Deno.test(`topk n ${n} density ${density}: 3 ranks, 3 steps match the definition (seed ${seed})`, () => {
    const N = 3, rng = new Rng(seed + n), k = topKCount(n, density);
    const states = Array.from({ length: N }, () => new TopKCompressor(n, { density }));
    assertEquals(states[0]!.k, k);
    const res = Array.from({ length: N }, () => new Float32Array(n));
    for (let step = 0; step < 3; step++) {
      const grads = Array.from({ length: N }, () => eighths(rng, n));
      const xs = grads.map((g, r) => g.map((v, i) => v + res[r]![i]!));
      const got = simulateTopK(states, grads);
      const want = new Float32Array(n);
      if (2 * k >= n) {
        for (const x of xs) x.forEach((v, i) => want[i]! += v);
        for (const r of res) r.fill(0);
        assertEquals(got[0]!.bytesSent, 4 * n);
        assert(states.every((s) => s.residual === null));
      } else {
        xs.forEach((x, r) => {
          for (const i of chosen(x, k)) {
            want[i]! += x[i]!;
            x[i] = 0;
          }
          res[r] = x;
          assertEquals(states[r]!.residual, x);
        });
        assertEquals(got[0]!.bytesSent, 8 * k);
      }
      for (const g of got) assertEquals(g.sum, want);
    }
  });
}

Deno.test("topk: error feedback conserves the sum bit for bit over 5 steps (sent + residual = raw)", () => {
  const N = 4, n = 333, rng = new Rng(seed);
  const states = Array.from({ length: N }, () => new TopKCompressor(n, { density: 0.03 }));
  const raw = new Float32Array(n), sent = new Float32Array(n);
  for (let step = 0; step < 5; step++) {
    const grads = Array.from({ length: N }, () => eighths(rng, n));
    for (const g of grads) g.forEach((v, i) => raw[i]! += v);
    simulateTopK(states, grads)[0]!.sum.forEach((v, i) => sent[i]! += v);
  }
  const kept = new Float32Array(n);
  for (const s of states) s.residual!.forEach((v, i) => kept[i]! += v);
  assertEquals(sent.map((v, i) => v + kept[i]!), raw);
});

Deno.test("topk: k = ⌈density·n⌉ without the doubles' excess; density changes keep the residual", () => {
  assertEquals([topKCount(30, 0.1), topKCount(10, 0.25), topKCount(7, 1e-9), topKCount(3, 1)], [
    3,
    3,
    1,
    3,
  ]);
  using comm = createCommunicator("single");
  const c = new TopKCompressor(8, { density: 0.125 });
  c.exchangeSync(comm, new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]));
  assertEquals(Array.from(c.residual!), [1, 2, 3, 4, 5, 6, 7, 0]);
  c.setDensity(0.5); // 2k = n: uncompressed; the residual travels with it
  const r = c.exchangeSync(comm, new Float32Array(8).fill(1));
  assertEquals([Array.from(r.sum), r.compressed, c.residual], [
    [2, 3, 4, 5, 6, 7, 8, 1],
    false,
    null,
  ]);
});

Deno.test("topk: the round trip is the sum of squares left out, and the blocking and async exchanges agree", async () => {
  const x = eighths(new Rng(seed), 500);
  const rt = topKRoundTrip(x, 0.02);
  const k = topKCount(500, 0.02), keep = new Set(chosen(x, k));
  assertEquals(rt.error, x.reduce((s, v, i) => s + (keep.has(i) ? 0 : v * v), 0));
  assertEquals(rt.bytes, 8 * k);
  assertEquals([topKRoundTrip(x, 0.6).error, topKRoundTrip(x, 0.6).bytes], [0, 2000]);
  using comm = createCommunicator("single");
  const a = new TopKCompressor(500, { density: 0.02 }),
    b = new TopKCompressor(500, { density: 0.02 });
  assertEquals(a.exchangeSync(comm, x), await b.exchange(comm, x));
  assertEquals(a.residual, b.residual);
  assertEquals(
    new TopKCompressor(500, { density: 0.02 }).exchangeSync(comm, x).sum,
    rt.approximation,
  );
});

Deno.test("topk: bad input fails with one sentence quoting the value", () => {
  const one = (f: () => unknown, cls: new (m: string) => Error, re: RegExp) => {
    const e = assertThrows(f, cls) as Error;
    assert(re.test(e.message) && !e.message.includes("\n"), e.message);
  };
  for (const d of [0, -0.1, 1.5, NaN]) {
    one(
      () => new TopKCompressor(10, { density: d }),
      RangeError,
      new RegExp(`^Top-K density ${d} is invalid: expected a number in \\(0, 1\\]$`),
    );
  }
  one(() => new TopKCompressor(0), RangeError, /^Top-K tensor size 0 is invalid/);
  one(() => topKRoundTrip(new Float32Array(3), 2), RangeError, /density 2 is invalid/);
  const c = new TopKCompressor(10, { density: 0.1 });
  using comm = createCommunicator("single");
  one(() => c.exchangeSync(comm, new Float32Array(9)), ShapeError, /has 9 elements: expected 10$/);
  const g = new Float32Array(10);
  g[3] = NaN;
  one(() => c.exchangeSync(comm, g), NumericalError, /holds NaN at element 3/);
  one(
    () => simulateTopK([c, new TopKCompressor(10, { density: 0.1 })], [new Float32Array(10), g]),
    NumericalError,
    /^On rank 1: the gradient .* holds NaN at element 3/,
  );
  assertEquals([c.steps, c.residual], [0, null]);
});

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the Top-K mpi worlds: ${skip}`);
for (const np of [2, 4]) {
  Deno.test({
    name:
      `topk mpi world of ${np}: 4 steps of 6 tensors equal the simulation bit for bit on every rank; a NaN on one rank fails every rank (seed ${seed})`,
    ignore: !!skip,
    fn: async () => {
      const w = await mpirunDeno(np, [
        "--no-prompt",
        "--allow-ffi=ffi/build",
        "--allow-read",
        "--allow-env",
        "tests/comm/_compress_world.ts",
        "topk",
        "--seed",
        String(seed),
      ], { limitS: 60 });
      const out = w.stdout + w.stderr;
      assert(!w.timedOut, `the world did not finish within 60 s:\n${out}`);
      assertEquals(w.code, 0, out);
      for (let r = 0; r < np; r++) {
        assert(
          out.includes(
            `rank ${r}: ok 24 Top-K exchanges of ${np} ranks equal the simulation bit for bit`,
          ),
          out,
        );
        assert(out.includes(`rank ${r}: ok a NaN on rank 1 failed every rank`), out);
      }
    },
  });
}
