#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out
/**
 * Builds new items of the ambiguous-definite-descriptions benchmark from a fragment definition
 * (YAML with a Wikidata SPARQL query and templates) and a downloaded copy of that query's
 * results, offline and seeded.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { itemRecord } from "../lib/ambiguity/benchmark.ts";
import {
  buildFragment,
  parseFragmentDefinition,
  parseSparqlJson,
} from "../lib/ambiguity/fragment.ts";
import { promptStyle } from "../lib/ambiguity/parse.ts";

const USAGE = `
ambiguity_fragment.ts — new benchmark items from a fragment definition and its SPARQL results.

Usage: scripts/ambiguity_fragment.ts --definition P6_P19.yaml --results P6_P19.json [options]
       deno task ambiguity-fragment [-- options]

Options:
  --definition FILE   fragment definition YAML (the authors' definitions/*.yaml format)
  --results FILE      the query's results as SPARQL 1.1 JSON (e.g. saved from
                      https://query.wikidata.org with "Download JSON"); the times may be bound as
                      startTime/endTime or, as in the authors' queries, startTimeLabel/endTimeLabel
  --styles S,T        prompt styles (default direct,step_by_step5)
  --seed N            seed of the date draws, option order and sampling (default 42)
  --sample N          keep N items, half de dicto and half de re (the released fragments have 100)
  --key NAME          fragment key (default: the definition's file name, e.g. P6_P19)
  --out DIR           output folder (default out/ambiguity_fragments/<run-id>)
                      a chosen folder must be new or empty, unless --overwrite

Writes KEY_prompts_STYLE.jsonl per style (items that ambiguity_eval.ts live can ask) and
KEY_summary.json (pairs found, rows dropped by reason, items written).
`;

await runScript({ name: "ambiguity_fragment.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      definition: { type: "string" },
      results: { type: "string" },
      styles: { type: "string", default: "direct,step_by_step5" },
      seed: { type: "string", default: "42" },
      sample: { type: "string" },
      key: { type: "string" },
      ...RUN_FOLDER_FLAGS,
    },
  });
  if (!values.definition || !values.results) {
    throw new RangeError("Both --definition and --results are needed (see --help)");
  }
  requirePermissions("ambiguity_fragment.ts", [
    { name: "read", path: values.definition },
    { name: "read", path: values.results },
    { name: "write", path: values.out ?? "out/ambiguity_fragments" },
    { name: "read", path: values.out ?? "out/ambiguity_fragments" },
  ]);
  const seed = intFlag("--seed", values.seed);
  const sample = values.sample === undefined ? undefined : intFlag("--sample", values.sample, 2);
  const styles = values.styles.split(",").map((s) => promptStyle(s.trim()).name);
  const key = values.key ??
    values.definition.split("/").pop()!.replace(/\.ya?ml$/, "");
  const def = parseFragmentDefinition(
    await Deno.readTextFile(values.definition),
    values.definition,
  );
  const rows = parseSparqlJson(await Deno.readTextFile(values.results), values.results);
  const files: Record<string, string> = {};
  let summary: Record<string, unknown> = {};
  for (const style of styles) {
    const built = buildFragment(def, rows, {
      key,
      style,
      seed,
      ...(sample === undefined ? {} : { sample }),
    });
    if (built.items.length === 0) {
      throw new RangeError(
        `'${values.results}' gives no item for '${key}': no entity has two relations with ` +
          `different properties and disjoint time spans (${rows.length} rows)`,
      );
    }
    files[`${key}_prompts_${style}.jsonl`] = built.items.map((it) =>
      JSON.stringify(itemRecord(it))
    ).join("\n") + "\n";
    summary = {
      key,
      name: def.name,
      rows: rows.length,
      dropped: built.dropped,
      pairs: built.pairs,
      items: built.items.length,
      seed,
      styles,
    };
  }
  files[`${key}_summary.json`] = JSON.stringify(summary, null, 1) + "\n";
  const written = await writeOutputs(await runFolder("ambiguity_fragments", values), files);
  console.log(JSON.stringify(summary));
  console.error(`wrote ${written.join(", ")}`);
});
