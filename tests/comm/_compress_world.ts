// One rank of a compressed-exchange test world, started by tests/comm/powersgd_test.ts and
// tests/comm/topk_test.ts as
//   mpirun -np N deno run --allow-ffi=ffi/build --allow-read tests/comm/_compress_world.ts \
//     powersgd|topk --seed S
// Every rank derives every rank's gradients from the seed, runs the real exchange (blocking and
// non-blocking steps alternate) and the single-process simulation of all N ranks side by side,
// over several steps (warm start, residuals), and checks that its sum, its residual (and, for
// PowerSGD, the warm-start Q) equal the simulation's rank `rank` bit for bit. Then rank 1 (or 0)
// passes a gradient holding NaN: every rank must fail the same call with one sentence, and the
// next exchange must work. Prints `rank R: ok …` lines, or `rank R: FAIL …` and exits 1.
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import {
  type ExchangeResult,
  PowerSgdCompressor,
  simulatePowerSgd,
} from "../../lib/comm/powersgd.ts";
import { simulateTopK, TopKCompressor } from "../../lib/comm/topk.ts";
import { Rng } from "../../lib/core/rng.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { seed: { type: "string", default: "1" }, steps: { type: "string", default: "4" } },
});
const scenario = positionals[0] ?? "powersgd";
const seed = Number(values.seed), steps = Number(values.steps);
const comm = createCommunicator("mpi", { timeoutSeconds: 60 });
const { rank, size } = comm;
const say = (s: string) => console.log(`rank ${rank}: ${s}`);
const fail = (s: string): never => {
  say(`FAIL ${s}`);
  Deno.exit(1);
};

/** Rank r's gradient at a step for layer `layer`: normals (PowerSGD) or multiples of 1/8 (Top-K). */
function grad(layer: number, step: number, r: number, n: number, eighths: boolean): Float32Array {
  const rng = new Rng(seed * 7919 + layer * 104729 + step * 1299709 + r * 15485863);
  if (!eighths) return rng.normalArray(n);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.int(2001) - 1000) / 8;
  return out;
}

function sameBits(a: Float32Array | null, b: Float32Array | null, what: string): void {
  if (a === null || b === null) {
    if (a !== b) fail(`${what}: one is null`);
    return;
  }
  if (a.length !== b.length) fail(`${what}: lengths ${a.length} and ${b.length}`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) {
    if (ua[i] !== ub[i]) {
      let worst = 0, scale = 0;
      for (let j = 0; j < a.length; j++) {
        worst = Math.max(worst, Math.abs(a[j]! - b[j]!));
        scale = Math.max(scale, Math.abs(b[j]!));
      }
      fail(
        `${what}: element ${i} is ${a[i]}, the simulation's ${
          b[i]
        } (max |diff| ${worst}, max |x| ${scale})`,
      );
    }
  }
}

interface Layer<S> {
  name: string;
  n: number;
  mine: S;
  sim: S[];
}

async function run<S extends PowerSgdCompressor | TopKCompressor>(
  layers: Layer<S>[],
  simulate: (states: S[], grads: Float32Array[]) => ExchangeResult[],
  eighths: boolean,
): Promise<number> {
  let checks = 0;
  for (let step = 0; step < steps; step++) {
    for (const [li, l] of layers.entries()) {
      const grads = Array.from({ length: size }, (_, r) => grad(li, step, r, l.n, eighths));
      const real = step % 2 === 0
        ? l.mine.exchangeSync(comm, grads[rank]!)
        : await l.mine.exchange(comm, grads[rank]!);
      const sim = simulate(l.sim, grads)[rank]!;
      const what = `${l.name} step ${step}`;
      sameBits(real.sum, sim.sum, `${what} sum`);
      sameBits(l.mine.residual, l.sim[rank]!.residual, `${what} residual`);
      if (l.mine instanceof PowerSgdCompressor) {
        sameBits(l.mine.q, (l.sim[rank] as PowerSgdCompressor).q, `${what} Q`);
      }
      if (real.bytesSent !== sim.bytesSent || real.compressed !== sim.compressed) {
        fail(`${what}: bytes ${real.bytesSent} vs ${sim.bytesSent}`);
      }
      checks++;
    }
  }
  return checks;
}

/** Rank `bad` passes NaN: every rank must throw; then one good exchange. */
async function badThenGood(make: () => PowerSgdCompressor | TopKCompressor, n: number) {
  const c = make(), bad = size > 1 ? 1 : 0;
  const g = grad(99, 0, rank, n, true);
  if (rank === bad) g[n - 1] = NaN;
  let msg = "";
  try {
    await c.exchange(comm, g);
  } catch (e) {
    msg = `${(e as Error).name}: ${(e as Error).message}`;
  }
  if (!msg) fail("a NaN on rank 1 did not fail this rank");
  const expected = rank === bad
    ? /^NumericalError: The gradient of the .* holds NaN at element \d+: expected finite values$/
    : /^NumericalError: (The all-reduced .* holds NaN at element|Rank 1 sent no part of)[^\n]*$/;
  if (!expected.test(msg)) fail(`unexpected failure: ${msg}`);
  if (c.steps !== 0 || c.residual !== null) fail("a failed exchange changed the state");
  const ok = await c.exchange(comm, grad(99, 1, rank, n, true));
  if (ok.sum.some((v) => !Number.isFinite(v))) fail("the exchange after a failure is not finite");
  say(`ok a NaN on rank ${bad} failed every rank: ${msg}`);
}

if (scenario === "powersgd") {
  const shapes: [number, number, number][] = [
    [1, 1, 1],
    [1, 9, 1],
    [9, 1, 1],
    [7, 13, 2],
    [129, 33, 4],
    [5, 6, 8], // rank ≥ min(rows, cols): uncompressed
    [40, 50, 3],
  ];
  const layers = shapes.map(([rows, cols, r], i) => {
    const make = () =>
      new PowerSgdCompressor(rows, cols, { rank: r, seed: seed + i, backend: "cpu" });
    return {
      name: `${rows}×${cols} r${r}`,
      n: rows * cols,
      mine: make(),
      sim: Array.from({ length: size }, make),
    };
  });
  const checks = await run(layers, simulatePowerSgd, false);
  say(`ok ${checks} PowerSGD exchanges of ${size} ranks equal the simulation bit for bit`);
  await badThenGood(() => new PowerSgdCompressor(30, 20, { rank: 2, backend: "cpu" }), 600);
} else if (scenario === "topk") {
  const cases: [number, number][] = [[1, 0.5], [7, 0.2], [91, 0.1], [4257, 0.01], [300, 0.6], [
    64,
    1,
  ]];
  const layers = cases.map(([n, d]) => {
    const make = () => new TopKCompressor(n, { density: d, backend: "cpu" });
    return {
      name: `n ${n} density ${d}`,
      n,
      mine: make(),
      sim: Array.from({ length: size }, make),
    };
  });
  const checks = await run(layers, simulateTopK, true);
  say(`ok ${checks} Top-K exchanges of ${size} ranks equal the simulation bit for bit`);
  await badThenGood(() => new TopKCompressor(600, { density: 0.05, backend: "cpu" }), 600);
  await badThenGood(() => new TopKCompressor(600, { density: 0.9, backend: "cpu" }), 600);
} else fail(`unknown scenario ${scenario}`);
comm.close();
