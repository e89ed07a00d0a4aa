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
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: new URL("../", import.meta.url).pathname,
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
