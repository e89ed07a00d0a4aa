/**
 * Statistics shared by the analyses: mean and standard deviation, distributions, the
 * two-proportion test, rank correlations and bootstrap intervals.
 *
 * @module
 */
export * from "./descriptive.ts";
export * from "./distributions.ts";
export * from "./tests.ts";
