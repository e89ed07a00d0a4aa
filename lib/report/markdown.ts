/**
 * Markdown tables for reports.
 *
 * @module
 */

/**
 * A Markdown table of `rows` with the given columns; non-integer numbers get `digits` decimals.
 *
 * @example
 * ```ts
 * import { markdownTable } from "./markdown.ts";
 * const t = markdownTable([{ a: 1, b: 0.5 }], ["a", "b"]);
 * if (t !== "| a | b |\n|---|---|\n| 1 | 0.5000 |") throw new Error(t);
 * ```
 */
export function markdownTable(
  rows: readonly object[],
  cols: readonly string[],
  digits = 4,
): string {
  const cell = (v: unknown) =>
    typeof v === "number" && !Number.isInteger(v) ? v.toFixed(digits) : String(v ?? "");
  return [
    `| ${cols.join(" | ")} |`,
    `|${cols.map(() => "---").join("|")}|`,
    ...rows.map((r) =>
      `| ${cols.map((c) => cell((r as Record<string, unknown>)[c])).join(" | ")} |`
    ),
  ].join("\n");
}
