/**
 * Writes a script's outputs all-or-nothing, and cleans up after writers that were killed.
 *
 * - {@linkcode writeOutputs} writes a set of files into a folder: each file goes to a temporary
 *   name, then a commit journal lists the renames, then the renames run and the journal goes.
 * - {@linkcode writeFolder} writes a whole folder (a checkpoint) into a temporary sibling that is
 *   renamed into place.
 *
 * Every write holds an exclusive lock on a lock file named with its tag (pid and time) for as long
 * as its temporaries exist; the operating system drops the lock when the process dies, even by
 * SIGKILL. Each write first cleans its folder of other writes' leftovers whose lock is free: it
 * finishes a commit whose journal is complete (so a killed commit's files appear together), and
 * removes temporaries that were never committed (so no partial file stays).
 *
 * @module
 */

// pid-milliseconds plus a 3-digit counter (13 digits: the tags of lmkit before the lock files)
const TAG = String.raw`(\d+-\d{13,16})`;
const TMP = new RegExp(`^(.+)\\.tmp-${TAG}$`);
const OLD = new RegExp(`^(.+)\\.old-${TAG}$`);
const LOCK = new RegExp(`^\\.lmkit-lock-${TAG}$`);
const JOURNAL = new RegExp(`^\\.lmkit-commit-${TAG}\\.json$`);

let counter = 0;

/** A write in progress: its tag and the lock that marks it alive. */
interface Write {
  tag: string;
  lockPath: string;
  lock: Deno.FsFile;
}

async function beginWrite(parent: string): Promise<Write> {
  const tag = `${Deno.pid}-${Date.now()}${String(counter++ % 1000).padStart(3, "0")}`;
  const lockPath = `${parent}/.lmkit-lock-${tag}`;
  const lock = await Deno.open(lockPath, { create: true, write: true });
  await lock.lock(true);
  return { tag, lockPath, lock };
}

async function endWrite(w: Write): Promise<void> {
  await Deno.remove(w.lockPath).catch(() => {});
  w.lock.close(); // releases the lock
}

/** Whether the write tagged `tag` in `parent` is over (its lock is free or gone). */
async function writeIsOver(parent: string, tag: string): Promise<boolean> {
  let f: Deno.FsFile;
  try {
    f = await Deno.open(`${parent}/.lmkit-lock-${tag}`, { write: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true; // finished, or a writer from before locks
    throw e;
  }
  try {
    if (!(await f.tryLock(true))) return false;
    await f.unlock();
    return true;
  } finally {
    f.close();
  }
}

/**
 * Cleans `dir` of the leftovers of killed writes (see the module doc) and returns what it did, one
 * line each. Writes still running (their lock held) are left alone.
 *
 * @example
 * ```ts
 * import { cleanStaleOutputs } from "./output.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/results.json.tmp-1-1765000000000`, "{"); // killed long ago
 * const done = await cleanStaleOutputs(dir);
 * if (done.length !== 1 || [...Deno.readDirSync(dir)].length !== 0) throw new Error("not cleaned");
 * await Deno.remove(dir);
 * ```
 */
export async function cleanStaleOutputs(dir: string): Promise<string[]> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) names.push(e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  const tagOf = (n: string) => {
    const m = TMP.exec(n) ?? OLD.exec(n) ?? LOCK.exec(n) ?? JOURNAL.exec(n);
    return m?.[m.length - 1];
  };
  const tags = new Set(names.map(tagOf).filter((t) => t !== undefined));
  const done: string[] = [];
  for (const tag of tags) {
    if (!(await writeIsOver(dir, tag))) continue;
    // the journal first, then folders moved aside (which may need their fresh copy), then the rest
    const rank = (n: string) => (JOURNAL.test(n) ? 0 : OLD.test(n) ? 1 : 2);
    const mine = names.filter((n) => tagOf(n) === tag).sort((a, b) => rank(a) - rank(b));
    // a complete journal: the files were all written; finish the renames
    const journal = `${dir}/.lmkit-commit-${tag}.json`;
    if (mine.includes(`.lmkit-commit-${tag}.json`)) {
      let renames: [string, string][] = [];
      try {
        renames = JSON.parse(await Deno.readTextFile(journal)).renames;
      } catch { /* unreadable: treat as never committed */ }
      for (const [from, to] of renames ?? []) {
        if (typeof from !== "string" || typeof to !== "string") continue;
        if (await pathExists(`${dir}/${from}`)) {
          await Deno.rename(`${dir}/${from}`, `${dir}/${to}`);
          done.push(`finished the commit of '${dir}/${to}' (a write killed mid-commit)`);
        }
      }
      await Deno.remove(journal);
    }
    for (const n of mine) {
      const tmp = TMP.exec(n), old = OLD.exec(n);
      if (tmp && !(await pathExists(`${dir}/${n}`))) continue; // renamed by the journal above
      if (old) {
        // a folder write killed between moving the old folder aside and renaming the new in
        const target = `${dir}/${old[1]}`, fresh = `${target}.tmp-${tag}`;
        if (!(await pathExists(target)) && (await pathExists(fresh))) {
          await Deno.rename(fresh, target);
          done.push(`finished the replacement of '${target}' (a write killed mid-rename)`);
        }
        await Deno.remove(`${dir}/${n}`, { recursive: true });
        done.push(`removed the replaced '${dir}/${n}'`);
      } else if (tmp && (await pathExists(`${dir}/${n}`))) {
        await Deno.remove(`${dir}/${n}`, { recursive: true });
        done.push(`removed '${dir}/${n}', the temporary of a killed write`);
      }
    }
    await Deno.remove(`${dir}/.lmkit-lock-${tag}`).catch(() => {});
  }
  return done;
}

/**
 * Writes `files` (name → text or bytes) into `dir`, creating it when needed: all of them or, on
 * failure, none (see the module doc for a write killed halfway).
 *
 * @example
 * ```ts
 * import { writeOutputs } from "./output.ts";
 * const dir = await Deno.makeTempDir();
 * await writeOutputs(dir, { "results.json": "{}", "results.csv": "a\n1\n" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeOutputs(
  dir: string,
  files: Record<string, string | Uint8Array>,
): Promise<string[]> {
  for (const name of Object.keys(files)) {
    if (name.includes("/") || name.startsWith(".") || name === "") {
      throw new RangeError(`Cannot write output '${name}': expected a plain file name`);
    }
  }
  await Deno.mkdir(dir, { recursive: true });
  await cleanStaleOutputs(dir);
  const w = await beginWrite(dir);
  const renames: [string, string][] = [];
  try {
    for (const [name, content] of Object.entries(files)) {
      const tmp = `${name}.tmp-${w.tag}`;
      renames.push([tmp, name]);
      if (typeof content === "string") await Deno.writeTextFile(`${dir}/${tmp}`, content);
      else await Deno.writeFile(`${dir}/${tmp}`, content);
    }
    // the journal appears whole (renamed into place) or not at all
    const journal = `.lmkit-commit-${w.tag}.json`;
    await Deno.writeTextFile(`${dir}/${journal}.tmp-${w.tag}`, JSON.stringify({ renames }));
    await Deno.rename(`${dir}/${journal}.tmp-${w.tag}`, `${dir}/${journal}`);
    for (const [from, to] of renames) await Deno.rename(`${dir}/${from}`, `${dir}/${to}`);
    await Deno.remove(`${dir}/${journal}`);
  } catch (e) {
    for (const [tmp] of renames) await Deno.remove(`${dir}/${tmp}`).catch(() => {});
    throw e;
  } finally {
    await endWrite(w);
  }
  return renames.map(([, to]) => `${dir}/${to}`);
}

/**
 * Writes one file all-or-nothing: `write` fills a temporary beside `path` (locked and tagged like
 * the other writes here, so a killed write's temporary is cleaned), which is renamed to `path`.
 *
 * @example
 * ```ts
 * import { writeFileAtomic } from "./output.ts";
 * const dir = await Deno.makeTempDir();
 * await writeFileAtomic(`${dir}/x.bin`, (tmp) => Deno.writeFile(tmp, new Uint8Array([1, 2])));
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomic(
  path: string,
  write: (tmp: string) => Promise<void>,
): Promise<void> {
  const parent = parentOf(path);
  await cleanStaleOutputs(parent);
  const w = await beginWrite(parent);
  const tmp = `${path}.tmp-${w.tag}`;
  try {
    await write(tmp);
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  } finally {
    await endWrite(w);
  }
}

/** Whether `path` exists (a broken link counts). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** The folder `path` is in ("." for a bare name). */
function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

/**
 * Writes a folder all-or-nothing: `fill` writes into a temporary sibling folder, which is then
 * renamed to `dir`. An existing `dir` is replaced only when it is empty or a model folder (it has
 * a `config.json`): a folder of the user's own files is never removed.
 *
 * @example
 * ```ts
 * import { writeFolder } from "./output.ts";
 * const root = await Deno.makeTempDir();
 * await writeFolder(`${root}/model`, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "{}"));
 * await Deno.remove(root, { recursive: true });
 * ```
 */
export async function writeFolder(
  dir: string,
  fill: (tmp: string) => Promise<void>,
): Promise<void> {
  dir = dir.replace(/\/+$/, "");
  const parent = parentOf(dir), base = dir.slice(dir.lastIndexOf("/") + 1);
  if (base === "" || base === "." || base === "..") {
    throw new RangeError(`Cannot write a folder at '${dir}': expected a folder name`);
  }
  await Deno.mkdir(parent, { recursive: true });
  await cleanStaleOutputs(parent);
  if (await pathExists(dir)) {
    let empty = true;
    for await (const _ of Deno.readDir(dir)) {
      empty = false;
      break;
    }
    if (!empty && !(await pathExists(`${dir}/config.json`))) {
      throw new RangeError(
        `Cannot write a model folder at '${dir}': it exists and is not a model folder (no config.json); choose a new folder`,
      );
    }
  }
  const w = await beginWrite(parent);
  try {
    const tmp = `${dir}.tmp-${w.tag}`;
    await Deno.mkdir(tmp);
    try {
      await fill(tmp);
    } catch (e) {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      throw e;
    }
    if (await pathExists(dir)) {
      const old = `${dir}.old-${w.tag}`;
      await Deno.rename(dir, old);
      await Deno.rename(tmp, dir);
      await Deno.remove(old, { recursive: true });
    } else await Deno.rename(tmp, dir);
  } finally {
    await endWrite(w);
  }
}
