/**
 * `@std/cli`'s `parseArgs` name over `node:util`'s `parseArgs` (JSR is out of reach here).
 *
 * @module
 */
export { parseArgs } from "node:util";
