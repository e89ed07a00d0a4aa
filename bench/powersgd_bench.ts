// lmkit's PowerSGD exchange (lib/comm/powersgd.ts, mpi communicator) against torch's own
// powerSGD_hook (gloo, bench/torch_powersgd_peer.py) on the same real gradients (every projection
// of the bundled model, lib/train lossAndGrad on pud_en text, one 256-token window per rank and
// step), 2 ranks, the same start Q, in the same run: the difference of the results, each one's
// compression error ‖result − Σ grads‖ / ‖Σ grads‖, and the time of a step (all layers, barrier
// to barrier, 1 thread per rank). Then, in this process, each compressor's throughput (GB/s of
// gradient processed; a world of one) against a memcpy of the same buffer.
//
// Run from the repository root:
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE deno run --no-prompt --allow-read --allow-write \
//     --allow-env --allow-ffi=ffi/build --allow-run=mpirun,/usr/bin/python3,deno \
//     bench/powersgd_bench.ts [--rank 4] [--steps 3] [--repeat 3]
// (--worker --dir DIR is one mpirun rank of it.) Needs mpirun; the torch column needs
// /usr/bin/python3 with torch.
import { parseArgs } from "node:util";
import { createCommunicator } from "../lib/comm/communicator.ts";
import { PowerSgdCompressor, simulateAllReduce } from "../lib/comm/powersgd.ts";
import { TopKCompressor } from "../lib/comm/topk.ts";
import { Rng } from "../lib/core/rng.ts";
import { linearShapes } from "../lib/train/params.ts";
import { parseLlamaConfig } from "../lib/model/config.ts";
import {
  type LayerSpec,
  realGradients,
  runTorchPeer,
  startQs,
  writePeerInput,
} from "../tests/comm/fixtures/make_powersgd.ts";
import { mpirunDeno } from "../tests/_util.ts";

const { values: a } = parseArgs({
  args: Deno.args,
  options: {
    rank: { type: "string", default: "4" },
    steps: { type: "string", default: "3" },
    repeat: { type: "string", default: "3" },
    worker: { type: "boolean", default: false },
    dir: { type: "string" },
  },
});
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)]!;
const f32 = (path: string) => new Float32Array(Deno.readFileSync(path).buffer);
const bytes = (x: Float32Array) => new Uint8Array(x.buffer, x.byteOffset, x.byteLength);

interface Meta {
  world: number;
  steps: number;
  layers: LayerSpec[];
}

if (a.worker) {
  // one rank: the exchange of every layer, `repeat` times over the steps
  const dir = a.dir!, meta: Meta = JSON.parse(Deno.readTextFileSync(`${dir}/meta.json`));
  const comm = createCommunicator("mpi");
  const grads = f32(`${dir}/grads.bin`), q0 = f32(`${dir}/q0.bin`);
  const sizes = meta.layers.map((l) => l.rows * l.cols), per = sizes.reduce((x, y) => x + y);
  const times: number[] = [], approx: Float32Array[] = [];
  let residual: Float32Array[] = [];
  for (let rep = 0; rep < Number(a.repeat); rep++) {
    let qo = 0;
    const cs = meta.layers.map((l) => {
      const c = new PowerSgdCompressor(l.rows, l.cols, { rank: l.rank });
      c.setQ(q0.subarray(qo, qo += l.cols * l.rank));
      return c;
    });
    for (let s = 0; s < meta.steps; s++) {
      let o = (s * meta.world + comm.rank) * per;
      const g = sizes.map((n) => grads.subarray(o, o += n));
      comm.barrierSync();
      const t0 = performance.now();
      const outs = cs.map((c, l) => c.exchangeSync(comm, g[l]!).sum);
      comm.barrierSync();
      times.push((performance.now() - t0) / 1000);
      if (rep === 0) approx.push(...outs);
    }
    if (rep === 0) residual = cs.map((c) => c.residual!);
  }
  const cat = (xs: Float32Array[]) => {
    const out = new Float32Array(xs.reduce((s, x) => s + x.length, 0));
    let o = 0;
    for (const x of xs) out.set(x, (o += x.length) - x.length);
    return out;
  };
  if (comm.rank === 0) Deno.writeFileSync(`${dir}/lmkit_approx.bin`, bytes(cat(approx)));
  Deno.writeFileSync(`${dir}/lmkit_residual_${comm.rank}.bin`, bytes(cat(residual)));
  if (comm.rank === 0) console.log(JSON.stringify({ step_s: times, median_step_s: median(times) }));
  comm.close();
  Deno.exit(0);
}

const ROOT = new URL("../", import.meta.url).pathname;
const rank = Number(a.rank), steps = Number(a.steps), repeat = Number(a.repeat), world = 2;
const config = parseLlamaConfig(
  Deno.readTextFileSync(`${ROOT}data/models/tinyllama-bytes/config.json`),
);
const shapes = linearShapes(config);
const layers: LayerSpec[] = [];
for (let l = 0; l < config.numLayers; l++) {
  for (const [n, [rows, cols]] of Object.entries(shapes)) {
    const kind = n.endsWith("_proj") && ["q", "k", "v", "o"].includes(n[0]!) ? "self_attn" : "mlp";
    layers.push({ name: `model.layers.${l}.${kind}.${n}.weight`, rows, cols, rank });
  }
}
const params = layers.reduce((s, l) => s + l.rows * l.cols, 0);
console.log(
  `PowerSGD rank ${rank}: ${layers.length} projections of tinyllama-bytes (${params} values, ${
    (params * 4 / 2 ** 20).toFixed(1)
  } MiB per rank and step), ${world} ranks, ${steps} steps × ${repeat} repeats, 1 thread per rank`,
);
let t0 = performance.now();
const grads = await realGradients(layers, steps, world, 256);
console.log(`gradients (lossAndGrad, cpu): ${((performance.now() - t0) / 1000).toFixed(1)} s`);
const q0 = startQs(layers, 11);
const dir = Deno.makeTempDirSync({ prefix: "powersgd_bench_" });
try {
  writePeerInput(dir, layers, grads, q0);
  t0 = performance.now();
  const w = await mpirunDeno(world, [
    "--no-prompt",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-ffi=ffi/build",
    "bench/powersgd_bench.ts",
    "--worker",
    "--dir",
    dir,
    "--repeat",
    String(repeat),
  ], { limitS: 300, env: { OMP_NUM_THREADS: "1" } });
  if (w.code !== 0) throw new Error(`The lmkit ranks failed:\n${w.stdout}${w.stderr}`);
  const lm = JSON.parse(w.stdout.trim().split("\n").at(-1)!);
  let torch: Record<string, unknown> | null = null;
  try {
    torch = await runTorchPeer(dir, dir, ["--repeat", String(repeat), "--threads", "1"]);
  } catch (e) {
    console.log(`torch column skipped: ${(e as Error).message.split("\n")[0]}`);
  }
  const sizes = layers.map((l) => l.rows * l.cols);
  const lmA = f32(`${dir}/lmkit_approx.bin`);
  const tA = torch ? f32(`${dir}/approx.bin`) : null;
  let worst = 0, num = 0, errL = 0, errT = 0, den = 0, o = 0;
  for (let s = 0; s < steps; s++) {
    for (const [l, n] of sizes.entries()) {
      const raw = simulateAllReduce(grads[s]!.map((g) => g[l]!));
      let dd = 0, nn = 0;
      for (let i = 0; i < n; i++, o++) {
        const t = tA ? tA[o]! * world : 0;
        errL += (lmA[o]! - raw[i]!) ** 2;
        errT += (t - raw[i]!) ** 2;
        den += raw[i]! ** 2;
        dd += (lmA[o]! - t) ** 2;
        nn += t * t;
      }
      num += dd;
      if (tA) worst = Math.max(worst, Math.sqrt(dd / nn));
    }
  }
  const errNorm = tA ? tA.reduce((acc, v) => acc + (v * world) ** 2, 0) : 1;
  let resWorst = 0;
  if (torch) {
    const tR = f32(`${dir}/residual.bin`), per = tR.length / world;
    for (let r = 0; r < world; r++) {
      const mine = f32(`${dir}/lmkit_residual_${r}.bin`);
      let dd = 0, nn = 0;
      for (let i = 0; i < per; i++) {
        dd += (mine[i]! - tR[r * per + i]!) ** 2;
        nn += tR[r * per + i]! ** 2;
      }
      resWorst = Math.max(resWorst, Math.sqrt(dd / nn));
    }
  }
  console.log(
    "\n| exchange (2 ranks) | compression error ‖Σ̂ − Σ‖/‖Σ‖ | median step | fastest step | steps timed |",
  );
  console.log("|---|---|---|---|---|");
  console.log(
    `| lmkit PowerSGD (mpi) | ${Math.sqrt(errL / den).toFixed(4)} | ${
      (lm.median_step_s * 1000).toFixed(1)
    } ms | ${(Math.min(...lm.step_s) * 1000).toFixed(1)} ms | ${lm.step_s.length} |`,
  );
  if (torch) {
    console.log(
      `| torch powerSGD_hook (gloo) ${torch.torch} | ${Math.sqrt(errT / den).toFixed(4)} | ${
        ((torch.median_step_s as number) * 1000).toFixed(1)
      } ms | ${(Math.min(...(torch.step_s as number[])) * 1000).toFixed(1)} ms | ${
        (torch.step_s as number[]).length
      } |`,
    );
    console.log(
      `\nlmkit vs 2 × torch: relative L2 difference ${
        Math.sqrt(num / errNorm).toExponential(1)
      } over all layers and steps, worst layer ${
        worst.toExponential(1)
      }; residuals after the last step: worst rank ${
        resWorst.toExponential(1)
      }; torch's ranks equal: ${torch.approx_equal_on_ranks}`,
    );
  }
  console.log(`mpirun world wall time (start-up included): ${w.seconds.toFixed(1)} s`);
} finally {
  Deno.removeSync(dir, { recursive: true });
}

// throughput in one process: a 1024 × 1024 gradient (4 MiB), a world of one
const comm = createCommunicator("single");
const R = 1024, C = 1024, g = new Rng(3).normalArray(R * C), dst = new Float32Array(R * C);
const time = (f: () => void, reps: number) => {
  f();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    f();
    ts.push((performance.now() - t) / 1000);
  }
  return Math.min(...ts); // the best of reps: this machine is shared and noisy
};
const gbs = (s: number) => (R * C * 4 / s / 1e9).toFixed(2);
const rows: [string, number][] = [
  ["memcpy (Float32Array.set)", time(() => dst.set(g), 50)],
  ...[1, 4, 16].map((r): [string, number] => {
    const c = new PowerSgdCompressor(R, C, { rank: r });
    return [`PowerSGD rank ${r}`, time(() => c.exchangeSync(comm, g), 5)];
  }),
  ...[0.001, 0.01, 0.1].map((d): [string, number] => {
    const c = new TopKCompressor(R * C, { density: d });
    return [`Top-K density ${d}`, time(() => c.exchangeSync(comm, g), 5)];
  }),
];
console.log(
  `\n| ${R}×${C} f32 gradient, one rank | best of 5 (memcpy: 50) | GB/s of gradient |\n|---|---|---|`,
);
for (const [name, s] of rows) console.log(`| ${name} | ${(s * 1000).toFixed(2)} ms | ${gbs(s)} |`);
comm.close();
