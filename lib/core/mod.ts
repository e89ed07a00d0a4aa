/**
 * Core types used across lmkit: the row-major matrix, a seeded RNG, error classes, progress
 * bars and permission checks.
 *
 * @module
 */
export * from "./errors.ts";
export * from "./matrix.ts";
export * from "./rng.ts";
export * from "./progress.ts";
export * from "./permissions.ts";
export * from "./args.ts";
export * from "./numeric.ts";
export * from "./run_folder.ts";
