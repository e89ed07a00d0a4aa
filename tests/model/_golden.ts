// Shared loading of the bundled model and its golden.json test vectors.
import { LlamaModel } from "../../lib/model/llama.ts";
import type { Backend } from "../../ffi/mod.ts";

export const MODEL_DIR = new URL("../../data/models/tinyllama-bytes", import.meta.url).pathname;

export interface Golden {
  prompts: { lang: string; input_ids: number[]; last_logits: number[]; top5_ids: number[][] }[];
  greedy_continuation: { prompt_ids: number[]; generated_ids: number[] };
  val_batch: { sequences: number[][]; mean_loss_nats: number };
}

export const golden: Golden = JSON.parse(await Deno.readTextFile(`${MODEL_DIR}/golden.json`));

const cache = new Map<Backend, LlamaModel>();
export async function model(backend: Backend): Promise<LlamaModel> {
  let m = cache.get(backend);
  if (!m) {
    m = await LlamaModel.load(MODEL_DIR, { backend });
    cache.set(backend, m);
  }
  return m;
}

export function top5(row: ArrayLike<number>): number[] {
  return Array.from(row, (v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, 5).map((x) => x[1]);
}
