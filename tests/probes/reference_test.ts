// lib/probes against independent references (tests/probes/fixtures/make_sklearn_probes.py):
// scikit-learn's LogisticRegression and AgglomerativeClustering, torch's pinv and AdamW runs of
// the authors' CCS / CCR losses, and the authors' numpy/scipy formulas for the LM-head baseline,
// the calibration and the context metrics, on synthetic pairs rebuilt here bit for bit.
import { assert, assertAlmostEquals, assertClose, assertEquals } from "@std/assert";
import {
  accuracy,
  agglomerativeClustering,
  aggregate,
  applyCalibration,
  authorsColumns,
  ccrLoss,
  ccsLoss,
  centerPairs,
  contextMetrics,
  fitCalibration,
  lmHeadBaseline,
  lrProbe,
  massMeanProbe,
  probeProbabilities,
  trainCcr,
  trainCcs,
  unsupervisedMassMeanProbe,
} from "../../lib/probes/mod.ts";
import { _linearInit } from "../../lib/probes/_adamw.ts";
import { absCos, halves, num, plantedPairs } from "./_synthetic.ts";

// deno-lint-ignore no-explicit-any
type Json = any;
const ref: Json = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/sklearn_probes.json", import.meta.url)),
);
const v = ref.versions;
const tag = `sklearn ${v.sklearn}, numpy ${v.numpy}, scipy ${v.scipy}, torch ${v.torch}`;

// deno-lint-ignore no-explicit-any
function params(p: any) {
  const { seed, n, d, delta, noise, shared, offset, p_true, tiny } = p;
  const out = { n, d, delta, noise, shared, offset, pTrue: p_true, tiny };
  return {
    seed,
    p: Object.fromEntries(Object.entries(out).filter(([, x]) => x !== undefined)) as typeof out,
  };
}

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] as number) * (b[i] as number);
    aa += (a[i] as number) ** 2;
    bb += (b[i] as number) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

const nums = (a: (number | string)[]) => Float64Array.from(a, num);

Deno.test(`LR probe = sklearn LogisticRegression(class_weight='balanced', fit_intercept=False) (${tag})`, () => {
  const lines: string[] = [];
  for (const [name, c] of Object.entries<Json>(ref.lr)) {
    const { seed, p } = params(c.params);
    const { pairs, labels } = plantedPairs(seed, p);
    const [tr, ytr, ev, yev] = halves(pairs, labels);
    const train = centerPairs(tr), evalPairs = centerPairs(ev);
    const fit = lrProbe(train, ytr);
    assert(fit.converged, `${name}: Newton-CG did not converge (gradient ${fit.gradient})`);
    const cosDefault = cosine(fit.coef, c.coef), cosTight = cosine(fit.coef, c.coef_tight);
    assert(cosDefault >= 0.9999, `${name}: cosine to sklearn's coef ${cosDefault}`);
    assert(cosTight >= 0.999999, `${name}: cosine to sklearn's tight coef ${cosTight}`);
    assertClose(fit.coef, c.coef_tight, { rtol: 1e-4, msg: name });
    // sklearn's own accuracy (sign of x·coef on x = neg − pos) and the authors' probe accuracy
    const score = (pp: typeof train, y: Float64Array) => {
      let hit = 0;
      for (let i = 0; i < pp.n; i++) {
        let z = 0;
        for (let j = 0; j < pp.d; j++) {
          z += (pp.neg[i * pp.d + j]! - pp.pos[i * pp.d + j]!) * fit.coef[j]!;
        }
        if ((z > 0 ? 1 : 0) === y[i]) hit++;
      }
      return hit / pp.n;
    };
    assertEquals(score(train, ytr), c.score_train, `${name}: train accuracy`);
    assertEquals(score(evalPairs, yev), c.score_eval, `${name}: eval accuracy`);
    assertEquals(
      accuracy(probeProbabilities(fit.coef, evalPairs), yev),
      c.probe_accuracy_eval,
      `${name}: probe accuracy`,
    );
    lines.push(
      `${name} (n=${tr.n}, d=${tr.d}): cos(sklearn default) = ${cosDefault.toFixed(10)}, ` +
        `cos(sklearn tol 1e-12) = ${
          cosTight.toFixed(12)
        }, acc train/eval ${c.score_train}/${c.score_eval} equal`,
    );
  }
  console.log(lines.join("\n"));
});

Deno.test(`mass-mean and mass-mean-iid = torch.linalg.pinv(hermitian, atol=1e-3) and numpy pinv (${tag})`, () => {
  for (const [name, c] of Object.entries<Json>(ref.massmean)) {
    const { seed, p } = params(c.params);
    const { pairs, labels } = plantedPairs(seed, p);
    const centred = centerPairs(pairs);
    assertClose(massMeanProbe(centred, labels), c.theta, { rtol: 1e-12, msg: name });
    const iid = massMeanProbe(centred, labels, { iid: true });
    let worst = 0;
    for (let j = 0; j < iid.length; j++) {
      worst = Math.max(worst, Math.abs(iid[j]! - c.theta_iid_numpy[j]));
      assertAlmostEquals(iid[j]!, c.theta_iid_numpy[j], 1e-3, `${name}[${j}] vs numpy`);
      assertAlmostEquals(iid[j]!, c.theta_iid_torch[j], 1e-3, `${name}[${j}] vs torch`);
    }
    assertClose(iid, c.theta_iid_torch, { rtol: 1e-8, msg: `${name} vs torch` });
    console.log(
      `${name} (n=${pairs.n}, d=${pairs.d}, ${c.kept_eigenvalues} eigenvalues > 1e-3): ` +
        `max |Δ| to numpy pinv ${worst.toExponential(2)}`,
    );
  }
});

Deno.test(`agglomerative clustering and unsupervised mass-mean = sklearn AgglomerativeClustering (${tag})`, () => {
  for (const [name, c] of Object.entries<Json>(ref.cluster)) {
    const { pairs } = plantedPairs(c.params.seed, {
      n: c.params.n,
      d: c.params.d,
      delta: c.params.delta,
    });
    const centred = centerPairs(pairs);
    const delta = centred.pos.map((x, k) => x - centred.neg[k]!);
    const labels = agglomerativeClustering(delta, pairs.n, pairs.d, {
      nClusters: c.params.k,
      metric: c.params.metric,
      linkage: c.params.linkage,
    });
    assertEquals(Array.from(labels), c.labels, name);
    if (c.theta) {
      const u = unsupervisedMassMeanProbe(centred);
      assertEquals(Array.from(u.clusters), c.labels, name);
      assertClose(u.direction, c.theta, { rtol: 1e-12, msg: name });
    }
  }
});

Deno.test(`CCS and CCR: loss, gradient and 1000 AdamW epochs = torch float64 (${tag})`, () => {
  for (const [name, c] of Object.entries<Json>(ref.gd)) {
    const { seed, p } = params(c.params);
    const pairs = centerPairs(plantedPairs(seed, p).pairs);
    const init = _linearInit(pairs.d, c.init_seed);
    assertClose(init, c.init, { rtol: 0, msg: `${name} init` });
    const lossFn = name === "ccs" ? ccsLoss : ccrLoss;
    const at0 = lossFn(pairs, init);
    assertAlmostEquals(at0.loss, c.loss0, 1e-13, `${name} loss`);
    assertClose(at0.grad, c.grad0, { rtol: 1e-12, msg: `${name} gradient` });
    const run = (name === "ccs" ? trainCcs : trainCcr)(pairs, init);
    assertAlmostEquals(run.trainLoss, c.train_loss, 1e-10, `${name} final loss`);
    assertClose(run.direction, c.final_w, { rtol: 1e-9, msg: `${name} weights` });
    assertClose(probeProbabilities(run.direction, pairs), c.probe_p, { rtol: 1e-9 });
  }
});

Deno.test("LM-head baseline = the authors' numpy formula (odd and even n, with and without the median shift)", () => {
  for (const [name, c] of Object.entries<Json>(ref.lm_head)) {
    for (const mode of ["calibrate", "raw"] as const) {
      const r = lmHeadBaseline(c.neg, c.pos, c.labels, { calibrate: mode === "calibrate" });
      assertClose(r.p, c[mode].p, { rtol: 1e-14, msg: `${name} ${mode}` });
      assertEquals(r.accuracy, c[mode].accuracy, `${name} ${mode}`);
    }
  }
});

Deno.test("calibration (scale, sign, length, calibrated p) = the authors' formula in numpy", () => {
  const c = ref.calibration, lr = ref.lr.overlap;
  const { seed, p } = params(lr.params);
  const { pairs, labels } = plantedPairs(seed, p);
  const [tr, ytr, ev, yev] = halves(pairs, labels);
  const train = centerPairs(tr), evalPairs = centerPairs(ev);
  const cal = plantedPairs(62, { n: 200, d: 20, delta: 0.3, noise: 1, shared: 1, offset: 3 });
  const calPairs = centerPairs(halves(cal.pairs, cal.labels)[0]);
  const direction = Float64Array.from(lr.coef_tight);
  const k = fitCalibration({
    calibrationP: probeProbabilities(direction, calPairs),
    trainP: probeProbabilities(direction, train),
    trainLabels: ytr,
    trainPairs: train,
    direction,
  });
  assertAlmostEquals(k.scale, c.scale, 1e-12);
  assertEquals(k.sign, c.sign);
  assertAlmostEquals(k.length, c.length, 1e-12);
  const noDirection = fitCalibration({
    calibrationP: probeProbabilities(direction, calPairs),
    trainP: probeProbabilities(direction, train),
    trainLabels: ytr,
  });
  assertEquals(noDirection.sign, c.sign_from_accuracy);
  const pEval = applyCalibration(probeProbabilities(direction, evalPairs), k);
  assertClose(pEval, c.calibrated_p_eval, { rtol: 1e-10 });
  assertEquals(accuracy(pEval, yev), c.calibrated_accuracy_eval);
  assertEquals(accuracy(probeProbabilities(direction, evalPairs), yev), c.raw_accuracy_eval);
});

Deno.test("context metrics = exp1_analysis.py's CalculateErrorScores in numpy/scipy (incl. PE = 0)", () => {
  for (const [name, c] of Object.entries<Json>(ref.metrics)) {
    const pred = Object.fromEntries(
      Object.entries<(number | string)[]>(c.p).map(([k, a]) => [k, nums(a)]),
    ) as unknown as Parameters<typeof contextMetrics>[0];
    const m = contextMetrics(pred, c.labels);
    const cols = authorsColumns(m);
    assertEquals(Object.keys(cols).sort(), Object.keys(c.columns).sort(), name);
    for (const [k, want] of Object.entries<number | string>(c.columns)) {
      const got = cols[k]!, w = num(want);
      if (!Number.isFinite(w)) assertEquals(got, w, `${name} ${k}`);
      else assertAlmostEquals(got, w, 1e-12, `${name} ${k}`);
    }
    for (
      const [k, field] of [["e3", "e3"], ["e4", "e4"], ["error_sv", "errorSv"], [
        "e1Pos",
        "e1Pos",
      ]] as const
    ) {
      const got = m.items[field as "e3"]!, want = nums(c.items[k]);
      for (let i = 0; i < want.length; i++) {
        if (!Number.isFinite(want[i]!)) assertEquals(got[i], want[i], `${name} ${k}[${i}]`);
        else assertAlmostEquals(got[i]!, want[i]!, 1e-12, `${name} ${k}[${i}]`);
      }
    }
  }
});

Deno.test("aggregates = numpy mean / median / percentile and scipy trim_mean, with ±∞ and NaN", () => {
  for (const [name, c] of Object.entries<Json>(ref.aggregates)) {
    const a = aggregate(nums(c.x));
    const pairs: [number, number | string][] = [
      [a.mean, c.mean],
      [a.median, c.median],
      [a.trimMean, c.trim_mean],
      [a.p20, c["20pth"]],
      [a.p80, c["80pth"]],
    ];
    for (const [got, want] of pairs) {
      const w = num(want);
      if (!Number.isFinite(w)) assertEquals(got, w, name);
      else assertAlmostEquals(got, w, 1e-12, name);
    }
  }
});

Deno.test("the synthetic generator matches its Python port (planted-direction cosine of sklearn's LR)", () => {
  for (const [name, c] of Object.entries<Json>(ref.lr)) {
    const { seed, p } = params(c.params);
    const { u } = plantedPairs(seed, p);
    assertAlmostEquals(absCos(c.coef, u), c.cos_planted, 1e-12, name);
  }
});
