/**
 * The harness every `scripts/*.ts` runs in: permission check first, `--help`, and any error
 * printed as one sentence on stderr with exit code 1 (no stack trace for expected failures).
 *
 * @module
 */
import { type Need, requirePermissions } from "./permissions.ts";

/** What a script declares about itself. */
export interface ScriptSpec {
  /** File name, e.g. "selfcheck.ts". */
  name: string;
  /** The `--help` text. */
  usage: string;
  /** Permissions checked before `main` runs. */
  needs: Need[];
}

/**
 * Runs `main(args)` under the spec: prints usage on `--help`/`-h`, checks permissions, and turns
 * any thrown error into `error: <message>` plus exit code 1. A leading `--` is dropped:
 * `deno task NAME -- --flag` hands the script `--` first, which would end its options.
 */
export async function runScript(
  spec: ScriptSpec,
  main: (args: string[]) => Promise<void> | void,
  args: string[] = Deno.args,
): Promise<void> {
  if (args[0] === "--") args = args.slice(1);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(spec.usage.trim());
    return;
  }
  try {
    requirePermissions(spec.name, spec.needs);
    await main(args);
  } catch (e) {
    const err = e as Error;
    console.error(`error: ${plainMessage(e)}`);
    const debug = { name: "env", variable: "LMKIT_DEBUG" } as const;
    if (Deno.permissions.querySync(debug).state === "granted" && Deno.env.get("LMKIT_DEBUG")) {
      console.error(err?.stack);
    }
    Deno.exit(1);
  }
}

/**
 * The error's message, with the system's wording for a missing file ("No such file or directory
 * (os error 2): readfile 'x.txt'") said plainly: "'x.txt' does not exist".
 */
function plainMessage(e: unknown): string {
  const message = (e as Error)?.message ?? String(e);
  const missing = e instanceof Deno.errors.NotFound && /\(os error 2\): \w+ '(.*)'$/.exec(message);
  return missing ? `'${missing[1]}' does not exist` : message;
}
