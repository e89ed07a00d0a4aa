// Seeded inputs of the quantize-family exchange test (tests/train/compressed_test.ts and its
// ranks): 7 × 1031 normals per (seed, call, rank).
import { Rng } from "../../lib/core/rng.ts";

/** Rank `rank`'s tensor in call `call`. */
export function compressInput(seed: number, call: number, rank: number): Float32Array {
  return new Rng(seed * 1000 + call * 10 + rank).normalArray(7 * 1031);
}
