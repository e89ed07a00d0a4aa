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

/**
 * Throws one `Deno.errors.NotCapable` error naming every missing flag, or returns quietly.
 *
 * @example
 * ```ts
 * import { requirePermissions } from "./permissions.ts";
 * requirePermissions("example", []); // nothing needed: passes
 * ```
 */
export function requirePermissions(script: string, needs: Need[]): void {
  const missing = needs.filter((n) => !granted(n)).map(flagOf);
  if (missing.length > 0) {
    throw new Deno.errors.NotCapable(
      `${script} needs ${
        missing.join(" ")
      }: add it to the deno run command (the deno task and the shebang grant what the defaults need)`,
    );
  }
}
