/**
 * Writes a script's output files all-or-nothing: each file goes to a temporary name first and is
 * renamed into place only when every file was written, so a failure leaves no partial output.
 *
 * @module
 */

/**
 * Writes `files` (name → text or bytes) into `dir`, creating it when needed.
 *
 * @example
 * ```ts
 * import { writeOutputs } from "./output.ts";
 * const dir = await Deno.makeTempDir();
 * await writeOutputs(dir, { "results.json": "{}" });
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function writeOutputs(
  dir: string,
  files: Record<string, string | Uint8Array>,
): Promise<string[]> {
  await Deno.mkdir(dir, { recursive: true });
  const tag = `.tmp-${Deno.pid}-${Date.now()}`;
  const written: string[] = [];
  try {
    for (const [name, content] of Object.entries(files)) {
      if (name.includes("/") || name.startsWith(".")) {
        throw new RangeError(`Cannot write output '${name}': expected a plain file name`);
      }
      const tmp = `${dir}/${name}${tag}`;
      written.push(tmp);
      if (typeof content === "string") await Deno.writeTextFile(tmp, content);
      else await Deno.writeFile(tmp, content);
    }
  } catch (e) {
    for (const tmp of written) await Deno.remove(tmp).catch(() => {});
    throw e;
  }
  const final: string[] = [];
  for (const tmp of written) {
    const to = tmp.slice(0, -tag.length);
    await Deno.rename(tmp, to);
    final.push(to);
  }
  return final;
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

/**
 * Writes a folder all-or-nothing: `fill` writes into a temporary sibling folder, which is then
 * renamed to `dir` (an existing `dir` is moved aside first and removed after).
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
  const tmp = `${dir}.tmp-${Deno.pid}-${Date.now()}`;
  await Deno.mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  if (await pathExists(dir)) {
    const old = `${dir}.old-${Deno.pid}-${Date.now()}`;
    await Deno.rename(dir, old);
    await Deno.rename(tmp, dir);
    await Deno.remove(old, { recursive: true });
  } else await Deno.rename(tmp, dir);
}
