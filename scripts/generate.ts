#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Continues a prompt with a Llama checkpoint: greedy by default, or seeded sampling.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { intFlag, numFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { runScript } from "../lib/core/script.ts";
import { type Backend, selectBackend } from "../ffi/mod.ts";
import { checkGenerationLength, generate } from "../lib/model/generate.ts";
import { loadExpandedModel } from "../lib/sparse/expansion_io.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";

const USAGE = `
generate.ts — continue a prompt with a Llama model (KV cache; greedy or seeded sampling).

Usage: scripts/generate.ts [options]
       deno task generate [-- options]

Options:
  --model DIR          HF checkpoint folder (default data/models/tinyllama-bytes), also a
                       Sparse Expansion checkpoint from sparse_expand.ts --save
  --prompt TEXT        (default "The city of Paris is in France.")
  --max-new-tokens N   (default 50; prompt and new tokens together at most the model's
                       max_position_embeddings)
  --temperature T      0 = greedy (default 0)
  --top-k K            sample among the K most likely tokens
  --top-p P            nucleus sampling threshold in (0, 1]
  --seed N             sampler seed (default 0)
  --stop-at-eos        stop when the model emits EOS
  --backend B          ts | cpu | cuda (default: LMKIT_BACKEND, else the best available)
  --json               print one JSON object instead of the text
  -h, --help           this text
`;

await runScript({ name: "generate.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      prompt: { type: "string", default: "The city of Paris is in France." },
      "max-new-tokens": { type: "string", default: "50" },
      temperature: { type: "string", default: "0" },
      "top-k": { type: "string" },
      "top-p": { type: "string" },
      seed: { type: "string", default: "0" },
      "stop-at-eos": { type: "boolean", default: false },
      backend: { type: "string" },
      json: { type: "boolean", default: false },
    },
    strict: true,
  });
  requirePermissions("generate.ts", [{ name: "read", path: values.model }]);
  const backend: Backend = selectBackend(values.backend);
  const maxNewTokens = intFlag("--max-new-tokens", values["max-new-tokens"], 0);
  // every option checked before the prompt is printed
  const sampling = {
    temperature: numFlag("--temperature", values.temperature, 0),
    seed: intFlag("--seed", values.seed),
    ...(values["top-k"] !== undefined ? { topK: intFlag("--top-k", values["top-k"], 1) } : {}),
    ...(values["top-p"] !== undefined
      ? { topP: numFlag("--top-p", values["top-p"], 1e-9, 1) }
      : {}),
  };
  // dense, pruned or Sparse Expansion checkpoints; experts held as bitmaps, the fastest form for
  // decoding a few tokens at a time
  const model = await loadExpandedModel(values.model, { backend, experts: "bitmap" });
  const tok = await loadTokenizer(values.model, model.config);
  const prompt = tok.encode(values.prompt);
  checkGenerationLength(model.config, prompt.length, maxNewTokens); // before the prompt is printed
  if (!values.json) {
    console.error(`model ${values.model} · backend ${backend} · ${prompt.length} prompt tokens`);
    Deno.stdout.writeSync(new TextEncoder().encode(values.prompt));
  }
  const t0 = performance.now();
  const ids = generate(model, prompt, {
    maxNewTokens,
    ...sampling,
    ...(values["stop-at-eos"] ? { stopIds: model.config.eosTokenIds } : {}),
    ...(values.json ? {} : {
      onToken: (() => {
        // stream whole characters: decode the growing tail, print what became valid
        const pending: number[] = [];
        return (id: number) => {
          pending.push(id);
          const text = tok.decode(pending);
          if (!text.endsWith("\ufffd")) {
            Deno.stdout.writeSync(new TextEncoder().encode(text));
            pending.length = 0;
          }
        };
      })(),
    }),
  });
  const seconds = (performance.now() - t0) / 1000;
  const result = {
    model: values.model,
    backend,
    prompt: values.prompt,
    promptIds: prompt,
    generatedIds: ids,
    text: tok.decode(ids),
    tokensPerSecond: ids.length / seconds,
  };
  if (values.json) console.log(JSON.stringify(result, null, 2));
  else console.log(`\n[${ids.length} tokens, ${result.tokensPerSecond.toFixed(1)} tokens/s]`);
  model.dispose();
});
