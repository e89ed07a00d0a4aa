/**
 * `@std/csv`'s `parse` and `stringify` over `npm:csv-parse` and `npm:csv-stringify` (JSR is
 * out of reach here). Streaming readers that name the file and line of a bad row live in
 * `lib/io/csv.ts`.
 *
 * @module
 */
import { parse as parseSync } from "npm:csv-parse@5.6.0/sync";
import { stringify as stringifySync } from "npm:csv-stringify@6.9.0/sync";

/** Options of {@linkcode parse}. */
export interface ParseOptions {
  /** Field separator (default ","). */
  separator?: string;
  /** Treat the first line as column names and return records (default false). */
  skipFirstRow?: boolean;
}

/**
 * Parses CSV text into rows of strings, or records when `skipFirstRow` is set.
 *
 * @example
 * ```ts
 * import { parse } from "./csv.ts";
 * import { assertEquals } from "@std/assert";
 * assertEquals(parse("a,b\n1,2\n", { skipFirstRow: true }), [{ a: "1", b: "2" }]);
 * ```
 */
export function parse(
  text: string,
  options: ParseOptions = {},
): string[][] | Record<string, string>[] {
  return parseSync(text, {
    delimiter: options.separator ?? ",",
    columns: options.skipFirstRow ?? false,
    relax_quotes: false,
  });
}

/** Options of {@linkcode stringify}. */
export interface StringifyOptions {
  /** Column order; with records, also written as the header line. */
  columns?: string[];
  /** Field separator (default ","). */
  separator?: string;
}

/**
 * Writes rows (arrays or records) as CSV text with a trailing newline.
 *
 * @example
 * ```ts
 * import { stringify } from "./csv.ts";
 * import { assertEquals } from "@std/assert";
 * assertEquals(stringify([{ a: 1, b: "x,y" }], { columns: ["a", "b"] }), 'a,b\n1,"x,y"\n');
 * ```
 */
export function stringify(
  rows: readonly (readonly unknown[] | Record<string, unknown>)[],
  options: StringifyOptions = {},
): string {
  return stringifySync(rows as unknown[][], {
    delimiter: options.separator ?? ",",
    ...(options.columns ? { columns: options.columns, header: true } : {}),
  });
}
