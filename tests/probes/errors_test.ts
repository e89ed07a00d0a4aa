// Bad input fails with one sentence naming the function, the argument and the element, thrown as
// the project's error classes: ShapeError (sizes), NumericalError (non-finite), RangeError
// (values outside their domain), TypeError (wrong kind).
import { assert, assertThrows } from "@std/assert";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import {
  agglomerativeClustering,
  aggregate,
  applyCalibration,
  ccrProbe,
  ccsProbe,
  centerPairs,
  combineTrainSets,
  contextMetrics,
  type ContrastPairs,
  contrastPairs,
  cosineSimilarityMatrix,
  fitCalibration,
  fitLogisticRegression,
  lmHeadBaseline,
  lrProbe,
  massMeanProbe,
  numpyPercentile,
  probeProbabilities,
  unsupervisedMassMeanProbe,
} from "../../lib/probes/mod.ts";

// deno-lint-ignore no-explicit-any
function fails(fn: () => unknown, cls: abstract new (...a: any[]) => Error, ...parts: string[]) {
  const e = assertThrows(fn, cls);
  for (const p of parts) assert(e.message.includes(p), `"${e.message}" lacks "${p}"`);
  assert(!e.message.includes("\n"), `"${e.message}" is more than one line`);
  assert(/^[a-zA-Z]+: /.test(e.message), `"${e.message}" does not start with the function's name`);
}

const good = contrastPairs([[1, 2], [3, 4], [0, 1]], [[2, 1], [0, 0], [1, 1]]);
const withNaN: ContrastPairs = { ...good, pos: Float64Array.from([2, 1, 0, 0, 1, NaN]) };
const short: ContrastPairs = { ...good, neg: new Float64Array(5) };
const empty: ContrastPairs = { n: 0, d: 2, neg: new Float64Array(0), pos: new Float64Array(0) };
const y = [1, 0, 1];

Deno.test("NaN or ∞ in the hidden states: NumericalError naming side, row and column", () => {
  const probes: [string, () => unknown][] = [
    ["lrProbe", () => lrProbe(withNaN, y)],
    ["massMeanProbe", () => massMeanProbe(withNaN, y)],
    ["massMeanProbe", () => massMeanProbe(withNaN, y, { iid: true })],
    ["ccsProbe", () => ccsProbe(withNaN)],
    ["ccrProbe", () => ccrProbe(withNaN)],
    ["unsupervisedMassMeanProbe", () => unsupervisedMassMeanProbe(withNaN)],
    ["probeProbabilities", () => probeProbabilities([1, 0], withNaN)],
  ];
  for (const [name, f] of probes) fails(f, NumericalError, name, "pairs.pos[2][1] is NaN");
  const inf: ContrastPairs = { ...good, neg: Float64Array.from([1, 2, Infinity, 4, 0, 1]) };
  fails(() => lrProbe(inf, y), NumericalError, "pairs.neg[1][0] is Infinity");
  fails(() => probeProbabilities([1, NaN], good), NumericalError, "direction[1] is NaN");
  fails(() => contrastPairs([[1, NaN]], [[0, 0]]), NumericalError, "pairs.neg[0][1]");
});

Deno.test("mismatched lengths: ShapeError naming both sizes", () => {
  fails(
    () => lrProbe(short, y),
    ShapeError,
    "lrProbe",
    "pairs.neg has 5 values, expected n·d = 3·2 = 6",
  );
  fails(() => lrProbe(good, [1, 0]), ShapeError, "labels has 2 labels for 3 pairs");
  fails(() => massMeanProbe(good, [1, 0, 1, 0]), ShapeError, "labels has 4 labels for 3 pairs");
  fails(
    () => probeProbabilities([1, 2, 3], good),
    ShapeError,
    "direction has 3 values, expected 2",
  );
  fails(
    () => contrastPairs([[1, 2]], [[1, 2], [3, 4]]),
    ShapeError,
    "neg has 1 rows but pos has 2",
  );
  fails(
    () => contrastPairs([[1, 2], [3]], [[1, 2], [3, 4]]),
    ShapeError,
    "neg[1] has 1 values, expected 2",
  );
  fails(
    () =>
      contextMetrics({ noPrem: [0.5, 0.5], originalPos: [0.5, 0.6], originalNeg: [0.5] }, [1, 0]),
    ShapeError,
    "contextMetrics",
    "predictions.originalNeg has 1 values, expected 2",
  );
  fails(() => lmHeadBaseline([1, 2], [1]), ShapeError, "logitPos has 1 values, expected 2");
  fails(
    () => cosineSimilarityMatrix([[1, 2], [1]]),
    ShapeError,
    "directions[1] has 1 values, expected 2",
  );
  fails(() => cosineSimilarityMatrix([[1, 2]], [1, 1]), ShapeError, "2 signs for 1 directions");
  fails(() => fitLogisticRegression(new Float64Array(5), 3, 2, y), ShapeError, "x has 5 values");
  fails(() => centerPairs(short), ShapeError, "centerPairs", "pairs.neg has 5 values");
});

Deno.test("empty input: ShapeError saying what is empty", () => {
  fails(() => lrProbe(empty, []), ShapeError, "lrProbe", "pairs is empty (0 pairs)");
  fails(() => ccrProbe(empty), ShapeError, "ccrProbe", "pairs is empty");
  fails(() => centerPairs(empty), ShapeError, "centerPairs", "pairs is empty");
  fails(() => contrastPairs([], []), ShapeError, "no rows given");
  fails(() => aggregate([]), ShapeError, "aggregate", "values is empty");
  fails(() => numpyPercentile([], 20), ShapeError, "values is empty");
  fails(
    () => contextMetrics({ noPrem: [], originalPos: [], originalNeg: [] }, []),
    ShapeError,
    "predictions.originalPos is empty",
  );
  fails(() => lmHeadBaseline([], []), ShapeError, "logitNeg is empty");
  fails(() => cosineSimilarityMatrix([]), ShapeError, "no directions given");
  fails(
    () => agglomerativeClustering(new Float64Array(0), 0, 2),
    ShapeError,
    "agglomerativeClustering",
    "x has no rows",
  );
  fails(() => combineTrainSets([], 0), ShapeError, "no splits given");
  fails(() => combineTrainSets([], 0.5), RangeError, "seed is 0.5");
  fails(
    () => fitCalibration({ calibrationP: [], trainP: [0.5], trainLabels: [1] }),
    ShapeError,
    "calibrationP is empty",
  );
  fails(
    () => massMeanProbe(contrastPairs([[1]], [[2]]), [1], { iid: true }),
    ShapeError,
    "expected at least 2",
  );
});

Deno.test("values out of their domain: RangeError (labels, one class, probabilities, options, zero vectors)", () => {
  fails(() => lrProbe(good, [1, 2, 0]), RangeError, "labels[1] is 2, expected 0 or 1");
  fails(() => lrProbe(good, [1, NaN, 0]), RangeError, "labels[1] is NaN, expected 0 or 1");
  fails(() => lrProbe(good, [1, 1, 1]), RangeError, "only class 1, expected both 0 and 1");
  fails(() => lrProbe(good, y, { C: 0 }), RangeError, "option C is 0");
  fails(() => ccsProbe(good, { seeds: [] }), RangeError, "option seeds is empty");
  fails(() => ccrProbe(good, { lr: -1 }), RangeError, "option lr is -1");
  fails(
    () => contextMetrics({ noPrem: [0.5], originalPos: [1.5], originalNeg: [0.5] }, [1]),
    RangeError,
    "predictions.originalPos[0] is 1.5, expected a probability in [0, 1]",
  );
  fails(
    () => applyCalibration([0.5], { scale: 1, sign: 0 as 1, length: 1 }),
    RangeError,
    "sign is 0",
  );
  fails(() => numpyPercentile([1, 2], 120), RangeError, "q is 120");
  fails(() => cosineSimilarityMatrix([[1, 0]], [2]), RangeError, "signs[0] is 2");
  const zero = contrastPairs([[1, 1], [0, 0], [2, 2]], [[2, 2], [0, 0], [1, 1]]);
  fails(() => unsupervisedMassMeanProbe(zero), RangeError, "row 1 of x is the zero vector");
  fails(
    () => agglomerativeClustering(new Float64Array([1, 2]), 2, 1, { nClusters: 3 }),
    RangeError,
    "nClusters is 3",
  );
  fails(
    () =>
      combineTrainSets(
        [{ variant: "v", pairs: good, labels: y, count: 4, supervised: true }],
        0,
      ),
    RangeError,
    "splits[0] (v) asks for 4 pairs",
  );
});

Deno.test("undefined results: NumericalError (flat LM-head logits, direction orthogonal to the mass-mean)", () => {
  fails(() => lmHeadBaseline([1, 2], [1, 2]), NumericalError, "every logit difference is 0");
  const train = contrastPairs([[0, 0], [3, 4]], [[3, 4], [0, 0]]);
  fails(
    () =>
      fitCalibration({
        calibrationP: [0.2, 0.8],
        trainP: [0.9, 0.1],
        trainLabels: [1, 0],
        trainPairs: train,
        direction: [4, -3],
      }),
    NumericalError,
    "orthogonal",
  );
});

Deno.test("wrong kinds: TypeError", () => {
  const f32 = { ...good, neg: new Float32Array(6) } as unknown as ContrastPairs;
  fails(() => lrProbe(f32, y), TypeError, "pairs.neg is not a Float64Array");
  fails(() => lrProbe(null as unknown as ContrastPairs, y), TypeError, "expected contrast pairs");
  fails(
    () => contextMetrics({ noPrem: [0.5], originalPos: [0.5] } as never, [1]),
    TypeError,
    "predictions.originalNeg is missing",
  );
  fails(
    () =>
      fitCalibration({ calibrationP: [0.5, 0.6], trainP: [0.5], trainLabels: [1], direction: [1] }),
    TypeError,
    "without trainPairs",
  );
});
