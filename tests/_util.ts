// Shared test helpers: random inputs and the list of native backends to compare with `ts`.
import { availableBackends, type Backend } from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import type { Rng } from "../lib/core/rng.ts";

/** A fresh seed per run (printed so that a failure can be replayed with LMKIT_SEED). */
export function freshSeed(): number {
  const readable =
    Deno.permissions.querySync({ name: "env", variable: "LMKIT_SEED" }).state === "granted";
  const fixed = readable ? Deno.env.get("LMKIT_SEED") : undefined;
  return fixed ? Number(fixed) : Math.floor(Math.random() * 2 ** 31);
}

/** A rows×cols matrix of standard normals. */
export function randn(rng: Rng, rows: number, cols: number): Matrix {
  return new Matrix(rows, cols, rng.normalArray(rows * cols));
}

const avail = availableBackends();

/** The native backends, with `ignore` set for those that cannot run here (cuda without GPU). */
export const NATIVE: { backend: Backend; ignore: boolean }[] = [
  { backend: "cpu", ignore: false }, // the C library must build everywhere
  { backend: "cuda", ignore: !avail.cuda.ok },
];

/** Odd sizes that catch edge tiles. */
export const AWKWARD = [1, 3, 17, 129];

/** Runs `deno <args>` from the repository root with no stdin; returns exit code and output. */
export async function runDeno(
  args: string[],
  options: { cwd?: string } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: options.cwd ?? new URL("../", import.meta.url).pathname,
    stdin: "null",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** ‖a − b‖₂ / ‖b‖₂: the relative L2 error of `a` against the reference `b`. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** ‖a − b‖∞ / ‖b‖∞: the relative max-norm error of `a` against the reference `b`. */
export function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

/** Why the mpirun worlds cannot run here (empty when they can): no mpirun, or no permission. */
export async function mpirunMissing(): Promise<string> {
  try {
    const out = await new Deno.Command("mpirun", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
      stdin: "null",
    }).output();
    return out.success ? "" : "`mpirun --version` failed";
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return "mpirun is not on PATH (apt-get install openmpi-bin libopenmpi-dev)";
    }
    if (e instanceof Deno.errors.NotCapable || e instanceof Deno.errors.PermissionDenied) {
      return "no --allow-run permission to start mpirun";
    }
    throw e;
  }
}

/** What {@linkcode mpirunDeno} returns. */
export interface MpiRun {
  /** mpirun's exit code. */
  code: number;
  /** Every rank's and mpirun's stdout. */
  stdout: string;
  /** Every rank's and mpirun's stderr. */
  stderr: string;
  /** Seconds from start to end. */
  seconds: number;
  /** Whether the world was ended for running past `limitS`. */
  timedOut: boolean;
}

/**
 * Runs `mpirun --oversubscribe -np np deno run …runArgs` from the repository root (np 0: `deno
 * run …runArgs` alone, no mpirun), with `env` added to every rank's environment (mpirun's -x);
 * ends it with SIGTERM (mpirun ends its ranks) after `limitS` seconds, SIGKILL 10 s later.
 * `onLine` sees each output line as it comes.
 */
export async function mpirunDeno(
  np: number,
  runArgs: string[],
  options: { limitS: number; env?: Record<string, string>; onLine?: (line: string) => void },
): Promise<MpiRun> {
  const t0 = performance.now(), env = { NO_COLOR: "1", ...options.env };
  const deno = [Deno.execPath(), "run", ...runArgs];
  const [cmd, ...args] = np === 0 ? deno : [
    "mpirun",
    "--oversubscribe",
    "--allow-run-as-root",
    ...Object.keys(options.env ?? {}).flatMap((k) => ["-x", k]),
    "-np",
    String(np),
    ...deno,
  ];
  const child = new Deno.Command(cmd!, {
    args,
    cwd: new URL("../", import.meta.url).pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  let timedOut = false;
  const term = setTimeout(() => {
    timedOut = true;
    child.kill("SIGTERM");
  }, options.limitS * 1000);
  const kill = setTimeout(() => child.kill("SIGKILL"), (options.limitS + 10) * 1000);
  const read = async (s: ReadableStream<Uint8Array>) => {
    let rest = "", all = "";
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      all += chunk;
      const lines = (rest + chunk).split("\n");
      rest = lines.pop()!;
      for (const l of lines) options.onLine?.(l);
    }
    return all;
  };
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    read(child.stdout),
    read(child.stderr),
  ]);
  clearTimeout(term);
  clearTimeout(kill);
  return {
    code: status.code,
    stdout,
    stderr,
    seconds: (performance.now() - t0) / 1000,
    timedOut,
  };
}

/**
 * The first `n` windows of `len` tokens of real text: each `text` of UD PUD English
 * (data/multilingual_text/ud_pud/pud_en.jsonl) as [256] + UTF-8 bytes, concatenated (the batch of
 * the training benches and their PyTorch peers).
 */
export function textWindows(n: number, len: number): number[][] {
  const ids: number[] = [], enc = new TextEncoder();
  const path = new URL("../data/multilingual_text/ud_pud/pud_en.jsonl", import.meta.url).pathname;
  for (const line of Deno.readTextFileSync(path).split("\n")) {
    if (line.trim()) ids.push(256, ...enc.encode(JSON.parse(line).text as string));
    if (ids.length >= n * len) break;
  }
  if (ids.length < n * len) throw new Error(`pud_en.jsonl is too short for ${n} × ${len} tokens`);
  return Array.from({ length: n }, (_, w) => ids.slice(w * len, (w + 1) * len));
}
