/**
 * Permission checks for scripts: a script states what it needs and fails with one clear
 * sentence, instead of a prompt or a crash deep inside, when run with less.
 *
 * @module
 */

/** A permission a script needs, as `Deno.permissions` names it. */
export type Need = Deno.PermissionDescriptor;

function flagOf(need: Need): string {
  switch (need.name) {
    case "read":
    case "write":
      return `--allow-${need.name}${need.path ? `=${need.path}` : ""}`;
    case "ffi":
      return `--allow-ffi${need.path ? `=${need.path}` : ""}`;
    case "env":
      return `--allow-env${need.variable ? `=${need.variable}` : ""}`;
    case "run":
      return `--allow-run${need.command ? `=${need.command}` : ""}`;
    case "net":
      return `--allow-net${need.host ? `=${need.host}` : ""}`;
    default:
      return `--allow-${need.name}`;
  }
}

/** Whether `need` is granted, without prompting. */
export function granted(need: Need): boolean {
  return Deno.permissions.querySync(need).state === "granted";
}

/** Quotes `arg` for a POSIX shell when it needs it. */
function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/**
 * The permission flags of the running script's shebang line (`#!/usr/bin/env -S deno run …`), or
 * [] when the main module is not a readable local file with such a line.
 */
function shebangFlags(): string[] {
  try {
    const url = new URL(Deno.mainModule);
    if (url.protocol !== "file:") return [];
    const path = decodeURIComponent(url.pathname);
    if (Deno.permissions.querySync({ name: "read", path }).state !== "granted") {
      return [];
    }
    const first = Deno.readTextFileSync(path).split("\n", 1)[0]!;
    const m = /^#!.*\bdeno run (.*)$/.exec(first);
    return m ? m[1]!.trim().split(/\s+/).filter((f) => f.startsWith("--")) : [];
  } catch {
    return [];
  }
}

/**
 * The flags `base` with `missing` added: a missing `--allow-x=b` joins `--allow-x=a` as
 * `--allow-x=a,b`; a flag without a value replaces the one with values.
 *
 * @example
 * ```ts
 * import { mergeFlags } from "./permissions.ts";
 * const f = mergeFlags(["--no-prompt", "--allow-write=out"], ["--allow-write=/tmp/x"]);
 * if (f.join(" ") !== "--no-prompt --allow-write=out,/tmp/x") throw new Error(f.join(" "));
 * ```
 */
export function mergeFlags(base: readonly string[], missing: readonly string[]): string[] {
  const out = [...base];
  for (const m of missing) {
    const [name, value] = m.split(/=(.*)/s, 2) as [string, string | undefined];
    const i = out.findIndex((f) => f === name || f.startsWith(`${name}=`));
    if (i < 0) out.push(m);
    else if (value === undefined) out[i] = name;
    else if (out[i] !== name) {
      const have = out[i]!.slice(name.length + 1).split(",");
      if (!have.includes(value)) out[i] = `${out[i]},${value}`;
    }
  }
  return out;
}

/**
 * The command line that runs the current script again with `missing` flags added: `deno run`, the
 * script's shebang flags merged with the missing ones, the script's path (relative to the working
 * directory when under it) and its arguments, each quoted for a shell.
 */
export function commandWith(
  missing: readonly string[],
  args: readonly string[] = Deno.args,
): string {
  let script = Deno.mainModule;
  try {
    const url = new URL(script);
    if (url.protocol === "file:") {
      script = decodeURIComponent(url.pathname);
      const cwd = Deno.permissions.querySync({ name: "read", path: "." }).state === "granted"
        ? Deno.cwd()
        : "";
      if (cwd && script.startsWith(`${cwd}/`)) script = script.slice(cwd.length + 1);
    }
  } catch { /* keep the specifier */ }
  const flags = mergeFlags(shebangFlags(), missing);
  if (!flags.includes("--no-prompt")) flags.unshift("--no-prompt");
  const rest = args[0] === "--" ? args.slice(1) : args;
  return ["deno", "run", ...flags, script, ...rest].map(shellQuote).join(" ");
}

/**
 * Throws one `Deno.errors.NotCapable` error naming every missing flag and the full command line
 * that adds them, or returns quietly.
 *
 * @example
 * ```ts
 * import { requirePermissions } from "./permissions.ts";
 * requirePermissions("example", []); // nothing needed: passes
 * ```
 */
export function requirePermissions(script: string, needs: Need[]): void {
  const missing = [...new Set(needs.filter((n) => !granted(n)).map(flagOf))];
  if (missing.length > 0) {
    // the command grants every need of this check, so flags given on the command line beyond the
    // shebang's (--allow-net for an endpoint, --allow-env for a key) stay in it
    throw new Deno.errors.NotCapable(
      `${script} needs ${missing.join(" ")}, which this run was not given; run it as:\n  ${
        commandWith([...new Set(needs.map(flagOf))])
      }`,
    );
  }
}
