// BowLogReg against sklearn on real SemEval-2021 posts (fixtures/logreg_sklearn.json, written by
// fixtures/make_logreg_fixture.py from the features in fixtures/logreg_input.json), the gradient
// at the returned solution on fresh random data (closed form, written out here), the one-class
// limit, and the errors for bad input.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { bowFeatures, BowLogReg } from "../../lib/toxicity/classifier.ts";
import { NumericalError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";

function assertLessOrEqual(actual: number, bound: number, msg?: string): void {
  assert(actual <= bound, `${msg ?? "value"}: ${actual} > ${bound}`);
}

interface Input {
  minCount: number;
  lambdas: number[];
  texts: string[];
  labels: boolean[];
  vocabulary: string[];
  rows: number[][];
}
interface SklearnFit {
  lambda: number;
  C: number;
  solver: "lbfgs" | "newton-cg";
  objective: number;
  gradient_max: number;
  intercept: number;
  coef: number[];
}

const input: Input = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/logreg_input.json", import.meta.url)),
);
const sklearn: { fits: SklearnFit[] } = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/logreg_sklearn.json", import.meta.url)),
);

/**
 * F(w, b) = Σᵢ log(1 + exp(−yᵢ(w·xᵢ + b))) + (λ/2)‖w‖² and its gradient's max norm, on binary
 * rows (indices of the words present), written out independently of the solver.
 */
function objectiveAndGradient(
  rows: readonly (readonly number[])[],
  labels: readonly boolean[],
  w: readonly number[],
  b: number,
  lambda: number,
): { objective: number; gradient: number } {
  let f = 0;
  const g = w.map((v) => lambda * v);
  let gb = 0;
  rows.forEach((row, i) => {
    const z = row.reduce((s, k) => s + w[k]!, b), y = labels[i] ? 1 : -1;
    f += Math.log1p(Math.exp(-Math.abs(z))) + Math.max(-y * z, 0);
    const c = 1 / (1 + Math.exp(-z)) - (labels[i] ? 1 : 0);
    for (const k of row) g[k]! += c;
    gb += c;
  });
  f += (lambda / 2) * w.reduce((s, v) => s + v * v, 0);
  return { objective: f, gradient: Math.max(Math.abs(gb), ...g.map(Math.abs)) };
}

Deno.test("BowLogReg equals sklearn LogisticRegression(C = 1/λ) on 200 real SemEval posts", () => {
  // the features sklearn was given are still the ones BowLogReg fits on
  const features = bowFeatures(input.texts, input.minCount);
  assertEquals(features.vocabulary, input.vocabulary);
  assertEquals(features.rows.map((r) => [...r]), input.rows);
  assertEquals(sklearn.fits.length, 2 * input.lambdas.length);
  for (const ref of sklearn.fits) {
    assertEquals(ref.C, 1 / ref.lambda);
    const m = BowLogReg.train(input.texts, input.labels, {
      lambda: ref.lambda,
      minCount: input.minCount,
    });
    assertEquals([...m.weights.keys()], input.vocabulary);
    const w = [...m.weights.values()];
    const ours = objectiveAndGradient(input.rows, input.labels, w, m.bias, ref.lambda);
    const theirs = objectiveAndGradient(
      input.rows,
      input.labels,
      ref.coef,
      ref.intercept,
      ref.lambda,
    );
    // sklearn's lbfgs stops early (scipy's relative-decrease test: max |∇F| ≈ 1.5e-4 here), its
    // newton-cg at max |∇F| < 4e-9: the tolerances follow
    const [wTol, fTol] = ref.solver === "lbfgs" ? [5e-4, 1e-7] : [1e-6, 1e-12];
    const scale = Math.max(1, ...ref.coef.map(Math.abs));
    const dw = Math.max(...w.map((v, k) => Math.abs(v - ref.coef[k]!)));
    assertLessOrEqual(dw, wTol * scale, `λ ${ref.lambda} ${ref.solver}: max |Δw| ${dw}`);
    assertLessOrEqual(Math.abs(m.bias - ref.intercept), wTol * scale);
    // never above sklearn's objective, and within the solver's accuracy of it
    assertLessOrEqual(ours.objective, theirs.objective * (1 + 1e-14));
    assertLessOrEqual(theirs.objective - ours.objective, fTol * theirs.objective);
    // the reported objective and gradient are those of the returned weights
    assertLessOrEqual(Math.abs(m.training.objective - ours.objective), 1e-12 * ours.objective);
    assertLessOrEqual(ours.gradient, 1e-8 * 1.001);
    assertLessOrEqual(Math.abs(theirs.objective - ref.objective), 1e-12 * ref.objective);
  }
});

Deno.test("BowLogReg: zero gradient at the returned solution on fresh random data", () => {
  const rng = new Rng(20240607);
  const words = Array.from({ length: 60 }, (_, k) => `w${k}`);
  const planted = words.map(() => 2 * rng.normal());
  for (const [lambda, n] of [[0.01, 400], [1, 400], [30, 150], [1, 3]] as const) {
    const texts: string[] = [], labels: boolean[] = [];
    for (let i = 0; i < n; i++) {
      const len = 1 + rng.int(10);
      const doc = Array.from({ length: len }, () => rng.int(words.length));
      const z = doc.reduce((s, k) => s + planted[k]!, -0.5);
      texts.push(doc.map((k) => words[k]).join(" "));
      labels.push(rng.uniform() < 1 / (1 + Math.exp(-z)));
    }
    if (n === 3) labels.splice(0, 3, true, false, true);
    const m = BowLogReg.train(texts, labels, { lambda, minCount: 1 });
    const { vocabulary, rows } = bowFeatures(texts, 1);
    const w = vocabulary.map((v) => m.weights.get(v)!);
    const at = objectiveAndGradient(rows.map((r) => [...r]), labels, w, m.bias, lambda);
    assertLessOrEqual(at.gradient, 1e-8 * 1.001, `λ ${lambda}, n ${n}: max |∇F| ${at.gradient}`);
    assertLessOrEqual(m.training.gradient, 1e-8);
    assertLessOrEqual(Math.abs(m.training.objective - at.objective), 1e-12 * at.objective);
    // a looser tolerance is honoured and stops earlier
    const loose = BowLogReg.train(texts, labels, { lambda, minCount: 1, tolerance: 1e-2 });
    assertLessOrEqual(loose.training.gradient, 1e-2);
    assertLessOrEqual(loose.training.iterations, m.training.iterations);
  }
});

Deno.test("BowLogReg: one class only gives the objective's limit w = 0, b = ±∞", () => {
  const all = BowLogReg.train(["you idiot", "idiot", "you fool"], [true, true, true], {
    minCount: 1,
  });
  assertEquals([all.bias, [...all.weights.values()]], [Infinity, [0, 0, 0]]);
  assertEquals([all.probability("anything"), all.training.objective], [1, 0]);
  const none = BowLogReg.train(["nice", "nice day"], [false, false], { minCount: 1 });
  assertEquals([none.bias, none.probability("nice")], [-Infinity, 0]);
});

Deno.test("BowLogReg: bad input and options fail with one sentence quoting the value", () => {
  const texts = ["you idiot", "nice day", "idiot", "a nice idea"];
  const labels = [true, false, true, false];
  assertThrows(() => BowLogReg.train(["a"], []), RangeError, "1 texts but 0 labels");
  assertThrows(() => BowLogReg.train([], []), RangeError, "No training posts");
  for (const lambda of [NaN, -1, 0, Infinity]) {
    assertThrows(
      () => BowLogReg.train(texts, labels, { lambda }),
      RangeError,
      `lambda is ${lambda}, expected a finite number > 0 (sklearn's C = 1/lambda)`,
    );
  }
  assertThrows(
    () => BowLogReg.train(texts, labels, { epochs: 8 } as never),
    RangeError,
    "Unknown BowLogReg option 'epochs' (options: lambda, minCount, tolerance, maxIterations)",
  );
  assertThrows(
    () => BowLogReg.train(texts, labels, { minCount: 0 }),
    RangeError,
    "minCount is 0, expected an integer ≥ 1",
  );
  assertThrows(
    () => BowLogReg.train(texts, labels, { tolerance: NaN }),
    RangeError,
    "tolerance is NaN, expected a finite number > 0",
  );
  assertThrows(
    () => BowLogReg.train(texts, labels, { maxIterations: 2.5 }),
    RangeError,
    "maxIterations is 2.5, expected an integer ≥ 1",
  );
  assertThrows(
    () => BowLogReg.train(texts, [true, false, 1, false] as never),
    TypeError,
    "Label 2 is 1, expected true or false",
  );
  const e = assertThrows(
    () => BowLogReg.train(input.texts, input.labels, { maxIterations: 1 }),
    NumericalError,
    "BowLogReg.train did not converge in 1 Newton iterations: max |gradient| ",
  );
  assert(e.message.endsWith("> tolerance 1e-8 (lambda 1, 200 posts, 662 words)"), e.message);
});
