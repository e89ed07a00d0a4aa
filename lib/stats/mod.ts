/**
 * Statistics shared by the analyses: distributions, the two-proportion test, rank correlations
 * and bootstrap intervals.
 *
 * @module
 */
export * from "./distributions.ts";
export * from "./tests.ts";
