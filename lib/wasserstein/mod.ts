/**
 * Wasserstein distances (1-D W1, scipy's definition; W1 to N(0,1)) and Wasserstein neurons.
 *
 * @module
 */
export * from "./distance.ts";
export * from "./neurons.ts";
