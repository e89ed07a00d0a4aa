// Model throughput (`deno task bench`): prefill of 256 tokens and KV-cached greedy decode of 64
// tokens with the bundled tinyllama-bytes, on each available backend (the ts backend as
// baseline). Tokens/s from the same runs are printed at the end. The PyTorch CPU eager peer on
// the same weights is bench/torch_model_peer.py (run separately; the project needs no Python).
import { availableBackends, type Backend } from "../ffi/mod.ts";
import { argmax } from "../lib/model/generate.ts";
import { KVCache, LlamaModel } from "../lib/model/llama.ts";

const DIR = new URL("../data/models/tinyllama-bytes", import.meta.url).pathname;
const golden = JSON.parse(await Deno.readTextFile(`${DIR}/golden.json`));
const seq: number[] = golden.val_batch.sequences[0].slice(0, 256);
const prompt: number[] = golden.prompts[0].input_ids;
const avail = availableBackends();
const stats = new Map<string, { tokens: number; best: number; total: number; calls: number }>();

function record(key: string, tokens: number, fn: () => void): () => void {
  return () => {
    const t = performance.now();
    fn();
    const dt = performance.now() - t;
    const s = stats.get(key) ?? { tokens, best: Infinity, total: 0, calls: 0 };
    s.best = Math.min(s.best, dt);
    s.total += dt;
    s.calls++;
    stats.set(key, s);
  };
}

for (const backend of ["ts", "cpu", "cuda"] as Backend[]) {
  if (!avail[backend].ok) continue;
  const model = await LlamaModel.load(DIR, { backend });
  Deno.bench({
    name: `prefill 256 tokens (${backend})`,
    group: "prefill",
    baseline: backend === "ts",
    ...(backend === "ts" ? { n: 3, warmup: 1 } : {}),
    fn: record(`prefill 256 | ${backend}`, 256, () => void model.forward(seq)),
  });
  Deno.bench({
    name: `decode 64 tokens after a 32-token prompt (${backend})`,
    group: "decode",
    baseline: backend === "ts",
    ...(backend === "ts" ? { n: 3, warmup: 1 } : {}),
    fn(b) {
      const cache = new KVCache(model.config, prompt.length + 64);
      let next = argmax(model.forward(prompt, { cache, lastOnly: true }).data);
      b.start();
      record(`decode 64 | ${backend}`, 64, () => {
        for (let i = 0; i < 64; i++) {
          next = argmax(model.forward([next], { cache, lastOnly: true }).data);
        }
      })();
      b.end();
    },
  });
}

globalThis.addEventListener("unload", () => {
  console.log("\ntokens/s per case                         mean       best");
  for (const [key, s] of stats) {
    const r = (ms: number) => (s.tokens / ms * 1000).toFixed(0).padStart(10);
    console.log(`  ${key.padEnd(36)} ${r(s.total / s.calls)} ${r(s.best)}`);
  }
});
