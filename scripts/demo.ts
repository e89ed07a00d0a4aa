#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * The main job on the bundled model, in one run: the kernel self-check, the golden validation
 * batch's loss and bits per byte against golden.json, and the greedy continuation against
 * golden.json's. Exits 1 when any of the three disagrees.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { intFlag } from "../lib/core/args.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { runScript } from "../lib/core/script.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { kernelCheckTable, kernelSelfCheck } from "../lib/kernels/selfcheck.ts";
import { generate } from "../lib/model/generate.ts";
import { checkGolden } from "../lib/model/golden.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { selectBackend } from "../ffi/mod.ts";
import { FormatError } from "../lib/core/errors.ts";

const USAGE = `
demo.ts — the main job: the kernel self-check, the bundled model's validation loss and bits per
byte against its golden.json, and its greedy continuation against golden.json's.

Usage: deno task demo [-- options]
       scripts/demo.ts [options]

Options:
  --model DIR     a model folder with a golden.json (default data/models/tinyllama-bytes)
  --backend B     ts | cpu | cuda (default: LMKIT_BACKEND, else the best available)
  --seed N        seed of the self-check's random inputs (default 1)
  --tolerance X   largest |Δ| in nats/token that still matches golden.json (default 1e-4)
  --out DIR       output folder (default out/demo/<run-id>)
                  a chosen folder must be new or empty, unless --overwrite
  -h, --help      this text

Takes about 5 s on a 2-core machine. Writes results.json and report.md; exits 1 when a kernel,
the loss or the continuation disagrees with its reference.
`;

/** golden.json's greedy continuation: its prompt and the ids PyTorch generated. */
async function goldenContinuation(dir: string): Promise<{ prompt: number[]; ids: number[] }> {
  const file = `${dir}/golden.json`;
  const g = JSON.parse(await Deno.readTextFile(file));
  const prompt = g?.greedy_continuation?.prompt_ids, ids = g?.greedy_continuation?.generated_ids;
  const isIds = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isInteger(x));
  if (!isIds(prompt) || !isIds(ids)) {
    throw new FormatError(`'${file}' lacks greedy_continuation.prompt_ids and generated_ids`);
  }
  return { prompt, ids };
}

await runScript({ name: "demo.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      backend: { type: "string" },
      seed: { type: "string", default: "1" },
      tolerance: { type: "string", default: "1e-4" },
      ...RUN_FOLDER_FLAGS,
    },
    strict: true,
    allowPositionals: false,
  });
  const seed = intFlag("--seed", values.seed);
  const tolerance = Number(values.tolerance);
  if (!(tolerance > 0)) {
    throw new RangeError(`--tolerance '${values.tolerance}' is not a positive number`);
  }
  const backend = selectBackend(values.backend);
  const golden = await goldenContinuation(values.model);

  // 1. kernels
  const check = kernelSelfCheck({ seed });
  const backends = Object.entries(check.backends).map(([b, s]) =>
    `${b} ${s.ok ? "✓" : `✗ (${s.reason})`}`
  ).join(", ");
  console.log(`1. kernels: ${backends}`);
  const natives = check.kernels.some((r) => r.backend !== "ts");
  console.log(
    natives
      ? `   ${
        check.ok ? "every native kernel agrees with ts" : "DISAGREEMENT"
      } (worst relative error ${check.worstRelErr.toExponential(2)})`
      : "   no native kernel loaded, so there was nothing to compare with ts (see why above)",
  );

  // 2. validation loss
  const model = await LlamaModel.load(values.model, { backend });
  const tok = await loadTokenizer(values.model, model.config);
  const t0 = performance.now();
  const loss = await checkGolden(model, { golden: values.model, tolerance });
  const seconds = (performance.now() - t0) / 1000, ref = loss.reference;
  const delta = loss.absDelta, lossOk = loss.ok, goldenBpb = ref.bitsPerByte;
  const bpb = (x: number) => Number.isNaN(x) ? "—" : x.toFixed(4);
  console.log(
    `2. validation batch (${ref.tokens} tokens, ${backend}, ${
      (ref.tokens / seconds).toFixed(0)
    } tokens/s): ${loss.meanNats.toFixed(6)} nats/token, ${bpb(loss.bitsPerByte)} bits/byte`,
  );
  console.log(
    `   ${lossOk ? "matches" : "DIFFERS FROM"} golden.json: ${
      ref.meanNats.toFixed(6)
    } nats/token, ${bpb(goldenBpb)} bits/byte (|Δ| = ${
      delta.toExponential(1)
    } nats/token, tolerance ${tolerance})`,
  );

  // 3. greedy continuation
  const ids = generate(model, golden.prompt, { maxNewTokens: golden.ids.length });
  const firstDiff = ids.findIndex((id, i) => id !== golden.ids[i]);
  const genOk = firstDiff < 0;
  const text = tok.decode(ids);
  console.log(
    `3. greedy continuation of ${JSON.stringify(tok.decode(golden.prompt))}: ${
      JSON.stringify(text)
    }`,
  );
  console.log(
    `   ${
      genOk
        ? `identical to golden.json's (${ids.length} tokens)`
        : `DIFFERS FROM golden.json's at token ${firstDiff + 1} of ${ids.length}`
    }`,
  );
  model.dispose();

  const ok = check.ok && lossOk && genOk;
  const results = {
    model: values.model,
    backend,
    kernels: check,
    validation: {
      tokens: ref.tokens,
      meanNats: loss.meanNats,
      bitsPerByte: loss.bitsPerByte,
      goldenMeanNats: ref.meanNats,
      goldenBitsPerByte: goldenBpb,
      absDelta: delta,
      tolerance,
      ok: lossOk,
    },
    continuation: { ids, text, golden: golden.ids, ok: genOk },
    ok,
  };
  const md = [
    "# lmkit demo",
    "",
    `Model \`${values.model}\` on the ${backend} backend. ${
      ok ? "Every check passed." : "**A check failed.**"
    }`,
    "",
    "## 1. Kernels against their TypeScript reference",
    "",
    `Backends: ${backends}.`,
    "",
    kernelCheckTable(check.kernels),
    "",
    "## 2. Validation batch against golden.json",
    "",
    "| | nats/token | bits/byte |",
    "|---|---|---|",
    `| lmkit (${backend}) | ${loss.meanNats.toFixed(6)} | ${bpb(loss.bitsPerByte)} |`,
    `| golden.json (PyTorch) | ${ref.meanNats.toFixed(6)} | ${bpb(goldenBpb)} |`,
    "",
    `|Δ| = ${delta.toExponential(2)} nats/token (tolerance ${tolerance}): ${
      lossOk ? "matches" : "differs"
    }.`,
    "",
    "## 3. Greedy continuation against golden.json",
    "",
    `Prompt ${JSON.stringify(tok.decode(golden.prompt))} → ${JSON.stringify(text)}: ${
      genOk ? "identical" : `differs at token ${firstDiff + 1}`
    }.`,
    "",
  ].join("\n");
  const files = await writeOutputs(await runFolder("demo", values), {
    "results.json": JSON.stringify(results, null, 2) + "\n",
    "report.md": md,
  });
  console.error(`wrote ${files.join(", ")}`);
  if (!ok) throw new Error("the demo's checks did not all pass (see above)");
});
