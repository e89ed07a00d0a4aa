/**
 * Cross-lingual transfer and script (Tufa et al.): real tokenizers behind one interface,
 * fertility and related statistics over word-segmented text, Unicode script mix, romanisation,
 * and the regression of transfer scores on their factors (standardised coefficients, LMG,
 * bootstrap intervals).
 *
 * @module
 */
export * from "./tokenizers.ts";
export * from "./corpus.ts";
export * from "./script.ts";
export * from "./romanize.ts";
export * from "./stats.ts";
export * from "./regression.ts";
export * from "./transfer.ts";
