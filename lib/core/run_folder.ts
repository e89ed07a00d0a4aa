/**
 * Where a script's run writes: its own folder `out/<script>/<run-id>/` (the run id is the UTC
 * start time, `20261208-021503`, with `-2`, `-3`, … when two runs start in the same second), or
 * the folder given with `--out`, which must be new or empty unless `--overwrite` is given.
 * Nothing overwrites an earlier run unless asked; `--overwrite` writes the new files over the old
 * ones and leaves the old run's other files there. Run ids sort by time, so the newest run is the
 * last of `ls out/<script>` (no `latest` link: Deno.symlink needs full read and write access).
 *
 * @module
 */

/** The parseArgs options every script that writes outputs takes. */
export const RUN_FOLDER_FLAGS = {
  out: { type: "string" },
  overwrite: { type: "boolean", default: false },
} as const;

/** When this process started its run (the module loads as a script starts). */
const STARTED = new Date();

/** The folders this process's runs made, for {@linkcode settleRunFolders}. */
const runs: string[] = [];

/** Options for {@linkcode runFolder}. */
export interface RunFolderOptions {
  /** The folder chosen with `--out`; default `<root>/<script>/<run-id>`. */
  out?: string | undefined;
  /** Write into a chosen `--out` folder that already has files (default false). */
  overwrite?: boolean | undefined;
  /** Where the per-script folders live (default "out"). */
  root?: string;
  /** The run's start time (default: when this process loaded lmkit). */
  now?: Date;
  /** Print `output folder: …` on stderr (default true). */
  announce?: boolean;
}

/**
 * The run id of a run started at `t`: its UTC date and time, `YYYYMMDD-HHMMSS`.
 *
 * @example
 * ```ts
 * import { runId } from "./run_folder.ts";
 * if (runId(new Date(Date.UTC(2026, 11, 8, 2, 15, 3))) !== "20261208-021503") throw new Error();
 * ```
 */
export function runId(t: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${t.getUTCFullYear()}${p(t.getUTCMonth() + 1)}${p(t.getUTCDate())}-${p(t.getUTCHours())}${
    p(t.getUTCMinutes())
  }${p(t.getUTCSeconds())}`;
}

/** The entries of `dir` that are not lmkit's own lock or temporary files; null if it is absent. */
async function userEntries(dir: string): Promise<string[] | null> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.startsWith(".lmkit-") && !/\.tmp-\d+-\d+$/.test(e.name)) names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    if (e instanceof Deno.errors.NotADirectory) {
      throw new Deno.errors.AlreadyExists(`--out '${dir}' is a file, not a folder`);
    }
    throw e;
  }
  return names;
}

/**
 * Creates and returns the folder a run of `script` writes to (see the module doc).
 *
 * @example
 * ```ts
 * import { runFolder } from "./run_folder.ts";
 * const root = await Deno.makeTempDir();
 * const now = new Date(Date.UTC(2026, 11, 8, 2, 15, 3));
 * const a = await runFolder("demo", { root, now, announce: false });
 * const b = await runFolder("demo", { root, now, announce: false });
 * if (a !== `${root}/demo/20261208-021503` || b !== `${a}-2`) throw new Error(`${a} ${b}`);
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function runFolder(script: string, options: RunFolderOptions = {}): Promise<string> {
  const announce = options.announce ?? true;
  let dir: string;
  if (options.out !== undefined) {
    dir = options.out.replace(/(.)\/+$/, "$1");
    if (dir === "") throw new RangeError("--out '' is empty: expected a folder");
    const held = await userEntries(dir);
    if (held && held.length > 0 && !options.overwrite) {
      const shown = held.sort().slice(0, 3).join(", ") + (held.length > 3 ? ", …" : "");
      throw new Deno.errors.AlreadyExists(
        `--out '${dir}' already holds files (${shown}): choose a new folder, or add --overwrite to write over them`,
      );
    }
    await Deno.mkdir(dir, { recursive: true });
    if (held === null) runs.push(dir); // made here: removed again if the run fails
  } else {
    const base = `${options.root ?? "out"}/${script}`, id = runId(options.now ?? STARTED);
    await Deno.mkdir(base, { recursive: true });
    for (let k = 1;; k++) {
      const name = k === 1 ? id : `${id}-${k}`;
      try {
        await Deno.mkdir(`${base}/${name}`); // fails when another run took the name
        dir = `${base}/${name}`;
        runs.push(dir);
        break;
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
      }
    }
  }
  if (announce) console.error(`output folder: ${dir}`);
  return dir;
}

/**
 * Fails early, before a long run, when `args` choose an `--out` folder that already holds files
 * and do not say `--overwrite` (the check {@linkcode runFolder} makes again when it writes).
 */
export async function checkOutFlag(args: readonly string[]): Promise<void> {
  if (args.includes("--overwrite")) return;
  let out: string | undefined;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--") break;
    if (args[i] === "--out") out = args[i + 1];
    else if (args[i]!.startsWith("--out=")) out = args[i]!.slice(6);
  }
  if (out === undefined || out === "") return;
  if (Deno.permissions.querySync({ name: "read", path: out }).state !== "granted") return;
  const held = await userEntries(out.replace(/(.)\/+$/, "$1"));
  if (held && held.length > 0) {
    await runFolder("", { out, announce: false }); // throws the message
  }
}

/**
 * Ends the runs of this process: when one failed, removes the run folders it made that stayed
 * empty, so a failed run leaves no trace. `runScript` calls it.
 */
export async function settleRunFolders(ok: boolean): Promise<void> {
  for (const r of runs.splice(0)) {
    if (!ok) await Deno.remove(r).catch(() => {}); // only an empty folder goes
  }
}
