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
