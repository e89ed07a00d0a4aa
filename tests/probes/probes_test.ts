// Probes on synthetic hidden states with a planted truth direction, and hand-computed cases of
// centring, probabilities, the probes' losses and gradients, clustering, the LM-head baseline,
// calibration, training groups and direction similarity.
import { assert, assertAlmostEquals, assertClose, assertEquals } from "@std/assert";
import { Rng } from "../../lib/core/rng.ts";
import {
  accuracy,
  agglomerativeClustering,
  applyCalibration,
  ccrLoss,
  ccrProbe,
  ccsLoss,
  ccsProbe,
  centerPairs,
  COMBINED_RECIPE,
  combineTrainSets,
  type ContrastPairs,
  contrastPairs,
  cosineSimilarityMatrix,
  fitCalibration,
  fitLogisticRegression,
  linkageTree,
  lmHeadBaseline,
  lrProbe,
  massMeanProbe,
  probeProbabilities,
  selectPairs,
  trainCcs,
  unsupervisedMassMeanProbe,
} from "../../lib/probes/mod.ts";
import { freshSeed } from "../_util.ts";
import { absCos, gauss, halves, plantedPairs } from "./_synthetic.ts";

const sig = (x: number) => 1 / (1 + Math.exp(-x));

/** Trains every probe on the centred train half, calibrates on it, scores the eval half. */
function recover(seed: number) {
  const { pairs, labels, u } = plantedPairs(seed, {
    n: 1000,
    d: 16,
    delta: 2.5,
    noise: 0.8,
    shared: 0.5,
    offset: 5,
  });
  const [tr, ytr, ev, yev] = halves(pairs, labels);
  const train = centerPairs(tr), evalPairs = centerPairs(ev);
  const directions: Record<string, Float64Array> = {
    LR: lrProbe(train, ytr).coef,
    MMP: massMeanProbe(train, ytr),
    "MMP-iid": massMeanProbe(train, ytr, { iid: true }),
    CCS: ccsProbe(train).direction,
    CCR: ccrProbe(train).direction,
    "unsupervised MMP": unsupervisedMassMeanProbe(train).direction,
  };
  const score = (d: Float64Array) => {
    const pTrain = probeProbabilities(d, train);
    const cal = fitCalibration({
      calibrationP: pTrain,
      trainP: pTrain,
      trainLabels: ytr,
      trainPairs: train,
      direction: d,
    });
    return {
      cos: absCos(d, u),
      signedCos: cal.sign * (d.reduce((s, x, j) => s + x * u[j]!, 0)) /
        Math.hypot(...d),
      acc: accuracy(applyCalibration(probeProbabilities(d, evalPairs), cal), yev),
    };
  };
  const bayes = accuracy(probeProbabilities(u, evalPairs), yev);
  return { bayes, results: Object.entries(directions).map(([k, d]) => ({ k, ...score(d) })) };
}

Deno.test("planted direction: every probe recovers u (|cos| ≥ 0.95) and, calibrated, the Bayes accuracy (seed 7)", () => {
  const { bayes, results } = recover(7);
  const lines = [`accuracy of u itself on the eval half: ${bayes}`];
  for (const r of results) {
    lines.push(`${r.k}: |cos(θ, u)| = ${r.cos.toFixed(4)}, calibrated eval accuracy ${r.acc}`);
    assert(r.cos >= 0.95, `${r.k}: |cos| ${r.cos}`);
    // the calibration's sign turns every probe towards u
    assert(r.signedCos > 0, `${r.k}: calibrated direction points away from u`);
    assert(r.acc >= bayes - 0.01, `${r.k}: accuracy ${r.acc} vs ${bayes}`);
  }
  console.log(lines.join("\n"));
});

Deno.test("planted direction, fresh seed: every probe within loose bounds", () => {
  const seed = freshSeed();
  const { bayes, results } = recover(seed);
  for (const r of results) {
    assert(r.cos >= 0.85, `seed ${seed} ${r.k}: |cos| ${r.cos}`);
    assert(r.acc >= bayes - 0.04, `seed ${seed} ${r.k}: accuracy ${r.acc} vs ${bayes}`);
  }
});

Deno.test("LR is fitted on neg − pos: θ points from true to false and the calibration sign flips it", () => {
  const { pairs, labels, u } = plantedPairs(3, { n: 200, d: 6, delta: 3 });
  const c = centerPairs(pairs), fit = lrProbe(c, labels);
  assert(fit.converged && fit.iterations > 0);
  assert(fit.coef.reduce((s, x, j) => s + x * u[j]!, 0) < 0);
  const p = probeProbabilities(fit.coef, c);
  assert(accuracy(p, labels) < 0.2);
  const cal = fitCalibration({
    calibrationP: p,
    trainP: p,
    trainLabels: labels,
    trainPairs: c,
    direction: fit.coef,
  });
  assertEquals(cal.sign, -1);
  assert(accuracy(applyCalibration(p, cal), labels) > 0.8);
  // class weights: balanced and unweighted differ on imbalanced labels, agree on balanced ones
  const x = new Float64Array([1, 0.5, 0.8, -0.2, 1.2, 0.1, -1, 0.3, 0.2, 0.9]);
  const y = [1, 1, 1, 0, 0];
  const bal = fitLogisticRegression(x, 5, 2, y),
    none = fitLogisticRegression(x, 5, 2, y, {
      classWeight: "none",
    });
  assert(Math.abs(bal.coef[0]! - none.coef[0]!) > 1e-3);
  const y2 = [1, 1, 0, 0];
  assertClose(
    fitLogisticRegression(x.subarray(0, 8), 4, 2, y2).coef,
    fitLogisticRegression(x.subarray(0, 8), 4, 2, y2, { classWeight: "none" }).coef,
    { rtol: 1e-12 },
  );
  // stationarity of sklearn's objective Σ w·log(1 + e^(−t x·β)) + ‖β‖²/2C, here C = 0.5
  const f = fitLogisticRegression(x, 5, 2, y, { C: 0.5 });
  const grad = [0, 0].map((_, j) => {
    let g = f.coef[j]! / 0.5;
    for (let i = 0; i < 5; i++) {
      const t = y[i] === 1 ? 1 : -1, w = 5 / (2 * (y[i] === 1 ? 3 : 2));
      const z = x[2 * i]! * f.coef[0]! + x[2 * i + 1]! * f.coef[1]!;
      g -= w * t * sig(-t * z) * x[2 * i + j]!;
    }
    return g;
  });
  assert(Math.abs(grad[0]!) < 1e-10 && Math.abs(grad[1]!) < 1e-10, `gradient ${grad}`);
});

Deno.test("per-side centring: nanmean over finite values, non-finite entries passed through", () => {
  const p: ContrastPairs = {
    n: 3,
    d: 2,
    neg: new Float64Array([1, NaN, 3, 4, 5, Infinity]),
    pos: new Float64Array([0, 1, 0, 2, 3, 3]),
  };
  const c = centerPairs(p);
  assertEquals(Array.from(c.neg), [-2, NaN, 0, 0, 2, Infinity]);
  assertEquals(Array.from(c.pos), [-1, -1, -1, 0, 2, 1]);
  const allBad: ContrastPairs = {
    n: 1,
    d: 1,
    neg: new Float64Array([NaN]),
    pos: new Float64Array([2]),
  };
  assertEquals(Array.from(centerPairs(allBad).neg), [NaN]);
  const v = centerPairs(contrastPairs([[1], [3]], [[0], [4]]), { varNormalize: true });
  assertClose([...v.neg, ...v.pos], [-Math.SQRT1_2, Math.SQRT1_2, -Math.SQRT1_2, Math.SQRT1_2], {
    rtol: 1e-15,
  });
  // inputs untouched
  assertEquals(Array.from(p.pos), [0, 1, 0, 2, 3, 3]);
});

Deno.test("probabilities: the authors' p on hand-computed pairs, zero direction gives 0.5", () => {
  const pairs = contrastPairs([[1, 0], [0, 2]], [[0, 3], [-1, 0]]);
  const p = probeProbabilities([3, 4], pairs); // θ̂ = (0.6, 0.8)
  assertAlmostEquals(p[0]!, (sig(2.4) + 1 - sig(0.6)) / 2, 1e-15);
  assertAlmostEquals(p[1]!, (sig(-0.6) + 1 - sig(1.6)) / 2, 1e-15);
  assertEquals(Array.from(probeProbabilities([0, 0], pairs)), [0.5, 0.5]);
  assertEquals(accuracy([0.6, 0.4], [1, 1]), 0.5);
  assertEquals(Array.from(selectPairs(pairs, [1]).neg), [0, 2]);
});

Deno.test("CCS and CCR gradients match central finite differences", () => {
  const rng = new Rng(freshSeed());
  const n = 9, d = 5;
  const pairs: ContrastPairs = {
    n,
    d,
    neg: Float64Array.from({ length: n * d }, () => gauss(rng)),
    pos: Float64Array.from({ length: n * d }, () => gauss(rng)),
  };
  const w = Float64Array.from({ length: d }, () => gauss(rng));
  for (const [name, f] of [["ccs", ccsLoss], ["ccr", ccrLoss]] as const) {
    const { grad } = f(pairs, w);
    for (let j = 0; j < d; j++) {
      const h = 1e-6, a = Float64Array.from(w), b = Float64Array.from(w);
      a[j]! += h, b[j]! -= h;
      const fd = (f(pairs, a).loss - f(pairs, b).loss) / (2 * h);
      assertAlmostEquals(grad[j]!, fd, 1e-7, `${name} ∂/∂w${j}`);
    }
  }
  // CCR depends on the direction of w only
  assertAlmostEquals(
    ccrLoss(pairs, w).loss,
    ccrLoss(pairs, w.map((x) => 7 * x)).loss,
    1e-12,
  );
});

Deno.test("CCS keeps the lowest-loss seed; runs are reproducible", () => {
  const { pairs } = plantedPairs(5, { n: 60, d: 4, delta: 2 });
  const c = centerPairs(pairs);
  const r = ccsProbe(c, { seeds: [3, 1, 4], epochs: 100 });
  assertEquals(r.losses.length, 3);
  assertEquals(r.trainLoss, Math.min(...r.losses));
  assertEquals(r.seed, [3, 1, 4][r.losses.indexOf(r.trainLoss)]);
  assertEquals(
    Array.from(ccsProbe(c, { seeds: [3, 1, 4], epochs: 100 }).direction),
    Array.from(r.direction),
  );
  const init = new Float64Array([0.1, -0.2, 0.3, 0.05]);
  const once = trainCcs(c, init, { epochs: 1 });
  assertEquals(once.trainLoss, ccsLoss(c, init).loss); // loss before the (only) update
  assertEquals(Array.from(init), [0.1, -0.2, 0.3, 0.05]); // init copied, not updated
});

Deno.test("mass-mean: labels pick the true member; flipping every label negates θ; iid on whitened data", () => {
  const pairs = contrastPairs([[1, 2], [3, 4], [0, 0]], [[2, 2], [1, 0], [4, 1]]);
  // true states: pos0, neg1, pos2 = (2,2), (3,4), (4,1); false: (1,2), (1,0), (0,0)
  assertClose(massMeanProbe(pairs, [1, 0, 1]), [(9 - 2) / 3, (7 - 2) / 3], { rtol: 1e-15 });
  assertClose(massMeanProbe(pairs, [0, 1, 0]), [-(9 - 2) / 3, -(7 - 2) / 3], { rtol: 1e-15 });
  // iid = pinv(Σ)θ: with Σ scaled by 4, θ_iid scales by 1/4
  const { pairs: big, labels } = plantedPairs(9, { n: 80, d: 5 });
  const c = centerPairs(big);
  const twice: ContrastPairs = { ...c, neg: c.neg.map((x) => 2 * x), pos: c.pos.map((x) => 2 * x) };
  const a = massMeanProbe(c, labels, { iid: true }),
    b = massMeanProbe(twice, labels, { iid: true });
  assertClose(b, a.map((x) => x / 2), { rtol: 1e-10 });
  // atol larger than every eigenvalue: pinv = 0
  assertEquals(Array.from(massMeanProbe(c, labels, { iid: true, atol: 1e6 })), [0, 0, 0, 0, 0]);
});

Deno.test("clustering: dendrogram heights (complete vs average), label numbering, k = 1 and k = n", () => {
  const x = new Float64Array([0, 1, 5, 11]);
  const complete = linkageTree(x, 4, 1, { metric: "euclidean" });
  assertEquals(complete.map((m) => [m.a, m.b, m.height, m.size]), [
    [0, 1, 1, 2],
    [2, 4, 5, 3],
    [3, 5, 11, 4],
  ]);
  const average = linkageTree(x, 4, 1, { metric: "euclidean", linkage: "average" });
  assertEquals(average.map((m) => m.height), [1, 4.5, (11 + 10 + 6) / 3]);
  // root children: 3 (a point) and node 5 = {0, 1, 2}; sklearn gives label 0 to the larger id
  assertEquals(Array.from(agglomerativeClustering(x, 4, 1, { metric: "euclidean" })), [0, 0, 0, 1]);
  assertEquals(
    Array.from(agglomerativeClustering(x, 4, 1, { metric: "euclidean", nClusters: 1 })),
    [0, 0, 0, 0],
  );
  const all = agglomerativeClustering(x, 4, 1, { metric: "euclidean", nClusters: 4 });
  assertEquals(new Set(all).size, 4);
  // cosine ignores the length: opposite directions split, whatever their norm
  const y = new Float64Array([1, 0, 100, 1, -0.01, 0, -5, -0.1]);
  const lab = agglomerativeClustering(y, 4, 2);
  assert(lab[0] === lab[1] && lab[2] === lab[3] && lab[0] !== lab[2]);
});

Deno.test("LM-head baseline: median shift, scaling by max|Δ|, accuracy; recovers planted logit differences", () => {
  const raw = lmHeadBaseline([0, 0, 0, 0], [2, -1, 4, 1], [1, 0, 1, 1], { calibrate: false });
  assertEquals(Array.from(raw.p), [0.75, 0.375, 1, 0.625]);
  assertEquals(raw.accuracy, 1);
  // a constant bias in favour of the negative answer is removed by the median shift
  const rng = new Rng(freshSeed());
  const n = 301, y = Array.from({ length: n }, () => (rng.uniform() < 0.5 ? 1 : 0));
  const neg = y.map(() => 10 + gauss(rng) * 0.3);
  const pos = y.map((yi, i) => neg[i]! - 5 + (yi ? 1 : -1) + gauss(rng) * 0.3);
  const shifted = lmHeadBaseline(neg, pos, y),
    plain = lmHeadBaseline(neg, pos, y, { calibrate: false });
  // the median sits inside the larger class when the labels are unbalanced: ≥ 0.88, not ~0.99
  assert(shifted.accuracy > 0.88, `accuracy ${shifted.accuracy}`);
  assert(plain.accuracy < 0.6);
  assertEquals(Number.isNaN(lmHeadBaseline([0, 1], [1, 0]).accuracy), true);
});

Deno.test("calibration: scale = logit(0.75)/std, sign by accuracy or by the mass-mean, length, non-finite scale", () => {
  // logits −1, 0, 1 → std 1 → scale = ln 3
  const c = fitCalibration({
    calibrationP: [sig(-1), 0.5, sig(1)],
    trainP: [0.9, 0.2],
    trainLabels: [0, 1],
  });
  assertAlmostEquals(c.scale, Math.log(3), 1e-9);
  assertEquals([c.sign, Number.isNaN(c.length)], [-1, true]);
  // length and sign from the train pairs: true − false = (pos0 − neg0 + neg1 − pos1)/2
  const train = contrastPairs([[0, 0], [3, 4]], [[3, 4], [0, 0]]);
  const k = fitCalibration({
    calibrationP: [0.2, 0.8],
    trainP: [0.9, 0.1],
    trainLabels: [1, 0],
    trainPairs: train,
    direction: [-1, -1],
  });
  assertEquals([k.sign, k.length], [-1, 5]);
  // unlabelled train pairs are skipped
  const u = fitCalibration({
    calibrationP: [0.2, 0.8],
    trainP: [0.9, 0.1, 0.5],
    trainLabels: [1, 0, NaN],
    trainPairs: contrastPairs([[0, 0], [3, 4], [100, 0]], [[3, 4], [0, 0], [0, 0]]),
  });
  assertEquals([u.sign, u.length], [1, 5]);
  // constant calibration probabilities: std 0, infinite scale, only the sign is applied
  const flat = fitCalibration({ calibrationP: [0.7, 0.7], trainP: [0.2], trainLabels: [1] });
  assertEquals(flat.scale, Infinity);
  assertAlmostEquals(applyCalibration([0.7], flat)[0]!, 0.3, 1e-12);
  // clamping at eps = 1e-6
  const one = applyCalibration([1, 0], { scale: 1, sign: 1, length: 1 });
  assertAlmostEquals(one[0]!, 1 - 1e-6, 1e-12);
  assertAlmostEquals(one[1]!, 1e-6, 1e-12);
});

Deno.test("combined training group: the authors' recipe, rows drawn from the right split, NaN labels", () => {
  assertEquals(COMBINED_RECIPE.reduce((s, p) => s + p.count, 0), 1000);
  assertEquals(COMBINED_RECIPE.filter((p) => !p.supervised).map((p) => p.variant), [
    "original_neg_prem",
  ]);
  const split = (tag: number, n: number) => ({
    pairs: contrastPairs(
      Array.from({ length: n }, (_, i) => [tag, i]),
      Array.from({ length: n }, (_, i) => [-tag, i]),
    ),
    labels: Array.from({ length: n }, (_, i) => i % 2),
  });
  const splits = COMBINED_RECIPE.map((r, k) => ({ ...r, ...split(k + 1, 500) }));
  const { pairs, labels } = combineTrainSets(splits, 1);
  assertEquals(pairs.n, 1000);
  let at = 0;
  COMBINED_RECIPE.forEach((r, k) => {
    const rows = new Set<number>();
    for (let i = 0; i < r.count; i++, at++) {
      assertEquals(pairs.neg[at * 2], k + 1);
      assertEquals(pairs.pos[at * 2], -(k + 1));
      const row = pairs.neg[at * 2 + 1]!;
      rows.add(row);
      if (r.supervised) assertEquals(labels[at], row % 2);
      else assert(Number.isNaN(labels[at]!));
    }
    assertEquals(rows.size, r.count); // without replacement
  });
});

Deno.test("cosine similarity matrix of directions with calibration signs", () => {
  const m = cosineSimilarityMatrix([[1, 1], [2, 0], [-3, -3]], [1, 1, -1]);
  assertAlmostEquals(m[0]![1]!, Math.SQRT1_2, 1e-15);
  assertEquals([m[0]![0], m[0]![2], m[2]![0], m[1]![0] === m[0]![1]], [1, 1, 1, true]);
  assert(Number.isNaN(cosineSimilarityMatrix([[0, 0], [1, 0]])[0]![1]!));
});
