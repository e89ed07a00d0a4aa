// Kernel benchmarks (`deno task bench`). Groups use the ts backend as baseline where it finishes
// in seconds; above that the project's own C kernel is the baseline. OpenBLAS is also called
// directly through Deno.dlopen (no lmkit code in between) so the cpu backend can be read against
// it. GFLOP/s for every case, measured from the same runs, is printed at the end.
import { cpu } from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { gramAccumulate } from "../lib/kernels/gram.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { obsPrepare } from "../lib/kernels/obs.ts";

const rng = new Rng(3);
const randn = (r: number, c: number) => new Matrix(r, c, rng.normalArray(r * c));
const lib = cpu();

const OPENBLAS = {
  cblas_sgemm: {
    // order, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
} as const;
let openblas: Deno.DynamicLibrary<typeof OPENBLAS> | undefined;
try {
  openblas = Deno.dlopen("libopenblas.so.0", OPENBLAS);
} catch {
  console.log(
    "OpenBLAS (libopenblas.so.0) not found: its rows are skipped; `apt-get install libopenblas0-pthread` adds them",
  );
}

const stats = new Map<string, { flops: number; ms: number; calls: number; best: number }>();
function bench(
  group: string,
  name: string,
  flops: number,
  fn: () => void,
  opts: { baseline?: boolean; n?: number | undefined } = {},
) {
  const key = `${group} | ${name}`;
  Deno.bench({
    name,
    group,
    baseline: opts.baseline ?? false,
    ...(opts.n ? { n: opts.n, warmup: 1 } : {}),
    fn() {
      const t = performance.now();
      fn();
      const dt = performance.now() - t;
      const s = stats.get(key) ?? { flops, ms: 0, calls: 0, best: Infinity };
      s.ms += dt;
      s.best = Math.min(s.best, dt);
      s.calls++;
      stats.set(key, s);
    },
  });
}
function withBlas<T>(mode: 0 | 1, f: () => T): T {
  lib.lk_cpu_set_blas(mode);
  try {
    return f();
  } finally {
    lib.lk_cpu_set_blas(1);
  }
}

for (const n of [256, 512, 1024, 2048]) {
  const a = randn(n, n), b = randn(n, n), c = new Float32Array(n * n), out = Matrix.zeros(n, n);
  const group = `matmul f32 ${n}³`, flops = 2 * n ** 3;
  bench(group, "ts", flops, () => matmul(a, b, { backend: "ts" }), {
    baseline: true,
    n: n >= 1024 ? (n === 2048 ? 1 : 2) : undefined,
  });
  bench(
    group,
    "cpu (own C kernel)",
    flops,
    () => withBlas(0, () => matmul(a, b, { backend: "cpu", out })),
  );
  if (openblas) {
    bench(
      group,
      "cpu backend (OpenBLAS)",
      flops,
      () => withBlas(1, () => matmul(a, b, { backend: "cpu", out })),
    );
    const ob = openblas;
    bench(
      group,
      "OpenBLAS sgemm called directly",
      flops,
      () => ob.symbols.cblas_sgemm(101, 111, 111, n, n, n, 1, a.data, n, b.data, n, 0, c, n),
    );
  }
}

for (const [rows, n] of [[2048, 512], [4096, 1024]] as const) {
  const x = randn(rows, n);
  const group = `gram H += XᵀX, X ${rows}×${n}`, flops = rows * n * n; // symmetric half
  bench(
    group,
    "ts (f64)",
    flops,
    () => gramAccumulate(Matrix.zeros64(n, n), x, { backend: "ts" }),
    { baseline: true, n: 2 },
  );
  for (const acc of ["f32", "f64"] as const) {
    const mk = () => acc === "f64" ? Matrix.zeros64(n, n) : Matrix.zeros(n, n);
    bench(
      group,
      `cpu own (${acc})`,
      flops,
      () => withBlas(0, () => gramAccumulate(mk() as Matrix, x, { backend: "cpu" })),
    );
    if (openblas) {
      bench(
        group,
        `cpu OpenBLAS syrk (${acc})`,
        flops,
        () => withBlas(1, () => gramAccumulate(mk() as Matrix, x, { backend: "cpu" })),
      );
    }
  }
}

for (const n of [512, 1024, 2048, 4096]) {
  const x = randn(2 * n, n), h = Matrix.zeros64(n, n);
  gramAccumulate(h, x, { backend: "cpu", alpha: 1 / n, beta: 0 });
  const group = `OBS prepare (Cholesky-inverse) f64 ${n}×${n}`;
  const flops = (2 / 3) * n ** 3; // one Cholesky + one triangular inverse
  const reps = n >= 2048 ? 2 : undefined;
  if (n <= 1024) {
    bench(group, "ts (SparseGPT route)", flops, () => obsPrepare(h, { backend: "ts" }), {
      baseline: true,
      n: 1,
    });
  }
  bench(group, "cpu own", flops, () => withBlas(0, () => obsPrepare(h, { backend: "cpu" })), {
    baseline: n > 1024,
    ...(reps ? { n: reps } : {}),
  });
  if (openblas) {
    bench(
      group,
      "cpu LAPACK dpotrf + dtrtri",
      flops,
      () => withBlas(1, () => obsPrepare(h, { backend: "cpu" })),
      reps ? { n: reps } : {},
    );
  }
}

globalThis.addEventListener("unload", () => {
  // On a 2-core machine a V8 GC thread or another library's spinning threads can take a core for
  // a while; the best call shows the kernel itself, the mean what a caller saw in this run.
  console.log(`\nGFLOP/s per case${" ".repeat(64)}    mean     best`);
  for (const [key, s] of stats) {
    const g = (ms: number) => (s.flops / ms / 1e6).toFixed(1).padStart(8);
    console.log(`  ${key.padEnd(78)} ${g(s.ms / s.calls)} ${g(s.best)}`);
  }
});
