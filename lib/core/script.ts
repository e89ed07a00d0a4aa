/**
 * The harness every `scripts/*.ts` runs in: permission check first, `--help`, and any error
 * printed as one sentence on stderr with exit code 1 (no stack trace for expected failures).
 *
 * @module
 */
import { commandWith, type Need, requirePermissions } from "./permissions.ts";
import { checkOutFlag, settleRunFolders } from "./run_folder.ts";

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
    await checkOutFlag(args);
    await main(args);
    await settleRunFolders(true);
  } catch (e) {
    const err = e as Error;
    await settleRunFolders(false);
    console.error(`error: ${plainMessage(e, spec.name, args)}`);
    const debug = { name: "env", variable: "LMKIT_DEBUG" } as const;
    if (Deno.permissions.querySync(debug).state === "granted" && Deno.env.get("LMKIT_DEBUG")) {
      console.error(err?.stack);
    }
    Deno.exit(1);
  }
}

/** The working directory, or "the working directory" when it may not be read. */
function where(): string {
  return Deno.permissions.querySync({ name: "read", path: "." }).state === "granted"
    ? `'${Deno.cwd()}'`
    : "the working directory";
}

/**
 * The error's message, with the system's wording for a missing file ("No such file or directory
 * (os error 2): readfile 'x.txt'") said plainly: "'x.txt' does not exist".
 */
function plainMessage(e: unknown, script: string, args: string[]): string {
  const message = (e as Error)?.message ?? String(e);
  // Deno's own refusal ("Requires read access to "x", run again with the --allow-read flag"),
  // for a path the script did not check up front: the flag and the command line that adds it
  const refused = e instanceof Deno.errors.NotCapable &&
    /^Requires (read|write|net|env|run|ffi|sys) access to "(.*?)"/.exec(message);
  if (refused) {
    const flag = `--allow-${refused[1]}=${refused[2]}`;
    return `${script} needs ${flag}, which this run was not given; run it as:\n  ${
      commandWith([flag], args)
    }`;
  }
  const missing = e instanceof Deno.errors.NotFound && /\(os error 2\): \w+ '(.*)'$/.exec(message);
  if (!missing) return message;
  const path = missing[1]!;
  return `'${path}' does not exist${path.startsWith("/") ? "" : ` (relative to ${where()})`}`;
}
