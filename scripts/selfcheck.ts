#!/usr/bin/env -S deno run --no-prompt --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND --allow-read --allow-write=out
/**
 * Kernel self-check: which backends load here, each kernel's agreement with its TypeScript
 * reference on fresh random inputs, and a small speed table. Writes results.json, kernels.csv,
 * speed.csv and report.md to --out.
 *
 * @module
 */
import { relativeL2Error } from "../lib/core/numeric.ts";
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import {
  availableBackends,
  type Backend,
  cpuLibrary,
  cudaLibrary,
  libraryInfo,
} from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { gramAccumulate } from "../lib/kernels/gram.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { obsPrepare } from "../lib/kernels/obs.ts";
import { topk } from "../lib/kernels/topk.ts";
import { writeOutputs } from "../lib/io/output.ts";

const USAGE = `
selfcheck.ts — which kernel backends run here, their agreement with the TypeScript
reference, and their speed.

Usage: deno task demo [-- options]
       scripts/selfcheck.ts [options]

Options:
  --out DIR     output folder (default out/selfcheck/<run-id>)
                a chosen folder must be new or empty, unless --overwrite
  --seed N      random seed (default 1)
  --json        also print results.json to stdout
  -h, --help    this text
`;

function time(fn: () => void, minMs = 150): number {
  fn(); // warm-up
  let reps = 0;
  const t0 = performance.now();
  let el = 0;
  do {
    fn();
    reps++;
    el = performance.now() - t0;
  } while (el < minMs && reps < 50);
  return el / reps;
}

interface Case {
  kernel: string;
  shape: string;
  flops: number;
  run: (b: Backend) => ArrayLike<number>;
}

function cases(rng: Rng): Case[] {
  const randn = (r: number, c: number) => new Matrix(r, c, rng.normalArray(r * c));
  const a = randn(256, 256), b = randn(256, 256);
  const x = randn(512, 256);
  const h = Matrix.zeros64(192, 192);
  gramAccumulate(h, randn(400, 192), { backend: "ts", alpha: 2 / 400, beta: 0 });
  const t = randn(256, 4096);
  return [
    {
      kernel: "matmul A·B",
      shape: "256×256×256",
      flops: 2 * 256 ** 3,
      run: (be) => matmul(a, b, { backend: be }).data,
    },
    {
      kernel: "matmul A·Bᵀ",
      shape: "256×256×256",
      flops: 2 * 256 ** 3,
      run: (be) => matmul(a, b, { backend: be, transB: true }).data,
    },
    {
      kernel: "gram f64 H += XᵀX",
      shape: "X 512×256",
      flops: 512 * 256 * 256,
      run: (be) => gramAccumulate(Matrix.zeros64(256, 256), x, { backend: be }).data,
    },
    {
      kernel: "obs prepare (U of H⁻¹)",
      shape: "H 192×192",
      flops: (2 / 3) * 192 ** 3,
      run: (be) => obsPrepare(h, { backend: be }).u.data,
    },
    {
      kernel: "top-k by magnitude, per row",
      shape: "256×4096, k=409",
      flops: 256 * 4096,
      run: (be) => topk(t, 409, { backend: be }).indices,
    },
  ];
}

await runScript({
  name: "selfcheck.ts",
  usage: USAGE,
  needs: [{ name: "ffi", path: "ffi/build" }],
}, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      ...RUN_FOLDER_FLAGS,
      seed: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  requirePermissions("selfcheck.ts", [{ name: "write", path: values.out ?? "out/selfcheck" }, {
    name: "read",
    path: values.out ?? "out/selfcheck",
  }]);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new RangeError(`--seed '${values.seed}' is not an integer`);
  const avail = availableBackends();
  const info: Record<string, unknown> = {};
  const cpuLib = cpuLibrary().lib, cudaLib = cudaLibrary().lib;
  if (cpuLib) info.cpu = libraryInfo(cpuLib);
  if (cudaLib) info.cuda = libraryInfo(cudaLib);

  console.log("backends:");
  for (const [b, s] of Object.entries(avail)) {
    const extra = info[b] ? ` ${JSON.stringify(info[b])}` : "";
    console.log(`  ${b.padEnd(5)} ${s.ok ? "available" : `unavailable: ${s.reason}`}${extra}`);
  }
  const natives = (["cpu", "cuda"] as const).filter((b) => avail[b].ok);
  const rows: Record<string, string | number>[] = [];
  for (const c of cases(new Rng(seed))) {
    const ref = c.run("ts");
    const tsMs = time(() => c.run("ts"));
    rows.push({
      kernel: c.kernel,
      shape: c.shape,
      backend: "ts",
      relErrVsTs: 0,
      ms: tsMs,
      gflops: c.flops / tsMs / 1e6,
      speedupVsTs: 1,
    });
    for (const b of natives) {
      const err = relativeL2Error(c.run(b), ref);
      const ms = time(() => c.run(b));
      rows.push({
        kernel: c.kernel,
        shape: c.shape,
        backend: b,
        relErrVsTs: err,
        ms,
        gflops: c.flops / ms / 1e6,
        speedupVsTs: tsMs / ms,
      });
    }
  }
  const fmt = (r: Record<string, string | number>) =>
    `| ${r.kernel} | ${r.shape} | ${r.backend} | ${(r.relErrVsTs as number).toExponential(1)} | ${
      (r.ms as number).toFixed(2)
    } | ${(r.gflops as number).toFixed(1)} | ${(r.speedupVsTs as number).toFixed(1)}× |`;
  const table = [
    "| kernel | shape | backend | rel. error vs ts | ms | GFLOP/s | speed-up vs ts |",
    "|---|---|---|---|---|---|---|",
    ...rows.map(fmt),
  ].join("\n");
  console.log(`\n${table}`);
  const worst = Math.max(...rows.map((r) => r.relErrVsTs as number));
  const ok = worst < 1e-4;
  console.log(
    `\n${ok ? "all native kernels agree with ts" : "DISAGREEMENT"} (worst relative error ${
      worst.toExponential(2)
    })`,
  );
  const results = { seed, backends: avail, libraries: info, kernels: rows, worstRelErr: worst, ok };
  const json = JSON.stringify(results, null, 2);
  const report = `# lmkit kernel self-check\n\nSeed ${seed}. Backends: ${
    Object.entries(avail).map(([b, s]) => `${b} ${s.ok ? "✓" : `✗ (${s.reason})`}`).join(", ")
  }.\n\n${table}\n\nTimes are per call and include host↔device copies on cuda.\n`;
  const columns = ["kernel", "shape", "backend", "relErrVsTs", "ms", "gflops", "speedupVsTs"];
  const files = await writeOutputs(await runFolder("selfcheck", values), {
    "results.json": json,
    "kernels.csv": stringify(rows, { columns }),
    "report.md": report,
  });
  console.log(`wrote ${files.join(", ")}`);
  if (values.json) console.log(json);
  if (!ok) Deno.exit(1);
});
