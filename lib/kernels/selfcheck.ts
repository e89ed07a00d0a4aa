/**
 * The kernel self-check: which backends load here, each native kernel's agreement with its
 * TypeScript reference on fresh random inputs, and a small speed table (ts as the baseline).
 *
 * @module
 */
import {
  availableBackends,
  type Backend,
  cpuLibrary,
  cudaLibrary,
  libraryInfo,
} from "../../ffi/mod.ts";
import { Matrix } from "../core/matrix.ts";
import { relativeL2Error } from "../core/numeric.ts";
import { Rng } from "../core/rng.ts";
import { gramAccumulate } from "./gram.ts";
import { matmul } from "./matmul.ts";
import { obsPrepare } from "./obs.ts";
import { topk } from "./topk.ts";

/** One kernel on one backend. */
export interface KernelCheckRow {
  /** What the kernel computes. */
  kernel: string;
  /** The problem size. */
  shape: string;
  /** The backend that ran it. */
  backend: Backend;
  /** ‖out − ts‖₂ / ‖ts‖₂. */
  relErrVsTs: number;
  /** Milliseconds per call. */
  ms: number;
  /** Achieved GFLOP/s. */
  gflops: number;
  /** The ts time over this backend's. */
  speedupVsTs: number;
}

/** What {@linkcode kernelSelfCheck} found. */
export interface KernelSelfCheck {
  /** Each backend: whether it runs here, else why not. */
  backends: Record<Backend, { ok: boolean; reason: string }>;
  /** Build facts of each loaded native library. */
  libraries: Record<string, unknown>;
  /** Every kernel on ts and on each native backend. */
  kernels: KernelCheckRow[];
  /** The largest relative error of a native kernel against ts. */
  worstRelErr: number;
  /** Whether every native kernel agrees with ts to 1e-4. */
  ok: boolean;
}

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

/**
 * Runs every kernel case on ts and on each native backend that loads, with seed `seed`.
 *
 * @example
 * ```ts
 * import { kernelSelfCheck } from "./selfcheck.ts";
 * const r = kernelSelfCheck({ seed: 1, minMs: 1 });
 * if (!r.ok || r.kernels.length < 5) throw new Error(JSON.stringify(r.worstRelErr));
 * ```
 */
export function kernelSelfCheck(options: { seed?: number; minMs?: number } = {}): KernelSelfCheck {
  const { seed = 1, minMs = 150 } = options;
  const avail = availableBackends();
  const libraries: Record<string, unknown> = {};
  const cpuLib = cpuLibrary().lib, cudaLib = cudaLibrary().lib;
  if (cpuLib) libraries.cpu = libraryInfo(cpuLib);
  if (cudaLib) libraries.cuda = libraryInfo(cudaLib);
  const natives = (["cpu", "cuda"] as const).filter((b) => avail[b].ok);
  const kernels: KernelCheckRow[] = [];
  for (const c of cases(new Rng(seed))) {
    const ref = c.run("ts");
    const tsMs = time(() => c.run("ts"), minMs);
    const row = (backend: Backend, relErrVsTs: number, ms: number): KernelCheckRow => ({
      kernel: c.kernel,
      shape: c.shape,
      backend,
      relErrVsTs,
      ms,
      gflops: c.flops / ms / 1e6,
      speedupVsTs: tsMs / ms,
    });
    kernels.push(row("ts", 0, tsMs));
    for (const b of natives) {
      kernels.push(row(b, relativeL2Error(c.run(b), ref), time(() => c.run(b), minMs)));
    }
  }
  const worstRelErr = Math.max(...kernels.map((r) => r.relErrVsTs));
  return { backends: avail, libraries, kernels, worstRelErr, ok: worstRelErr < 1e-4 };
}

/** The Markdown table of a self-check's rows. */
export function kernelCheckTable(rows: readonly KernelCheckRow[]): string {
  return [
    "| kernel | shape | backend | rel. error vs ts | ms | GFLOP/s | speed-up vs ts |",
    "|---|---|---|---|---|---|---|",
    ...rows.map((r) =>
      `| ${r.kernel} | ${r.shape} | ${r.backend} | ${r.relErrVsTs.toExponential(1)} | ${
        r.ms.toFixed(2)
      } | ${r.gflops.toFixed(1)} | ${r.speedupVsTs.toFixed(1)}× |`
    ),
  ].join("\n");
}
