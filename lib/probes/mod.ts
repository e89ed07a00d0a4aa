/**
 * Truth probes on contrast-pair hidden states and their context-sensitivity metrics, as in
 * Schouten et al., "Truth-value judgment in language models: 'truth directions' are context
 * sensitive" (code: sfschouten/tvj-in-llms): LR, mass-mean (and its iid and unsupervised
 * variants), CCS, CCR and the LM-head baseline; per-side centring, probabilities, calibration;
 * E1–E4, error_sv and the other metrics with the authors' aggregates; direction similarity.
 * The probes take plain arrays (see `pairs.ts` for the layout); `collect.ts` runs a model over
 * contrast prompts to get them, `cache.ts` keeps them on disk and `data.ts` loads the truth items.
 *
 * @module
 */
export * from "./pairs.ts";
export * from "./center.ts";
export * from "./predict.ts";
export * from "./lr.ts";
export * from "./mass_mean.ts";
export * from "./cluster.ts";
export * from "./ccs.ts";
export * from "./ccr.ts";
export * from "./lm_head.ts";
export * from "./calibrate.ts";
export * from "./aggregate.ts";
export * from "./metrics.ts";
export * from "./similarity.ts";
export * from "./groups.ts";
export * from "./collect.ts";
export * from "./cache.ts";
export * from "./data.ts";
