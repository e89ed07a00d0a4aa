#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Perplexity and bits per byte of a Llama checkpoint over a text file, a JSONL field, or (by
 * default) the bundled model's held-out validation batch.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { FormatError } from "../lib/core/errors.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { evaluateLoss, tokenStream, tokenWindows } from "../lib/model/perplexity.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { loadExpandedModel } from "../lib/sparse/expansion_io.ts";

const USAGE = `
perplexity.ts — mean next-token loss, perplexity and (byte models) bits per byte.

Usage: scripts/perplexity.ts [options]
       deno task perplexity [-- options]

Input (one of; default: the validation batch in the model folder's golden.json):
  --text FILE          a UTF-8 text file, read as one document
  --jsonl FILE         a JSONL file; each record's --field (default "text") is one document
  --golden FILE        the validation batch of another golden.json, e.g. the bundled model's
                       for a checkpoint that sparse_expand.ts --save wrote from it

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes); Sparse
                       Expansion checkpoints written by sparse_expand.ts --save load too
  --field NAME         JSONL field (default text)
  --context N          tokens per window (default 256; at most the model's
                       max_position_embeddings)
  --stride N           start a window every N tokens (default: --context, no overlap)
  --max-windows N      evaluate at most N windows (default all)
  --backend B          ts | cpu | cuda
  --out DIR            output folder (default out/perplexity/<run-id>)
                       a chosen folder must be new or empty, unless --overwrite
  --json               also print results.json
  -h, --help           this text
`;

await runScript({ name: "perplexity.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      text: { type: "string" },
      jsonl: { type: "string" },
      golden: { type: "string" },
      field: { type: "string", default: "text" },
      context: { type: "string", default: "256" },
      stride: { type: "string" },
      "max-windows": { type: "string" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  if ([values.text, values.jsonl, values.golden].filter((v) => v !== undefined).length > 1) {
    throw new RangeError("Give one of --text, --jsonl and --golden");
  }
  const input = values.text ?? values.jsonl;
  const goldenFile = values.golden ?? `${values.model}/golden.json`;
  requirePermissions("perplexity.ts", [
    { name: "read", path: values.model },
    ...(input ? [{ name: "read" as const, path: input }] : []),
    ...(values.golden ? [{ name: "read" as const, path: values.golden }] : []),
    { name: "write", path: values.out ?? "out/perplexity" },
    { name: "read", path: values.out ?? "out/perplexity" },
  ]);
  const backend = selectBackend(values.backend);
  const model = await loadExpandedModel(values.model, { backend }); // dense, pruned or expanded
  const context = intFlag("--context", values.context, 1, model.config.maxPositionEmbeddings);
  const stride = values.stride === undefined ? context : intFlag("--stride", values.stride, 1);
  const tok = await loadTokenizer(values.model, model.config);
  let seqs: number[][], source: string;
  if (input) {
    const stream = await tokenStream(input, tok, values.jsonl ? { field: values.field } : {});
    seqs = tokenWindows(stream, context, stride);
    if (seqs.length === 0) {
      throw new RangeError(
        `'${input}' gives ${stream.length} tokens, fewer than one window of ${context + 1}`,
      );
    }
    source = values.jsonl ? `${input} (field "${values.field}")` : input;
  } else {
    const golden = JSON.parse(
      await Deno.readTextFile(goldenFile).catch(() => {
        throw new RangeError(
          values.golden
            ? `Cannot read --golden '${values.golden}'`
            : `No --text, --jsonl or --golden given and '${values.model}' has no golden.json validation batch`,
        );
      }),
    );
    seqs = golden?.val_batch?.sequences;
    if (!Array.isArray(seqs) || !seqs.every((q) => Array.isArray(q))) {
      throw new FormatError(`'${goldenFile}' has no val_batch.sequences array of token id lists`);
    }
    source = `${goldenFile} validation batch`;
  }
  if (values["max-windows"] !== undefined) {
    seqs = seqs.slice(0, intFlag("--max-windows", values["max-windows"], 1));
  }
  const bar = progress("perplexity", seqs.length);
  const perWindow: Record<string, number>[] = [];
  const t0 = performance.now();
  const total = evaluateLoss(model, seqs, {
    byteLevel: tok.byteLevel,
    onSequence: (s) => {
      perWindow.push({
        window: s.index,
        tokens: s.tokens,
        meanNats: s.nats / s.tokens,
        bitsPerByte: tok.byteLevel ? s.nats / Math.LN2 / s.byteTargets : NaN,
      });
      bar.tick();
    },
  });
  bar.stop();
  const seconds = (performance.now() - t0) / 1000;
  const results = {
    model: values.model,
    backend,
    source,
    windows: seqs.length,
    context: seqs[0]!.length - 1,
    ...total,
    tokensPerSecond: total.tokens / seconds,
  };
  const md =
    `# Perplexity\n\nModel \`${values.model}\` on the ${backend} backend; ${source}; ${seqs.length} windows of ${results.context} tokens.\n\n| metric | value |\n|---|---|\n| mean loss (nats/token) | ${
      total.meanNats.toFixed(6)
    } |\n| perplexity | ${total.perplexity.toFixed(4)} |\n| bits per byte | ${
      Number.isNaN(total.bitsPerByte) ? "— (not a byte model)" : total.bitsPerByte.toFixed(4)
    } |\n| tokens | ${total.tokens} |\n| tokens/s | ${results.tokensPerSecond.toFixed(0)} |\n`;
  const files = await writeOutputs(await runFolder("perplexity", values), {
    "results.json": JSON.stringify(results, null, 2),
    "windows.csv": stringify(perWindow, {
      columns: ["window", "tokens", "meanNats", "bitsPerByte"],
    }),
    "report.md": md,
  });
  console.log(
    `${source}: ${total.meanNats.toFixed(6)} nats/token, perplexity ${total.perplexity.toFixed(3)}${
      Number.isNaN(total.bitsPerByte) ? "" : `, ${total.bitsPerByte.toFixed(4)} bits/byte`
    } (${total.tokens} tokens, ${backend}, ${results.tokensPerSecond.toFixed(0)} tokens/s)`,
  );
  console.error(`wrote ${files.join(", ")}`);
  if (values.json) console.log(JSON.stringify(results, null, 2));
  model.dispose();
});
