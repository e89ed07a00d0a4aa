// scripts/toxicity_stats.ts on the 4.5-million-comment bench input, one process against two MPI
// ranks (`--dist mpi`), end to end, in the same run. Goal: ≥ 1.8× on 2 cores.
//
//   deno run --no-prompt --allow-read=.,../shared/data,/tmp --allow-write=/tmp \
//     --allow-run=deno,mpirun --allow-sys=loadavg \
//     bench/toxicity_dist_bench.ts [--input FILE] [--keep]
//
// (deno task bench-toxicity-dist; the temp dir is the system's, /tmp unless TMPDIR says
// otherwise.) The input is bench/toxicity_bench.ts's: 4.5 million NDJSON comments resampled
// from the real texts (en SemEval-2021, de GermEval-2018, es UD PUD; nl, tr, ar from
// ../shared/data when there), the same generator and seed, written once to a temp dir (or
// `--input FILE`, a file written by an earlier run with `--keep`, is reused), with an event
// (2021-03-14, 1,000 bootstrap resamples) and a topic for each of the 60 communities. Then, one
// after the other, each timed from start to exit (wall):
//   1. deno run … scripts/toxicity_stats.ts …                        (one process, --dist single)
//   2. mpirun -np 2 deno run … scripts/toxicity_stats.ts … --dist mpi (two ranks)
//   3. mpirun -np 1 deno run … scripts/toxicity_stats.ts … --dist mpi (MPI's start-up and the
//      communicator's cost on one rank, against 1)
// and checks that 2 and 3 wrote the same tables as 1 byte for byte (every CSV; report.md and
// report.html but for their `Run:` line; summary.json but for `seconds` and `dist`). Speedup =
// the wall time of 1 / that of 2. The load average before and after each run is printed: above
// about 1 (1 and 3) or 2 (2) the machine ran other work and the speedup is not the program's. Skips with one printed reason when mpirun or the library is
// absent.
import { parseArgs } from "node:util";
import { benchComments, benchTexts } from "./_toxicity_input.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const { values } = parseArgs({
  args: Deno.args,
  options: { input: { type: "string" }, keep: { type: "boolean", default: false } },
});
const log = (s: string) => console.error(`toxicity dist bench: ${s}`);
/** The 1-minute load average (NaN without --allow-sys=loadavg). */
const load = (): number => {
  try {
    return Deno.loadavg()[0] ?? NaN;
  } catch {
    return NaN;
  }
};

async function installed(cmd: string): Promise<boolean> {
  try {
    await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}
const skip = !(await installed("mpirun"))
  ? "mpirun is not installed (openmpi-bin)"
  : !(await Deno.stat(`${ROOT}ffi/build/liblmkit_mpi.so`).then(() => true, () => false))
  ? "ffi/build/liblmkit_mpi.so is not built (deno task build)"
  : "";
if (skip) {
  console.log(`skipped the toxicity dist bench: ${skip}`);
  Deno.exit(0);
}

// ---- the input: bench/toxicity_bench.ts's generator, the same texts and seed ----

const N = 4_500_000;
const SHARED = "../shared/data";

const tmp = await Deno.makeTempDir({ prefix: "lmkit_toxicity_dist_" });
let keepTmp = values.keep;

/** Runs a command from the repository root; its wall seconds, exit status and output. */
async function timed(cmd: string, args: string[]) {
  const t0 = performance.now();
  const o = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const seconds = (performance.now() - t0) / 1000;
  const dec = new TextDecoder();
  return { seconds, code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

/** The files of `dir` with what may differ between runs taken out (see the header). */
async function tables(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    let text = await Deno.readTextFile(`${dir}/${e.name}`);
    if (e.name === "report.md" || e.name === "report.html") {
      text = text.split("\n").filter((l) => !l.startsWith("Run: ")).join("\n");
    } else if (e.name === "summary.json") {
      const j = JSON.parse(text);
      delete j.seconds, delete j.dist;
      text = JSON.stringify(j);
    }
    out.set(e.name, text);
  }
  return out;
}

/** The report's `Run:` line (the counting phase). */
async function runLine(dir: string): Promise<string> {
  const md = await Deno.readTextFile(`${dir}/report.md`);
  return md.split("\n").find((l) => l.startsWith("Run: "))?.slice(5) ?? "?";
}

try {
  const texts = await benchTexts(log);
  const langs = Object.keys(texts);
  let input = values.input;
  if (input) {
    log(`reusing ${input}`);
  } else {
    input = `${tmp}/comments.jsonl`;
    const t0 = performance.now();
    const file = await Deno.open(input, { write: true, create: true, truncate: true });
    await benchComments(texts, N).pipeTo(file.writable);
    const mb = (await Deno.stat(input)).size / 1e6;
    log(
      `wrote ${N / 1e6}M comments (${langs.join(", ")}; ${mb.toFixed(0)} MB) to ${input} in ${
        ((performance.now() - t0) / 1000).toFixed(1)
      } s`,
    );
  }
  const events = `${tmp}/events.csv`, topics = `${tmp}/topics.csv`;
  await Deno.writeTextFile(events, "event,date\ne,2021-03-14\n");
  await Deno.writeTextFile(
    topics,
    "community,topic\n" + Array.from({ length: 60 }, (_, i) => `r${i},t${i % 6}\n`).join(""),
  );
  const script = (out: string) => [
    "run",
    "--no-prompt",
    `--allow-read=data,${SHARED},${tmp},${input}`,
    `--allow-write=${tmp}`,
    "--allow-ffi=ffi/build",
    "scripts/toxicity_stats.ts",
    "--input",
    input!,
    "--language-field",
    "lang",
    "--languages",
    langs.join(","),
    "--events",
    events,
    "--topics",
    topics,
    "--out",
    `${tmp}/${out}`,
  ];
  const mpirun = (np: number, out: string) => [
    "--allow-run-as-root",
    "--oversubscribe",
    "-np",
    String(np),
    "deno",
    ...script(out),
    "--dist",
    "mpi",
  ];
  const runs = [
    { name: "1 process", out: "single", cmd: "deno", args: script("single") },
    { name: "mpirun -np 2", out: "np2", cmd: "mpirun", args: mpirun(2, "np2") },
    { name: "mpirun -np 1", out: "np1", cmd: "mpirun", args: mpirun(1, "np1") },
  ];
  const results: { name: string; seconds: number; run: string; load: string }[] = [];
  for (const r of runs) {
    log(`${r.name}: ${r.cmd} ${r.args.join(" ")}`);
    const before = load();
    const res = await timed(r.cmd, r.args);
    if (res.code !== 0) {
      keepTmp = true;
      throw new Error(`${r.name} failed (status ${res.code}):\n${res.err.slice(-4000)}`);
    }
    const run = await runLine(`${tmp}/${r.out}`);
    results.push({
      name: r.name,
      seconds: res.seconds,
      run,
      load: `${before.toFixed(1)} → ${load().toFixed(1)}`,
    });
    log(`${r.name}: ${res.seconds.toFixed(1)} s wall; report: ${run}`);
  }
  const want = await tables(`${tmp}/single`);
  const same: string[] = [];
  for (const r of runs.slice(1)) {
    const got = await tables(`${tmp}/${r.out}`);
    const names = [...new Set([...want.keys(), ...got.keys()])].sort();
    const differ = names.filter((n) => want.get(n) !== got.get(n));
    if (differ.length) {
      keepTmp = true;
      throw new Error(`${r.name} wrote different ${differ.join(", ")} (kept in ${tmp})`);
    }
    same.push(`${r.name}: ${names.length} files identical`);
  }
  const [one, two, mpi1] = results as [
    (typeof results)[0],
    (typeof results)[0],
    (typeof results)[0],
  ];
  console.log(
    `\ntoxicity_stats, ${N / 1e6}M comments (${langs.join(", ")}), wall time from start to exit:`,
  );
  console.log(
    "\n| run | wall s | speedup vs 1 process | load avg before → after | the report's Run: line |",
  );
  console.log("|:---|---:|---:|---:|:---|");
  for (const r of results) {
    console.log(
      `| ${r.name} | ${r.seconds.toFixed(1)} | ${
        (one.seconds / r.seconds).toFixed(2)
      }× | ${r.load} | ${r.run} |`,
    );
  }
  console.log(
    `\nspeedup on 2 ranks: ${(one.seconds / two.seconds).toFixed(2)}× (goal ≥ 1.8×); against ` +
      `mpirun -np 1: ${(mpi1.seconds / two.seconds).toFixed(2)}×; mpirun -np 1 costs ${
        (mpi1.seconds - one.seconds).toFixed(1)
      } s over one process`,
  );
  console.log(`outputs: ${same.join("; ")} to the byte (but the Run: line, seconds and dist)`);
} finally {
  if (keepTmp) {
    log(
      `kept ${tmp}${values.input ? "" : ` (reuse the input with --input ${tmp}/comments.jsonl)`}`,
    );
  } else await Deno.remove(tmp, { recursive: true });
}
