// Each collective's bandwidth through lmkit's mpi communicator (lib/comm/mpi.ts over
// ffi/build/liblmkit_mpi.so) against the same MPI collective called from a small C program
// (bench/comm_peer.c), in the same run. Goal: lmkit's overhead ≤ 5 % at 16 MiB.
//
//   deno run --no-prompt --allow-run=mpirun,mpicc --allow-read=ffi/build --allow-write=/tmp \
//     --allow-sys=loadavg \
//     bench/comm_bench.ts [--np 2[,4]] [--rounds 3] [--sizes 4096,262144,1048576,16777216]
//     [--reps R] [--ops allreduce_f32,…] [--json]
//
// (deno task bench-comm; the temp dir is the system's, /tmp unless TMPDIR says otherwise.) It
// compiles comm_peer.c with `mpicc -O2` into a temp dir, then runs, `--rounds` times, the C
// program and bench/_comm_rank.ts (`deno run --allow-ffi=ffi/build`), one after the other, each
// under `mpirun --allow-run-as-root --oversubscribe -np N`: C, lmkit, C, lmkit, … so that the
// machine's drift hits both alike. Per (collective, size), every round times R calls after a
// warmup, each call after a barrier; a call's time is the slowest rank's, a round's figure the
// median over its R calls, and the figure reported the median over rounds. lmkit runs its
// blocking form (`allReduceSync`, …) and its non-blocking one (`await allReduce(…)`) alternately
// in the same loop, with `out` buffers passed so that no call allocates.
//
// Bytes per call: the bytes of each rank's send buffer (all-reduce: the buffer, in place;
// all-gather: the n bytes each rank sends, it receives N·n; reduce-scatter: all N blocks of f32 it
// sends, it receives one; all-to-all: all N blocks it sends; broadcast: the buffer; barrier: 0).
// GB/s = those bytes / the median seconds per call / 1e9. Overhead = lmkit time / C time − 1.
// "C ±" is half the range of the C rounds' medians in % of their median: differences smaller
// than it are noise. Also printed: the C time of lmkit's per-call agreement (comm_peer.c's
// `agreement`), and the load average before and after each run (other work on the machine).
// Skips with one printed reason when mpirun, mpicc or the library is absent.
import { parseArgs } from "node:util";

const ROOT = new URL("../", import.meta.url).pathname;
const PEER = new URL("./comm_peer.c", import.meta.url).pathname;
const LIB = "ffi/build/liblmkit_mpi.so";
const OPS = [
  "allreduce_f32",
  "allreduce_f64",
  "allgather",
  "reduce_scatter_f32",
  "alltoall",
  "broadcast",
  "barrier",
];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    np: { type: "string", default: "2" },
    rounds: { type: "string", default: "3" },
    sizes: { type: "string", default: "4096,262144,1048576,16777216" },
    reps: { type: "string", default: "0" },
    ops: { type: "string", default: [...OPS, "agreement"].join(",") },
    json: { type: "boolean", default: false },
  },
});
const nps = values.np.split(",").map(Number);
const rounds = Number(values.rounds);
if (
  !nps.every((n) => Number.isInteger(n) && n >= 1) || !(Number.isInteger(rounds) && rounds >= 1)
) {
  throw new RangeError(`--np '${values.np}' and --rounds '${values.rounds}' must be whole numbers`);
}
const log = (s: string) => console.error(`comm bench: ${s}`);
/** The 1-minute load average (NaN without --allow-sys=loadavg). */
const load = (): number => {
  try {
    return Deno.loadavg()[0] ?? NaN;
  } catch {
    return NaN;
  }
};

/** Runs a command; null when it is not installed. */
async function run(
  cmd: string,
  args: string[],
  limitS = 600,
): Promise<{ code: number; out: string; err: string } | null> {
  let child;
  try {
    child = new Deno.Command(cmd, {
      args,
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  const timer = setTimeout(() => child.kill("SIGTERM"), limitS * 1000);
  const o = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

async function skipReason(): Promise<string> {
  if (!(await run("mpirun", ["--version"]))) return "mpirun is not installed (openmpi-bin)";
  if (!(await run("mpicc", ["--version"]))) return "mpicc is not installed (libopenmpi-dev)";
  try {
    await Deno.stat(`${ROOT}${LIB}`);
  } catch {
    return `${LIB} is not built (deno task build)`;
  }
  return "";
}

const skip = await skipReason();
if (skip) {
  console.log(`skipped the comm bench: ${skip}`);
  Deno.exit(0);
}

interface Line {
  impl: string;
  op: string;
  bytes: number;
  np: number;
  reps: number;
  median_s: number;
  min_s: number;
}

let tmp: string;
try {
  tmp = await Deno.makeTempDir({ prefix: "lmkit_comm_bench_" });
} catch (e) {
  if (!(e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied)) throw e;
  console.log(
    `skipped the comm bench: cannot create a temp dir (${(e as Error).message}); grant ` +
      "--allow-write to the system's temp dir (TMPDIR or /tmp)",
  );
  Deno.exit(0);
}
const results: Line[] = [];
const loads: number[] = [load()];
try {
  const exe = `${tmp}/comm_peer`;
  const cc = await run("mpicc", ["-O2", "-o", exe, PEER]);
  if (!cc || cc.code !== 0) throw new Error(`mpicc failed:\n${cc?.err}`);
  const common = ["--sizes", values.sizes, "--reps", values.reps, "--ops", values.ops];
  const mpirun = ["--allow-run-as-root", "--oversubscribe"];
  const lmkit = [Deno.execPath(), "run", "--no-prompt", "--allow-ffi=ffi/build"];
  for (let round = 1; round <= rounds; round++) {
    for (const np of nps) {
      for (
        const [name, cmd] of [
          ["C", [exe]],
          ["lmkit", [...lmkit, "bench/_comm_rank.ts"]],
        ] as const
      ) {
        const t0 = performance.now();
        const r = await run("mpirun", [...mpirun, "-np", String(np), ...cmd, ...common]);
        if (!r || r.code !== 0) {
          throw new Error(`${name} ranks (np ${np}) failed (status ${r?.code}):\n${r?.err}`);
        }
        const lines = r.out.split("\n").filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as Line);
        results.push(...lines);
        loads.push(load());
        log(
          `round ${round}/${rounds}, np ${np}, ${name}: ${lines.length} figures in ${
            ((performance.now() - t0) / 1000).toFixed(1)
          } s`,
        );
      }
    }
  }
} finally {
  await Deno.remove(tmp, { recursive: true });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b), n = s.length;
  return n % 2 ? s[n >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
};
const perRound = (impl: string, op: string, bytes: number, np: number) =>
  results.filter((l) => l.impl === impl && l.op === op && l.bytes === bytes && l.np === np)
    .map((l) => l.median_s);
/** The median over rounds of each round's median seconds per call. */
const seconds = (impl: string, op: string, bytes: number, np: number) => {
  const xs = perRound(impl, op, bytes, np);
  return xs.length ? median(xs) : NaN;
};
/** Half the range of the rounds' medians, in % of their median: the run's noise. */
const spread = (impl: string, op: string, bytes: number, np: number) => {
  const xs = perRound(impl, op, bytes, np);
  return (50 * (Math.max(...xs) - Math.min(...xs))) / median(xs);
};

interface Row {
  np: number;
  op: string;
  bytes: number;
  c_s: number;
  sync_s: number;
  async_s: number;
  c_gbs: number;
  sync_gbs: number;
  async_gbs: number;
  sync_overhead_pct: number;
  async_overhead_pct: number;
  /** ± half the range of the rounds' medians, % of the median */
  c_spread_pct: number;
  sync_spread_pct: number;
}
const rows: Row[] = [];
const keys = new Set(results.map((l) => `${l.np}|${l.op}|${l.bytes}`));
for (const np of nps) {
  for (const op of OPS) {
    const sizes = [...keys].filter((k) => k.startsWith(`${np}|${op}|`))
      .map((k) => Number(k.split("|")[2])).sort((a, b) => a - b);
    for (const bytes of sizes) {
      const c = seconds("c", op, bytes, np), s = seconds("lmkit-sync", op, bytes, np);
      const a = seconds("lmkit-async", op, bytes, np);
      const gbs = (t: number) => (bytes > 0 ? bytes / t / 1e9 : NaN);
      rows.push({
        np,
        op,
        bytes,
        c_s: c,
        sync_s: s,
        async_s: a,
        c_gbs: gbs(c),
        sync_gbs: gbs(s),
        async_gbs: gbs(a),
        sync_overhead_pct: 100 * (s / c - 1),
        async_overhead_pct: 100 * (a / c - 1),
        c_spread_pct: spread("c", op, bytes, np),
        sync_spread_pct: spread("lmkit-sync", op, bytes, np),
      });
    }
  }
}

const human = (b: number) =>
  b >= 1 << 20 ? `${b / (1 << 20)} MiB` : b >= 1024 ? `${b / 1024} KiB` : `${b} B`;
const time = (t: number) => t >= 1e-3 ? `${(t * 1e3).toFixed(2)} ms` : `${(t * 1e6).toFixed(1)} µs`;
const bw = (g: number) => Number.isFinite(g) ? g.toFixed(2) : "–";
const pct = (p: number) => `${p >= 0 ? "+" : ""}${p.toFixed(1)} %`;
const head = [
  "np",
  "collective",
  "bytes/rank",
  "C time",
  "C GB/s",
  "C ±",
  "lmkit sync GB/s",
  "lmkit async GB/s",
  "sync overhead",
  "async overhead",
];
const table = [
  head,
  ...rows.map((r) => [
    String(r.np),
    r.op,
    human(r.bytes),
    time(r.c_s),
    bw(r.c_gbs),
    `${r.c_spread_pct.toFixed(0)} %`,
    r.bytes ? bw(r.sync_gbs) : time(r.sync_s),
    r.bytes ? bw(r.async_gbs) : time(r.async_s),
    pct(r.sync_overhead_pct),
    pct(r.async_overhead_pct),
  ]),
];
const widths = head.map((_, j) => Math.max(...table.map((r) => r[j]!.length)));
console.log(
  `\nlmkit mpi communicator vs the same MPI call from C (median of ${rounds} rounds; bytes/rank = ` +
    "each rank's send buffer; barrier: time per call)\n",
);
for (const [i, r] of table.entries()) {
  console.log(
    `| ${r.map((c, j) => j < 2 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!)).join(" | ")} |`,
  );
  if (i === 0) {
    console.log(
      `|${
        widths.map((w, j) => j < 2 ? `:${"-".repeat(w + 1)}` : `${"-".repeat(w + 1)}:`).join("|")
      }|`,
    );
  }
}
const big = Math.max(...rows.map((r) => r.bytes));
const atBig = rows.filter((r) => r.bytes === big);
if (atBig.length) {
  const over = atBig.filter((r) => r.sync_overhead_pct > 5 || r.async_overhead_pct > 5);
  console.log(
    `\nat ${human(big)}: ${
      over.length === 0
        ? "every collective within 5 % of C, both forms"
        : `over 5 %: ${
          over.map((r) =>
            `${r.op} (np ${r.np}: sync ${pct(r.sync_overhead_pct)}, async ${
              pct(r.async_overhead_pct)
            })`
          ).join("; ")
        }`
    }`,
  );
}
for (const np of nps) {
  const ag = seconds("c", "agreement", 0, np);
  if (Number.isFinite(ag)) {
    console.log(
      `np ${np}: lmkit's agreement before every call (MPI_Iallreduce of 16 int64, polled) costs ` +
        `${(ag * 1e6).toFixed(1)} µs from C`,
    );
  }
}
const busy = Math.max(...loads);
console.log(
  `load average (1 min) during the run: ${loads.map((l) => l.toFixed(1)).join(", ")}${
    busy > nps[0]! + 1 ? ` — the machine ran other work; the figures are noisy` : ""
  }`,
);
if (values.json) { for (const r of rows) console.log(JSON.stringify(r)); }
