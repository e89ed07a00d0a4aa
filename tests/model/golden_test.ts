// The bundled tinyllama-bytes reproduces golden.json (computed by PyTorch in f32 on the training
// GPU and cross-checked against HF transformers) on every available backend.
import { assertAlmostEquals, assertClose, assertEquals } from "@std/assert";
import { generate } from "../../lib/model/generate.ts";
import { evaluateLoss } from "../../lib/model/perplexity.ts";
import { NATIVE } from "../_util.ts";
import { golden, model, top5 } from "./_golden.ts";

const BACKENDS = [{ backend: "ts" as const, ignore: false }, ...NATIVE];

for (const { backend, ignore } of BACKENDS) {
  Deno.test({
    name:
      `golden ${backend}: last logits within 1e-4 relative L2, same top-5 ids at every position`,
    ignore,
    async fn() {
      const m = await model(backend);
      for (const p of golden.prompts) {
        const logits = m.forward(p.input_ids);
        const V = logits.cols;
        assertClose(logits.data.subarray((logits.rows - 1) * V), p.last_logits, { rtol: 1e-4 });
        for (let t = 0; t < logits.rows; t++) {
          assertEquals(
            top5(logits.data.subarray(t * V, (t + 1) * V)),
            p.top5_ids[t],
            `${p.lang} position ${t}`,
          );
        }
      }
    },
  });
  Deno.test({
    name: `golden ${backend}: the same 50-token greedy continuation (KV cache)`,
    ignore,
    async fn() {
      const g = golden.greedy_continuation;
      const ids = generate(await model(backend), g.prompt_ids, { maxNewTokens: 50 });
      assertEquals(ids, g.generated_ids);
    },
  });
}

for (const { backend, ignore } of NATIVE) {
  Deno.test({
    name: `golden ${backend}: validation batch loss (64 × 256 tokens) to 1e-4`,
    ignore,
    async fn() {
      const r = evaluateLoss(await model(backend), golden.val_batch.sequences);
      assertEquals(r.tokens, 64 * 256);
      assertAlmostEquals(r.meanNats, golden.val_batch.mean_loss_nats, 1e-4);
    },
  });
}

Deno.test("golden ts: the first 3 validation sequences give the cpu backend's loss", async () => {
  const seqs = golden.val_batch.sequences.slice(0, 3);
  const ts = evaluateLoss(await model("ts"), seqs), c = evaluateLoss(await model("cpu"), seqs);
  assertAlmostEquals(ts.meanNats, c.meanNats, 1e-5);
});
