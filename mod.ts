/**
 * lmkit: a Deno toolkit for research on language-model compression and language data.
 *
 * This module holds the entry points a user reaches for first: load a Llama checkpoint and its
 * tokenizer, score and continue text, prune or quantize a model, train one, and the analyses
 * (truth probes, Wasserstein neurons, toxicity, cross-lingual tokenizer statistics, ambiguous
 * descriptions). Each area has its own module with everything it offers:
 * `@lmkit/lmkit/model`, `/sparse`, `/quant`, `/train`, `/comm`, `/probes`, `/wasserstein`,
 * `/toxicity`, `/crosslingual`, `/ambiguity`, `/stats`, `/io`, `/kernels`, `/core` and
 * `/report` (in a checkout: `lib/<area>/mod.ts`).
 *
 * @example
 * ```ts
 * import { Matrix, matmul, wasserstein1 } from "./mod.ts";
 * const c = matmul(Matrix.from([[1, 2]]), Matrix.from([[3], [4]]), { backend: "ts" });
 * if (c.get(0, 0) !== 11) throw new Error("wrong product");
 * if (wasserstein1([0, 1], [2, 3]) !== 2) throw new Error("wrong distance");
 * ```
 *
 * @module
 */

// matrices, randomness and the kernel backends
export { Matrix, Rng } from "./lib/core/mod.ts";
export { type Backend, matmul, selectBackend } from "./lib/kernels/mod.ts";

// models: load, tokenize, score, continue, calibrate
export {
  BUNDLED_MODEL_DIR,
  checkGolden,
  generate,
  type LayerSelector,
  LlamaModel,
  loadTokenizer,
  perplexity,
  type PerplexityResult,
  runCalibration,
  type TextTokenizer,
  tokenWindows,
} from "./lib/model/mod.ts";

// compression: pruning, Sparse Expansion, GPTQ/RTN, QUIK
export { loadExpandedModel, pruneLayers, pruneModel, sparseExpand } from "./lib/sparse/mod.ts";
export { loadQuantizedModel, quantizeLayers, quantizeModel, quikModel } from "./lib/quant/mod.ts";

// training and communication between processes
export { loadTextData, Trainer } from "./lib/train/mod.ts";
export { type Communicator, createCommunicator } from "./lib/comm/mod.ts";

// analyses
export { collectContrastStates, contextMetrics, lrProbe, massMeanProbe } from "./lib/probes/mod.ts";
export { neuronWasserstein, wasserstein1 } from "./lib/wasserstein/mod.ts";
export { evaluateSpans, ldnoobw, LexiconMatcher, ToxicityStats } from "./lib/toxicity/mod.ts";
export { fitFactors, loadSubwordTokenizer, tokenizerStats } from "./lib/crosslingual/mod.ts";
export { classificationReport, loadItems, parseAnswer, scoreItems } from "./lib/ambiguity/mod.ts";
