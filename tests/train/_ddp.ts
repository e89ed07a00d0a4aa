// The data-parallel test case shared by tests/train/ddp_test.ts and the ranks it starts
// (tests/train/_ddp_rank.ts): a small from-scratch Llama with odd sizes, windows of random
// lengths (padding) cut from real text (the UD PUD English sentences as BOS + UTF-8 bytes), and
// the hyperparameters of 20 AdamW steps. Everything follows from the seed, on every rank.
import type { LlamaConfig } from "../../lib/model/config.ts";
import { Rng } from "../../lib/core/rng.ts";
import { LlamaParams } from "../../lib/train/params.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** The text the windows come from (read with --allow-read=data). */
export const TEXT = `${ROOT}data/multilingual_text/ud_pud/pud_en.jsonl`;

/** The model, its initial weights and the training windows of `seed`. */
export function ddpCase(seed: number, tied: boolean) {
  const config: LlamaConfig = {
    vocabSize: 258,
    hiddenSize: 24,
    intermediateSize: 40,
    numLayers: 3,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 6,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: tied,
    maxPositionEmbeddings: 64,
    bosTokenId: 256,
    eosTokenIds: [257],
    tokenizer: "bytes",
  };
  const rng = new Rng(seed), enc = new TextEncoder(), stream: number[] = [];
  for (const line of Deno.readTextFileSync(TEXT).split("\n")) {
    if (line.trim()) stream.push(256, ...enc.encode(JSON.parse(line).text as string));
    if (stream.length > 4000) break;
  }
  const windows: number[][] = [];
  for (let at = 0; windows.length < 37;) {
    const len = 8 + rng.int(26);
    windows.push(stream.slice(at, at + len));
    at += len;
  }
  const params = LlamaParams.init(config, rng, 0.1);
  return { config, params, windows };
}

/** The hyperparameters (per rank: microBatch and accumulate come from the test). */
export const DDP_OPTIONS = { steps: 20, lr: 3e-3, minLr: 3e-4, warmup: 3, clip: 1, seed: 11 };
