/**
 * The ambiguous-definite-descriptions benchmark (Schouten et al., 2023): items and their loaders,
 * the authors' answer parsing and scoring, live evaluation against OpenAI-compatible endpoints,
 * and new fragments from local SPARQL results.
 *
 * @module
 */
export * from "./benchmark.ts";
export * from "./parse.ts";
export * from "./metrics.ts";
export * from "./client.ts";
export * from "./live.ts";
export * from "./fragment.ts";
