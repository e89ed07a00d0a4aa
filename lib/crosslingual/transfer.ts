/**
 * Transfer-result tables for the factor analysis: a CSV of results (one row per model, source
 * and target language and task, with a numeric score) joined with factor tables on the columns
 * they share. A factor table keyed by `language` is joined on the results' `target` (tokenizer
 * statistics describe the language transferred to). Every value used must be a finite number:
 * a missing or non-numeric cell is an error naming the file, line and column.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { readCsv } from "../io/text.ts";

/** Numeric columns ready for {@linkcode fitFactors}. */
export interface TransferData {
  /** The score per results row. */
  y: number[];
  /** One array per factor. */
  x: number[][];
  /** Factor names. */
  factors: string[];
  /** The key columns of each results row (model, source, target, task when present). */
  keys: Record<string, string>[];
}

interface Table {
  path: string;
  columns: string[];
  rows: { line: number; record: Record<string, string> }[];
}

async function readTable(path: string): Promise<Table> {
  const rows = await Array.fromAsync(readCsv(path));
  if (rows.length === 0) throw new FormatError(`'${path}' has no data rows`);
  return { path, columns: Object.keys(rows[0]!.record), rows };
}

const MISSING = new Set(["", "na", "nan", "null", "none", "n/a"]);

function numberAt(t: Table, line: number, col: string, value: string | undefined): number {
  if (value === undefined || MISSING.has(value.trim().toLowerCase())) {
    throw new FormatError(`'${t.path}' line ${line}: missing value in column '${col}'`);
  }
  const v = Number(value);
  if (value.trim() === "" || !Number.isFinite(v)) {
    throw new FormatError(
      `'${t.path}' line ${line}: '${value}' in column '${col}' is not a number`,
    );
  }
  return v;
}

/**
 * Reads the results table and the factor tables and returns the score and factor columns.
 * `scriptOf`, when given, maps a language code to its script; a factor named `script_match` that
 * no table has is then computed as 1 when source and target share a script, else 0 (a row whose
 * `form` is "romanised" has its target in Latin script).
 */
export async function readTransferData(
  resultsPath: string,
  factorPaths: readonly string[],
  factors: readonly string[],
  options: { score?: string; scriptOf?: (lang: string) => string | undefined } = {},
): Promise<TransferData> {
  const score = options.score ?? "score";
  const results = await readTable(resultsPath);
  if (!results.columns.includes(score)) {
    throw new FormatError(
      `'${resultsPath}': no score column '${score}' (columns: ${results.columns.join(", ")})`,
    );
  }
  const tables = await Promise.all(factorPaths.map(readTable));
  const keyCols = ["model", "source", "target", "task"].filter((c) => results.columns.includes(c));
  // where each factor comes from
  const source = factors.map((f) => {
    if (results.columns.includes(f)) return { kind: "results" as const };
    const t = tables.find((t) => t.columns.includes(f));
    if (t) return { kind: "table" as const, table: t };
    if (f === "script_match" && options.scriptOf) return { kind: "script" as const };
    const have = [...new Set([...results.columns, ...tables.flatMap((t) => t.columns)])];
    throw new FormatError(
      `Factor '${f}' is in none of ${
        [resultsPath, ...factorPaths].map((p) => `'${p}'`).join(", ")
      } (columns: ${have.join(", ")}${
        options.scriptOf ? "" : "; script_match is computed only for known languages"
      })`,
    );
  });
  // index each factor table by its join key
  const joins = new Map<Table, { on: [string, string][]; index: Map<string, number> }>();
  for (const t of tables) {
    const on: [string, string][] = [];
    for (const c of t.columns) {
      if (c === score || factors.includes(c)) continue;
      if (results.columns.includes(c)) on.push([c, c]);
      else if (c === "language" && results.columns.includes("target")) on.push([c, "target"]);
    }
    if (on.length === 0) {
      throw new FormatError(
        `'${t.path}' shares no key column with '${resultsPath}' (its columns: ${
          t.columns.join(", ")
        })`,
      );
    }
    const index = new Map<string, number>();
    t.rows.forEach((r, i) => {
      const k = JSON.stringify(on.map(([c]) => r.record[c]));
      if (index.has(k)) {
        throw new FormatError(
          `'${t.path}' line ${r.line}: a second row for ${
            on.map(([c]) => `${c}=${r.record[c]}`).join(", ")
          }`,
        );
      }
      index.set(k, i);
    });
    joins.set(t, { on, index });
  }
  const y: number[] = [],
    x: number[][] = factors.map(() => []),
    keys: Record<string, string>[] = [];
  for (const r of results.rows) {
    y.push(numberAt(results, r.line, score, r.record[score]));
    keys.push(Object.fromEntries(keyCols.map((c) => [c, r.record[c]!])));
    factors.forEach((f, j) => {
      const s = source[j]!;
      if (s.kind === "results") x[j]!.push(numberAt(results, r.line, f, r.record[f]));
      else if (s.kind === "script") {
        // a target evaluated in romanised form is written in Latin script
        const a = options.scriptOf!(r.record.source ?? "");
        const b = r.record.form === "romanised"
          ? "Latin"
          : options.scriptOf!(r.record.target ?? "");
        if (a === undefined || b === undefined) {
          throw new FormatError(
            `'${resultsPath}' line ${r.line}: script_match needs the scripts of source '${r.record.source}' and target '${r.record.target}'`,
          );
        }
        x[j]!.push(a === b ? 1 : 0);
      } else {
        const { on, index } = joins.get(s.table)!;
        const i = index.get(JSON.stringify(on.map(([, rc]) => r.record[rc])));
        if (i === undefined) {
          throw new FormatError(
            `'${resultsPath}' line ${r.line}: no row in '${s.table.path}' for ${
              on.map(([c, rc]) => `${c}=${r.record[rc]}`).join(", ")
            }`,
          );
        }
        const row = s.table.rows[i]!;
        x[j]!.push(numberAt(s.table, row.line, f, row.record[f]));
      }
    });
  }
  return { y, x, factors: [...factors], keys };
}
