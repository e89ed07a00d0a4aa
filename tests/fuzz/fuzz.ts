// `deno task fuzz`: seeded mutations of valid seed files for every reader lmkit has (the targets in
// tests/fuzz/targets.ts), each case run in a worker process under a per-case time limit, counting
// per reader: files accepted, clean typed errors (an lmkit error type whose message names the
// file), typed errors that do not name the file, untyped errors, hangs and crashes, and for
// safetensors the files accepted against the format's rules or rejected within them. Exits 1 when
// anything but accepted files and clean errors was seen.
import { parseArgs } from "@std/cli";
import { intFlag } from "../../lib/core/args.ts";
import { TARGETS } from "./targets.ts";
import { type CaseResult, runCase, type SeedManifest, writeCase } from "./worker.ts";

const HELP = `Usage: deno task fuzz [options]

Options:
  --cases N        Cases per reader (default 2000)
  --seed S         Run seed (default 1); the same seed gives the same mutants
  --only TEXT      Only the readers whose name contains TEXT
  --timeout-ms MS  A case running longer is a hang (default 5000)
  --examples K     Messages shown per reader and kind of finding (default 3)
  --json FILE      Also write the counts and findings as JSON
  --repro I        With --only: write case I to out/fuzz-case/ and run it here, printing the error
  --work DIR       Scratch folder (default out/.fuzz-PID, removed at the end)
  -h, --help       This help
`;

interface Counts {
  reader: string;
  cases: number;
  accepted: number;
  clean: number;
  unnamed: number;
  untyped: number;
  hangs: number;
  crashes: number;
  invalidAccepted?: number;
  validRejected?: number;
  findings: { kind: string; case: number; file: string; what: string }[];
}

function fail(msg: string): never {
  console.error(`fuzz: ${msg}`);
  Deno.exit(2);
}

let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    args: Deno.args,
    options: {
      cases: { type: "string" },
      seed: { type: "string" },
      only: { type: "string" },
      "timeout-ms": { type: "string" },
      examples: { type: "string" },
      json: { type: "string" },
      repro: { type: "string" },
      work: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  }).values;
} catch (e) {
  fail(`${(e as Error).message}; see --help`);
}
if (values.help) {
  console.log(HELP);
  Deno.exit(0);
}
const str = (k: string) => values[k] as string | undefined;
const int = (k: string, def: number, min: number) => {
  try {
    return str(k) === undefined ? def : intFlag(`--${k}`, str(k), min);
  } catch (e) {
    fail((e as Error).message);
  }
};
const cases = int("cases", 2000, 1);
const seed = int("seed", 1, 0);
const timeoutMs = int("timeout-ms", 5000, 100);
const examples = int("examples", 3, 0);
const only = str("only");
const chosen = TARGETS.map((t, i) => ({ t, i })).filter(({ t }) =>
  only === undefined || t.name.includes(only)
);
if (chosen.length === 0) {
  fail(`--only '${only}' matches no reader; readers: ${TARGETS.map((t) => t.name).join("; ")}`);
}
const work = str("work") ?? `out/.fuzz-${Deno.pid}`;
await Deno.mkdir(work, { recursive: true });

async function writeSeeds(t: number): Promise<void> {
  const root = `${work}/seeds/${t}`;
  await Deno.mkdir(`${work}/scratch`, { recursive: true });
  const seeds = await TARGETS[t]!.seeds(`${work}/scratch`);
  const manifest: SeedManifest = { seeds: [] };
  for (const [k, s] of seeds.entries()) {
    for (const [name, bytes] of Object.entries(s.files)) {
      await Deno.mkdir(`${root}/${k}/${name}`.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.writeFile(`${root}/${k}/${name}`, bytes);
    }
    manifest.seeds.push({ files: Object.keys(s.files), mutable: s.mutable });
    // a seed the reader rejects would make every case an error: check each before fuzzing
    try {
      await TARGETS[t]!.run(`${root}/${k}`);
    } catch (e) {
      throw new Error(`Seed ${k} of '${TARGETS[t]!.name}' is rejected: ${(e as Error).message}`);
    }
    if (TARGETS[t]!.valid && !(await TARGETS[t]!.valid!(`${root}/${k}`))) {
      throw new Error(`Seed ${k} of '${TARGETS[t]!.name}' fails the format check`);
    }
  }
  await Deno.writeTextFile(`${root}/manifest.json`, JSON.stringify(manifest));
}

/** Runs cases [from, cases) of target t in a worker; returns where it stopped and why. */
async function runWorker(
  t: number,
  from: number,
  onCase: (r: CaseResult) => void,
): Promise<{ next: number; stop: "done" | "hang" | "crash"; detail: string }> {
  // "deno" from PATH, which --allow-run=deno names (Deno.execPath() would need read access to it)
  const child = new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      `--allow-read=${work}`,
      `--allow-write=${work}`,
      "--v8-flags=--max-old-space-size=2048",
      new URL("./worker.ts", import.meta.url).pathname,
      work,
      String(t),
      String(seed),
      String(from),
      String(cases),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let stderr = "";
  const errDone = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
      stderr = (stderr + s).slice(-2000);
    }
  })();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "", next = from, ready = false;
  let stop: "done" | "hang" | "crash" = "done";
  outer: while (true) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = ready ? timeoutMs : timeoutMs + 60_000; // start-up: module loading
    const r = await Promise.race([
      lines.read(),
      new Promise<"timeout">((res) => timer = setTimeout(() => res("timeout"), limit)),
    ]);
    clearTimeout(timer);
    if (r === "timeout") {
      stop = "hang";
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      break;
    }
    if (r.done) break;
    buf += r.value;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const msg = JSON.parse(line);
      if (msg.ready) {
        ready = true;
        continue;
      }
      onCase(msg as CaseResult);
      next = msg.i + 1;
      if (next >= cases) break outer;
    }
  }
  lines.releaseLock();
  await child.stdout.cancel().catch(() => {});
  const status = await child.status;
  await errDone.catch(() => {});
  if (status.code === 3) throw new Error(`The fuzz harness failed: ${stderr.trim()}`);
  if (stop === "done" && next < cases) stop = "crash";
  if (stop === "done" && !status.success) stop = "crash";
  return { next, stop, detail: `${status.signal ?? `exit ${status.code}`}: ${stderr.trim()}` };
}

async function fuzzTarget(t: number): Promise<Counts> {
  const name = TARGETS[t]!.name;
  const c: Counts = {
    reader: name,
    cases,
    accepted: 0,
    clean: 0,
    unnamed: 0,
    untyped: 0,
    hangs: 0,
    crashes: 0,
    findings: [],
  };
  if (TARGETS[t]!.valid) c.invalidAccepted = c.validRejected = 0;
  const note = (kind: string, i: number, file: string, what: string) => {
    if (c.findings.filter((f) => f.kind === kind).length < examples) {
      c.findings.push({ kind, case: i, file, what: what.slice(0, 300) });
    }
  };
  await writeSeeds(t);
  let from = 0;
  while (from < cases) {
    const res = await runWorker(t, from, (r) => {
      c[r.r]++;
      if (r.r === "untyped" || r.r === "unnamed") note(r.r, r.i, r.file, r.err!);
      if (r.valid === false && r.r === "accepted") {
        c.invalidAccepted!++;
        note("invalid accepted", r.i, r.file, "");
      }
      if (r.valid === true && r.r !== "accepted") {
        c.validRejected!++;
        note("valid rejected", r.i, r.file, r.err ?? "");
      }
    });
    if (res.stop === "done") break;
    // the case after the last reported one hung or crashed the worker
    if (res.stop === "hang") c.hangs++;
    else c.crashes++;
    note(res.stop, res.next, "", res.stop === "hang" ? `over ${timeoutMs} ms` : res.detail);
    from = res.next + 1;
  }
  return c;
}

if (str("repro") !== undefined) {
  if (chosen.length !== 1) fail("--repro needs --only naming exactly one reader");
  const i = int("repro", 0, 0);
  const t = chosen[0]!.i;
  await writeSeeds(t);
  const dir = "out/fuzz-case";
  const file = await writeCase(work, t, seed, i, dir);
  console.log(`case ${i} of '${TARGETS[t]!.name}' (seed ${seed}): ${dir}/${file} mutated`);
  try {
    await TARGETS[t]!.run(dir);
    console.log("accepted");
  } catch (e) {
    console.log(e);
  }
  console.log(JSON.stringify(await runCase(t, i, dir, file)));
  await Deno.remove(work, { recursive: true });
  Deno.exit(0);
}

const all: Counts[] = [];
const cols = ["cases", "accepted", "clean", "unnamed", "untyped", "hangs", "crashes"] as const;
console.log(
  `fuzz: ${chosen.length} readers × ${cases} cases, seed ${seed}, time limit ${timeoutMs} ms per case`,
);
console.log(["reader".padEnd(34), ...cols.map((k) => k.padStart(9)), "  rules"].join(""));
const started = performance.now();
try {
  for (const { i } of chosen) {
    const c = await fuzzTarget(i);
    all.push(c);
    const rules = c.invalidAccepted === undefined
      ? ""
      : `  ${c.invalidAccepted} invalid accepted, ${c.validRejected} valid rejected`;
    console.log(
      [c.reader.padEnd(34), ...cols.map((k) => String(c[k]).padStart(9)), rules].join(""),
    );
  }
} finally {
  await Deno.remove(work, { recursive: true }).catch(() => {});
}
for (const c of all) {
  for (const f of c.findings) {
    console.log(
      `  ${c.reader} · ${f.kind} · case ${f.case}${f.file ? ` (${f.file})` : ""}: ${f.what}`,
    );
  }
}
const bad = all.reduce(
  (s, c) =>
    s + c.unnamed + c.untyped + c.hangs + c.crashes + (c.invalidAccepted ?? 0) +
    (c.validRejected ?? 0),
  0,
);
console.log(
  `fuzz: ${all.reduce((s, c) => s + c.cases, 0)} cases in ${
    ((performance.now() - started) / 1000).toFixed(0)
  } s; ${bad === 0 ? "no findings" : `${bad} findings (rerun one with --only NAME --repro CASE)`}`,
);
if (str("json") !== undefined) {
  await Deno.writeTextFile(
    str("json")!,
    JSON.stringify({ seed, timeoutMs, readers: all }, null, 2) + "\n",
  );
}
Deno.exit(bad === 0 ? 0 : 1);
