/**
 * Toxicity (Schouten et al.; Tufa et al.): lexicon matching, lexicons, toxic-span metrics and
 * detectors, the data sets, a transparent classifier, and comment statistics across languages,
 * events, topics and reply depth.
 *
 * @module
 */
export * from "./matcher.ts";
export * from "./lexicon.ts";
export * from "./spans.ts";
export * from "./datasets.ts";
export * from "./construct.ts";
export * from "./classifier.ts";
export * from "./search.ts";
export * from "./sentiment.ts";
export * from "./comments.ts";
export * from "./stats.ts";
export * from "./dist.ts";
