/**
 * File I/O: output writing (all-or-nothing).
 *
 * @module
 */
export * from "./output.ts";
