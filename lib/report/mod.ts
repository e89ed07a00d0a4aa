/**
 * Report helpers: dependency-free SVG charts and an HTML page wrapper.
 *
 * @module
 */
export * from "./svg.ts";
export * from "./markdown.ts";
