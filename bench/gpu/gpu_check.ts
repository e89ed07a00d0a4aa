// GPU benchmark: our CUDA kernels with data resident on the device, checked against the cpu
// backend on the same inputs, then timed; PyTorch peers (bench/gpu/torch_peers.py) read from
// the JSON file named by --peers. Prints a table last. Run through bench/gpu/check.sh.
import { relativeL2Error } from "../../lib/core/numeric.ts";
import { parseArgs } from "@std/cli";
import { check, cuda, cudaSync, DeviceBuffer, libraryInfo } from "../../ffi/mod.ts";
import { Matrix, type MatrixData } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { gramAccumulate } from "../../lib/kernels/gram.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import { obsPrepare } from "../../lib/kernels/obs.ts";
import { topk } from "../../lib/kernels/topk.ts";

const { values } = parseArgs({
  options: { peers: { type: "string" }, out: { type: "string" }, quick: { type: "boolean" } },
});
const lib = cuda();
const rng = new Rng(7);
const randn = (r: number, c: number) => new Matrix(r, c, rng.normalArray(r * c));

/** Median device time in ms of `run`, with `prep` (untimed) before each repetition. */
function timeCuda(run: () => void, prep: () => void = () => {}, reps = 10): number {
  prep();
  run();
  cudaSync();
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    prep();
    cudaSync();
    run();
    ts.push(cudaSync());
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1] as number;
}

interface Row {
  op: string;
  shape: string;
  ms: number;
  gflops: number;
  relErrVsCpu: number;
  cpuMs: number;
}
const rows: Row[] = [];
const quick = values.quick ?? false;
const N = quick ? 1024 : 4096;

// matmul
for (const transB of [false, true]) {
  const a = randn(N, N), b = randn(N, N);
  const t0 = performance.now();
  const want = matmul(a, b, { backend: "cpu", transB });
  const cpuMs = performance.now() - t0;
  const got = matmul(a, b, { backend: "cuda", transB });
  using da = DeviceBuffer.from(a.data);
  using db = DeviceBuffer.from(b.data);
  using dc = DeviceBuffer.alloc("f32", N * N);
  const ms = timeCuda(() =>
    check(lib, lib.lk_cuda_matmul_f32(da.handle, db.handle, dc.handle, N, N, N, transB ? 1 : 0))
  );
  rows.push({
    op: transB ? "matmul A·Bᵀ f32" : "matmul A·B f32",
    shape: `${N}³`,
    ms,
    gflops: 2 * N ** 3 / ms / 1e6,
    relErrVsCpu: relativeL2Error(got.data, want.data),
    cpuMs,
  });
}

// Gram
for (const acc of ["f32", "f64"] as const) {
  const R = 2 * N, x = randn(R, N);
  const mk = (): Matrix<MatrixData> => acc === "f64" ? Matrix.zeros64(N, N) : Matrix.zeros(N, N);
  const t0 = performance.now();
  const want = gramAccumulate(mk(), x, { backend: "cpu" });
  const cpuMs = performance.now() - t0;
  const got = gramAccumulate(mk(), x, { backend: "cuda" });
  using dx = DeviceBuffer.from(x.data);
  using dh = DeviceBuffer.alloc(acc, N * N);
  const fn = acc === "f64" ? lib.lk_cuda_gram_f64 : lib.lk_cuda_gram_f32;
  const ms = timeCuda(() => check(lib, fn(dx.handle, R, N, dh.handle, 1, 0)));
  rows.push({
    op: `gram XᵀX, ${acc} H`,
    shape: `X ${R}×${N}`,
    ms,
    gflops: R * N * N / ms / 1e6,
    relErrVsCpu: relativeL2Error(got.data, want.data),
    cpuMs,
  });
}

// OBS preparation
for (const n of quick ? [1024] : [1024, 4096]) {
  const x = randn(2 * n, n);
  const h = Matrix.zeros64(n, n);
  gramAccumulate(h, x, { backend: "cuda", alpha: 1 / n, beta: 0 });
  const t0 = performance.now();
  const want = obsPrepare(h, { backend: "cpu" });
  const cpuMs = performance.now() - t0;
  const got = obsPrepare(h, { backend: "cuda" });
  using dh = DeviceBuffer.alloc("f64", n * n);
  const info = new Float64Array(2);
  const ms = timeCuda(
    () => check(lib, lib.lk_cuda_obs_prepare_f64(dh.handle, n, 0.01, 4, info, 2)),
    () => dh.upload(h.data),
    5,
  );
  // potrf n³/3 + trsm against the identity n³
  rows.push({
    op: "obs prepare f64",
    shape: `H ${n}×${n}`,
    ms,
    gflops: (4 / 3) * n ** 3 / ms / 1e6,
    relErrVsCpu: relativeL2Error(got.u.data, want.u.data),
    cpuMs,
  });
}

// top-k
for (const [r, c, frac] of [[N, N, 0.1], [1, quick ? 1 << 20 : 1 << 24, 0.01]] as const) {
  const x = randn(r, c), k = Math.max(1, Math.round(c * frac));
  const t0 = performance.now();
  const want = topk(x, k, { backend: "cpu" });
  const cpuMs = performance.now() - t0;
  const got = topk(x, k, { backend: "cuda" });
  let mismatches = 0;
  for (let i = 0; i < want.indices.length; i++) {
    mismatches += want.indices[i] !== got.indices[i] ? 1 : 0;
  }
  using dx = DeviceBuffer.from(x.data);
  using di = DeviceBuffer.alloc("i32", r * k);
  using dv = DeviceBuffer.alloc("f32", r * k);
  using dt = DeviceBuffer.alloc("f32", r);
  const ms = timeCuda(() =>
    check(lib, lib.lk_cuda_topk_f32(dx.handle, r, c, k, 1, di.handle, dv.handle, dt.handle))
  );
  rows.push({
    op: "top-k |x| (index mismatches as error)",
    shape: `${r}×${c}, k=${k}`,
    ms,
    gflops: r * c * 4 / ms / 1e6,
    relErrVsCpu: mismatches,
    cpuMs,
  });
}

const peers: Record<string, number> = values.peers
  ? JSON.parse(await Deno.readTextFile(values.peers))
  : {};
const peerKey = (r: Row) => `${r.op}|${r.shape}`;
const lines = [
  `device: ${JSON.stringify(libraryInfo(lib))}`,
  "",
  "| op | shape | lmkit cuda ms | GFLOP/s (top-k: GB/s) | PyTorch ms | torch/lmkit | error vs cpu | cpu backend ms |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => {
    const p = peers[peerKey(r)];
    return `| ${r.op} | ${r.shape} | ${r.ms.toFixed(3)} | ${r.gflops.toFixed(0)} | ${
      p ? p.toFixed(3) : "—"
    } | ${p ? (p / r.ms).toFixed(2) : "—"} | ${r.relErrVsCpu.toExponential(1)} | ${
      r.cpuMs.toFixed(0)
    } |`;
  }),
];
if (values.out) await Deno.writeTextFile(values.out, JSON.stringify({ rows, peers }, null, 2));
console.log(lines.join("\n"));
