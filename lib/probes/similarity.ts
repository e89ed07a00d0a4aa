/**
 * Cosine similarity of probe directions (the authors' `DirectionSimilarity`,
 * direction_analysis.py: each direction multiplied by its probe's calibration sign, then duckdb's
 * `list_cosine_similarity` a·b / (‖a‖‖b‖) between every pair), for comparisons across layers,
 * methods, variants and datasets.
 *
 * @module
 */
import { ShapeError } from "../core/errors.ts";
import { _checkVector } from "./_check.ts";

/**
 * a·b / (‖a‖‖b‖); NaN when either is the zero vector.
 *
 * @example
 * ```ts
 * import { cosineSimilarity } from "./similarity.ts";
 * import { assertAlmostEquals } from "@std/assert";
 * assertAlmostEquals(cosineSimilarity([1, 0], [1, 1]), Math.SQRT1_2, 1e-15);
 * ```
 */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  _checkVector("cosineSimilarity", "a", a);
  _checkVector("cosineSimilarity", "b", b, a.length);
  return cos(a, b);
}

function cos(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number, y = b[i] as number;
    ab += x * y, aa += x * x, bb += y * y;
  }
  return aa === 0 || bb === 0 ? NaN : ab / Math.sqrt(aa * bb);
}

/**
 * The k×k matrix of cosine similarities between k directions of one length, each first multiplied
 * by its sign (`signs[i]`, e.g. the probe's calibration sign; default all +1).
 *
 * @example
 * ```ts
 * import { cosineSimilarityMatrix } from "./similarity.ts";
 * import { assertEquals } from "@std/assert";
 * const m = cosineSimilarityMatrix([[1, 0], [-2, 0], [0, 3]], [1, -1, 1]);
 * assertEquals(m, [[1, 1, 0], [1, 1, 0], [0, 0, 1]]);
 * ```
 */
export function cosineSimilarityMatrix(
  directions: readonly ArrayLike<number>[],
  signs?: readonly number[],
): number[][] {
  const fn = "cosineSimilarityMatrix";
  if (directions.length === 0) {
    throw new ShapeError(`${fn}: no directions given, expected at least 1`);
  }
  const d = (directions[0] as ArrayLike<number>).length;
  directions.forEach((v, i) => _checkVector(fn, `directions[${i}]`, v, d));
  if (signs !== undefined) {
    if (signs.length !== directions.length) {
      throw new ShapeError(`${fn}: ${signs.length} signs for ${directions.length} directions`);
    }
    signs.forEach((s, i) => {
      if (s !== 1 && s !== -1) throw new RangeError(`${fn}: signs[${i}] is ${s}, expected 1 or −1`);
    });
  }
  const k = directions.length;
  const out = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let i = 0; i < k; i++) {
    for (let j = i; j < k; j++) {
      const s = signs === undefined ? 1 : signs[i]! * signs[j]!;
      const c = s * cos(directions[i]!, directions[j]!) + 0; // + 0: no −0 in the output
      out[i]![j] = c, out[j]![i] = c;
    }
  }
  return out;
}
