#!/usr/bin/env -S deno run --no-prompt --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND --allow-read --allow-write=out
/**
 * Kernel self-check: which backends load here, each kernel's agreement with its TypeScript
 * reference on fresh random inputs, and a small speed table. Writes results.json, kernels.csv,
 * speed.csv and report.md to --out.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { kernelCheckTable, kernelSelfCheck } from "../lib/kernels/selfcheck.ts";
import { writeOutputs } from "../lib/io/output.ts";

const USAGE = `
selfcheck.ts — which kernel backends run here, their agreement with the TypeScript
reference, and their speed.

Usage: deno task demo [-- options]
       scripts/selfcheck.ts [options]

Options:
  --out DIR     output folder (default out/selfcheck/<run-id>)
                a chosen folder must be new or empty, unless --overwrite
  --seed N      random seed (default 1)
  --json        also print results.json to stdout
  -h, --help    this text
`;

await runScript({
  name: "selfcheck.ts",
  usage: USAGE,
  needs: [{ name: "ffi", path: "ffi/build" }],
}, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      ...RUN_FOLDER_FLAGS,
      seed: { type: "string", default: "1" },
      json: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  requirePermissions("selfcheck.ts", [{ name: "write", path: values.out ?? "out/selfcheck" }, {
    name: "read",
    path: values.out ?? "out/selfcheck",
  }]);
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new RangeError(`--seed '${values.seed}' is not an integer`);
  const check = kernelSelfCheck({ seed });
  const avail = check.backends;
  console.log("backends:");
  for (const [b, st] of Object.entries(avail)) {
    const lib = check.libraries[b], extra = lib ? ` ${JSON.stringify(lib)}` : "";
    console.log(`  ${b.padEnd(5)} ${st.ok ? "available" : `unavailable: ${st.reason}`}${extra}`);
  }
  const rows = check.kernels, table = kernelCheckTable(rows);
  console.log(`\n${table}`);
  const worst = check.worstRelErr, ok = check.ok;
  console.log(
    `\n${ok ? "all native kernels agree with ts" : "DISAGREEMENT"} (worst relative error ${
      worst.toExponential(2)
    })`,
  );
  const results = { seed, ...check };
  const json = JSON.stringify(results, null, 2);
  const report = `# lmkit kernel self-check\n\nSeed ${seed}. Backends: ${
    Object.entries(avail).map(([b, s]) => `${b} ${s.ok ? "✓" : `✗ (${s.reason})`}`).join(", ")
  }.\n\n${table}\n\nTimes are per call and include host↔device copies on cuda.\n`;
  const columns = ["kernel", "shape", "backend", "relErrVsTs", "ms", "gflops", "speedupVsTs"];
  const files = await writeOutputs(await runFolder("selfcheck", values), {
    "results.json": json,
    "kernels.csv": stringify(rows.map((r) => ({ ...r })), { columns }),
    "report.md": report,
  });
  console.log(`wrote ${files.join(", ")}`);
  if (values.json) console.log(json);
  if (!ok) Deno.exit(1);
});
