#!/usr/bin/env -S deno run --no-prompt --allow-read=data,../shared/data,out --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Truth directions in context (Schouten et al.; sfschouten/tvj-in-llms): hidden states of
 * contrast pairs in seven premise variants, LR / mass-mean / CCR (/ CCS) probes and the LM-head
 * baseline per layer, calibration on the no-premise split, the context-sensitivity metrics
 * E1–E4, error_sv and the rest, cosine similarity of directions, and the causal intervention
 * along the probe direction at the answer strings in the premise.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { pruneModel } from "../lib/sparse/prune_model.ts";
import { cachedStates, sha256Text, weightsHash } from "../lib/probes/cache.ts";
import { collectContrastStates, type ContrastStates } from "../lib/probes/collect.ts";
import {
  loadTruthItems,
  PREMISE_VARIANTS,
  type PremiseVariant,
  renderVariant,
  TEMPLATE_ID,
} from "../lib/probes/data.ts";
import {
  accuracy,
  applyCalibration,
  type Calibration,
  ccrProbe,
  ccsProbe,
  centerPairs,
  contextMetrics,
  type ContrastPairs,
  cosineSimilarityMatrix,
  fitCalibration,
  lmHeadBaseline,
  lrProbe,
  massMeanProbe,
  median,
  probeProbabilities,
} from "../lib/probes/mod.ts";
import { heatmapSvg, htmlPage, lineSvg } from "../lib/report/svg.ts";
import { markdownTable } from "../lib/report/markdown.ts";

const USAGE = `
truth_probes.ts — truth probes in context: per-layer probes, calibration, E1–E4, intervention.

Usage: scripts/truth_probes.ts [options]
       deno task truth-probes [-- options]

  --model DIR        checkpoint (default data/models/tinyllama-bytes)
  --data CSV         statements with statement,label columns and a premise source: a premise
                     column, city + correct_country, or n1 + n2
                     (default ../shared/data/truth_probes/geometry_of_truth/cities.csv)
  --items N          items per variant, first half train, second half eval (default 1000)
  --seed N           item order, shuffled premises, random letters (default 0)
  --methods LIST     of lr, mmp, ccr, ccs, lm (default lr,mmp,ccr,lm; ccs trains 10 seeds)
  --edit-layers A-B  blocks (1-based) edited by the intervention (default: the middle third)
  --no-intervention  skip the causal intervention
  --compress LIST    compressed copies probed the same way, for the drift table: sparsegpt-P
                     (P % unstructured) or sparsegpt-N:M, SparseGPT on 32 windows of the bundled
                     corpora (default sparsegpt-50,sparsegpt-2:4; "none" for none)
  --cache DIR        hidden-state cache (default out/truth-probes/cache)
  --backend NAME     ts, cpu or cuda (default: the fastest available)
  --out DIR          results.json, *.csv, report.md, report.html (default out/truth-probes)
  Files outside data/ and ../shared/data need --allow-read=FILE added to the deno run command.
`;

type Method = "lr" | "mmp" | "ccr" | "ccs" | "lm";
const METHODS: readonly Method[] = ["lr", "mmp", "ccr", "ccs", "lm"];
const GROUPS = ["pos-prem", "no-prem"] as const;
type Group = typeof GROUPS[number];
const TRAIN_VARIANT: Record<Group, PremiseVariant> = {
  "pos-prem": "original_pos_prem",
  "no-prem": "no_prem",
};

/** Layer l's pairs of items [from, to), each side mean-centred on this split. */
function split(s: ContrastStates, l: number, from: number, to: number): ContrastPairs {
  const D = s.dim;
  return centerPairs({
    n: to - from,
    d: D,
    neg: Float64Array.from(s.neg[l]!.subarray(from * D, to * D)),
    pos: Float64Array.from(s.pos[l]!.subarray(from * D, to * D)),
  });
}

interface Fitted {
  direction: Float64Array | null;
  calibration: Calibration;
}

function fitDirection(method: Method, pairs: ContrastPairs, labels: Float64Array): Float64Array {
  switch (method) {
    case "lr":
      return lrProbe(pairs, labels).coef;
    case "mmp":
      return massMeanProbe(pairs, labels);
    case "ccr":
      return ccrProbe(pairs).direction;
    case "ccs":
      return ccsProbe(pairs).direction;
    default:
      throw new RangeError(`${method} has no direction`);
  }
}

await runScript({ name: "truth_probes.ts", usage: USAGE, needs: [] }, async (args) => {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string", default: "data/models/tinyllama-bytes" },
      data: { type: "string", default: "../shared/data/truth_probes/geometry_of_truth/cities.csv" },
      items: { type: "string", default: "1000" },
      seed: { type: "string", default: "0" },
      methods: { type: "string", default: "lr,mmp,ccr,lm" },
      "edit-layers": { type: "string" },
      "no-intervention": { type: "boolean", default: false },
      compress: { type: "string", default: "sparsegpt-50,sparsegpt-2:4" },
      cache: { type: "string", default: "out/truth-probes/cache" },
      backend: { type: "string" },
      out: { type: "string", default: "out/truth-probes" },
    },
    strict: true,
  });
  const items = intFlag("--items", values.items, 4, 1_000_000);
  const seed = intFlag("--seed", values.seed, 0);
  const methods = values.methods.split(",").map((m) => m.trim()) as Method[];
  for (const m of methods) {
    if (!METHODS.includes(m)) {
      throw new RangeError(
        `--methods: unknown method '${m}', expected some of ${METHODS.join(", ")}`,
      );
    }
  }
  const compress = values.compress === "none" ? [] : values.compress.split(",").map((c) => {
    const m = /^sparsegpt-(?:(\d+(?:\.\d+)?)|(\d+):(\d+))$/.exec(c.trim());
    const pct = m?.[1] !== undefined ? Number(m[1]) : NaN, n = Number(m?.[2]), mm = Number(m?.[3]);
    if (
      !m || (m[1] !== undefined && !(pct > 0 && pct < 100)) ||
      (m[2] !== undefined && !(n >= 1 && n < mm))
    ) {
      throw new RangeError(
        `--compress: '${c}' is not sparsegpt-P (0 < P < 100) or sparsegpt-N:M (N < M)`,
      );
    }
    return {
      tag: c.trim(),
      ...(m[1] !== undefined ? { sparsity: pct / 100 } : { nm: [n, mm] as [number, number] }),
    };
  });
  requirePermissions("truth_probes.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "read", path: values.cache },
    { name: "write", path: values.cache },
    { name: "write", path: values.out },
  ]);
  const backend = selectBackend(values.backend);
  const model = await LlamaModel.load(values.model, { backend });
  const L = model.config.numLayers;
  const editLayers: number[] = [];
  if (!values["no-intervention"]) {
    const spec = values["edit-layers"] ??
      `${Math.max(1, Math.floor(L / 3) + 1)}-${Math.max(1, Math.floor((2 * L) / 3))}`;
    const m = /^(\d+)(?:-(\d+))?$/.exec(spec);
    const a = m ? Number(m[1]) : NaN, b = m ? Number(m[2] ?? m[1]) : NaN;
    if (!(a >= 1 && b >= a && b <= L)) {
      throw new RangeError(`--edit-layers '${spec}' is not a range A-B of blocks within 1..${L}`);
    }
    for (let l = a; l <= b; l++) editLayers.push(l);
  }
  const tok = await loadTokenizer(values.model, model.config);
  const data = await loadTruthItems(values.data, { items, seed });
  const half = Math.floor(items / 2);
  const labels = Float64Array.from(data, (x) => x.label);
  const trainY = labels.slice(0, half), evalY = labels.slice(half);
  const hash = await weightsHash(values.model);
  const itemsKey = await sha256Text(JSON.stringify(data));
  await Deno.mkdir(values.cache, { recursive: true });
  const dataName = values.data.split("/").at(-1)!.replace(/\.csv$/, "");

  const prompts = Object.fromEntries(
    PREMISE_VARIANTS.map((v) => [v, renderVariant(data, v, seed)]),
  );
  /** Hidden states of every variant on model `m` (cached under `tag`), and the probes on them. */
  const analyse = async (m: LlamaModel, tag: string) => {
    // hidden states of every variant (cached)
    const states = {} as Record<PremiseVariant, ContrastStates>;
    for (const v of PREMISE_VARIANTS) {
      const key = await sha256Text(JSON.stringify({ hash, TEMPLATE_ID, itemsKey, v, seed, tag }));
      const bar = progress(`${tag} ${v}`, items);
      const t0 = performance.now();
      const r = await cachedStates(
        `${values.cache}/${dataName}-${tag}-${v}-${key.slice(0, 16)}.safetensors`,
        key,
        () => collectContrastStates(m, tok, prompts[v]!, { onProgress: () => bar.tick() }),
      );
      bar.stop();
      states[v] = r.states;
      console.error(
        `${tag} ${v}: ${r.cached ? "cached" : `${((performance.now() - t0) / 1000).toFixed(1)} s`}`,
      );
    }

    // probes per group × layer × method, evaluated on every variant's eval half
    const fitted = new Map<string, Fitted>();
    const accRows: Record<string, unknown>[] = [], metricRows: Record<string, unknown>[] = [];
    const lmP = (v: PremiseVariant, from: number, to: number) =>
      lmHeadBaseline(new Float64Array(to - from), states[v].lmDiff.slice(from, to)).p;
    for (const group of GROUPS) {
      const tv = TRAIN_VARIANT[group];
      for (let l = 0; l < L; l++) {
        for (const method of methods) {
          if (method === "lm" && l > 0) continue; // the LM head has no layer
          const train = split(states[tv], l, 0, half), cal = split(states.no_prem, l, 0, half);
          let fit: Fitted;
          let predict: (v: PremiseVariant) => Float64Array;
          if (method === "lm") {
            const calibration = fitCalibration({
              calibrationP: lmP("no_prem", 0, half),
              trainP: lmP(tv, 0, half),
              trainLabels: trainY,
            });
            fit = { direction: null, calibration };
            predict = (v) => applyCalibration(lmP(v, half, items), calibration);
          } else {
            const direction = fitDirection(method, train, trainY);
            const calibration = fitCalibration({
              calibrationP: probeProbabilities(direction, cal),
              trainP: probeProbabilities(direction, train),
              trainLabels: trainY,
              trainPairs: train,
              direction,
            });
            fit = { direction, calibration };
            predict = (v) =>
              applyCalibration(
                probeProbabilities(direction, split(states[v], l, half, items)),
                calibration,
              );
          }
          fitted.set(`${group}|${l}|${method}`, fit);
          const p = Object.fromEntries(PREMISE_VARIANTS.map((v) => [v, predict(v)])) as Record<
            PremiseVariant,
            Float64Array
          >;
          const layer = method === "lm" ? "head" : l + 1;
          for (const v of PREMISE_VARIANTS) {
            accRows.push({ group, layer, method, variant: v, accuracy: accuracy(p[v], evalY) });
          }
          const m = contextMetrics({
            noPrem: p.no_prem,
            originalPos: p.original_pos_prem,
            originalNeg: p.original_neg_prem,
            randomPos: p.random_pos_prem,
            randomNeg: p.random_neg_prem,
            shufflePos: p.shuffle_pos_prem,
            shuffleNeg: p.shuffle_neg_prem,
          }, evalY);
          metricRows.push({
            group,
            layer,
            method,
            E1: m.e1?.median,
            E2: m.e2?.median,
            E3: m.e3.median,
            E4: m.e4.median,
            E34: m.e34.median,
            E1_mean: m.e1?.mean,
            E2_mean: m.e2?.mean,
            E3_mean: m.e3.mean,
            E4_mean: m.e4.mean,
            E3_trim: m.e3.trimMean,
            E4_trim: m.e4.trimMean,
            E3_p20: m.e3.p20,
            E3_p80: m.e3.p80,
            error_sv: m.errorSv,
            premise_sensitivity: m.premiseSensitivity,
            rel_error_sv: m.relErrorSv,
            acc_pos_prem: m.accuracyPosPrem,
            acc_no_prem: m.accuracyNoPrem,
            "p(h|p;e)": m.meanP.posPremTrue,
            "p(h|p;c)": m.meanP.posPremFalse,
            "p(h|-p;e)": m.meanP.negPremTrue,
            "p(h|-p;c)": m.meanP.negPremFalse,
            "p(h)": m.meanP.noPrem,
            scale: fit.calibration.scale,
            sign: fit.calibration.sign,
            length: fit.calibration.length,
          });
        }
      }
    }

    return { states, fitted, accRows, metricRows };
  };
  const { states, fitted, accRows, metricRows } = await analyse(model, "dense");

  // cosine similarity of the pos-prem directions across layers × methods
  const dirKeys: string[] = [], dirs: Float64Array[] = [], signs: number[] = [];
  for (const method of methods.filter((m) => m !== "lm")) {
    for (let l = 0; l < L; l++) {
      const f = fitted.get(`pos-prem|${l}|${method}`)!;
      dirKeys.push(`${method} L${l + 1}`);
      dirs.push(f.direction!);
      signs.push(f.calibration.sign);
    }
  }
  const cosine = dirs.length ? cosineSimilarityMatrix(dirs, signs) : [];

  // the causal intervention: −sign·length·θ̂ of the last edited block's pos-prem probe, added
  // after every edited block at the answer strings in the premise and the period after them
  const intervention: Record<string, unknown>[] = [];
  const evalPrompts = prompts.original_pos_prem!.slice(half);
  if (editLayers.length) {
    const probeLayer = editLayers.at(-1)! - 1;
    for (const method of methods.filter((m) => m === "lr" || m === "mmp" || m === "ccr")) {
      const f = fitted.get(`pos-prem|${probeLayer}|${method}`)!;
      const th = f.direction!, norm = Math.hypot(...th);
      const k = -f.calibration.sign * f.calibration.length / norm;
      const vector = Float32Array.from(th, (x) => k * x);
      const bar = progress(`intervene ${method}`, evalPrompts.length);
      const edited = collectContrastStates(model, tok, evalPrompts, {
        edits: editLayers.map((b) => ({ layer: b - 1, vector })),
        onProgress: () => bar.tick(),
      });
      bar.stop();
      for (let l = 0; l < L; l++) {
        const g = fitted.get(`pos-prem|${l}|${method}`)!;
        // the probes are evaluated as trained: on states centred by the un-intervened split
        // centred by the un-intervened eval split's means, the same arithmetic for both
        const orig = states.original_pos_prem, D = edited.dim, n = items - half;
        const centre = (rows: Float32Array, which: "neg" | "pos") => {
          const mu = new Float64Array(D);
          for (let i = 0; i < n; i++) {
            for (let j = 0; j < D; j++) mu[j]! += orig[which][l]![(half + i) * D + j]! / n;
          }
          return Float64Array.from({ length: n * D }, (_, x) => rows[x]! - mu[x % D]!);
        };
        const eval0 = (side: Float32Array[]) => side[l]!.subarray(half * D, items * D);
        const base: ContrastPairs = {
          n,
          d: D,
          neg: centre(eval0(orig.neg), "neg"),
          pos: centre(eval0(orig.pos), "pos"),
        };
        const moved: ContrastPairs = {
          n,
          d: D,
          neg: centre(edited.neg[l]!, "neg"),
          pos: centre(edited.pos[l]!, "pos"),
        };
        const p0 = applyCalibration(probeProbabilities(g.direction!, base), g.calibration);
        const p1 = applyCalibration(probeProbabilities(g.direction!, moved), g.calibration);
        for (const y of [0, 1]) {
          const d = [];
          for (let i = 0; i < n; i++) if (evalY[i] === y) d.push(p1[i]! - p0[i]!);
          intervention.push({
            method,
            layer: l + 1,
            label: y,
            n: d.length,
            mean_dp: d.reduce((a, b) => a + b, 0) / d.length,
            median_dp: median(d),
          });
        }
      }
    }
  }

  // the same probes on compressed copies: how accuracy, calibration and E1–E4 drift
  const drift: Record<string, unknown>[] = [];
  const summarise = (tag: string, rows: Record<string, unknown>[]) => {
    for (const method of methods) {
      const ms = rows.filter((r) => r.group === "pos-prem" && r.method === method);
      const avg = (k: string) => {
        const v = ms.map((r) => r[k]).filter((x): x is number =>
          typeof x === "number" && Number.isFinite(x)
        );
        return v.length ? v.reduce((a, b) => a + b, 0) / v.length : NaN;
      };
      drift.push({
        model: tag,
        method,
        layers: ms.length,
        acc_pos_prem: avg("acc_pos_prem"),
        acc_no_prem: avg("acc_no_prem"),
        scale: avg("scale"),
        E1: avg("E1"),
        E2: avg("E2"),
        E3: avg("E3"),
        E4: avg("E4"),
        error_sv: avg("error_sv"),
      });
    }
  };
  if (compress.length) {
    summarise("dense", metricRows);
    const windows = calibrationWindows(await bundledDocuments("data"), tok, {
      count: 32,
      context: 256,
      seed,
    });
    for (const c of compress) {
      const copy = await LlamaModel.load(values.model, { backend });
      await pruneModel(copy, windows, {
        method: "sparsegpt",
        ...("sparsity" in c ? { sparsity: c.sparsity } : { nm: c.nm }),
        progress: false,
      });
      const r = await analyse(copy, `${c.tag}-calib32-seed${seed}`);
      summarise(c.tag, r.metricRows);
    }
  }

  // outputs
  const best = (group: Group) =>
    accRows.filter((r) =>
      r.group === group && r.variant === TRAIN_VARIANT[group] && r.method !== "lm"
    )
      .reduce((a, b) => ((b.accuracy as number) > (a.accuracy as number) ? b : a), {
        accuracy: -1,
      });
  const lmAcc = accRows.find((r) =>
    r.method === "lm" && r.group === "pos-prem" && r.variant === "original_pos_prem"
  );
  const results = {
    model: values.model,
    data: values.data,
    items,
    seed,
    backend,
    methods,
    template: TEMPLATE_ID,
    editLayers,
    weightsHash: hash,
    bestPosPrem: best("pos-prem"),
    bestNoPrem: best("no-prem"),
    lmHeadPosPrem: lmAcc?.accuracy,
    chance: Math.max(mean01(evalY), 1 - mean01(evalY)),
    accuracy: accRows,
    metrics: metricRows,
    cosine: { labels: dirKeys, matrix: cosine },
    intervention,
    compression: drift,
  };
  const probeMethods = methods.filter((m) => m !== "lm");
  const accChart = lineSvg(
    GROUPS.flatMap((group) =>
      probeMethods.map((method) => ({
        label: `${method} (${group})`,
        points: accRows.filter((r) =>
          r.group === group && r.method === method && r.variant === TRAIN_VARIANT[group]
        )
          .map((r) => [r.layer as number, r.accuracy as number] as [number, number]),
      }))
    ),
    {
      title: "Eval accuracy per layer (train variant = eval variant)",
      xLabel: "layer",
      yLabel: "accuracy",
      points: true,
    },
  );
  const heatKeys = probeMethods.flatMap((m) =>
    Array.from({ length: L }, (_, l) => [m, l + 1] as const)
  );
  const heat = heatmapSvg(
    heatKeys.map(([m, l]) => `${m} L${l}`),
    ["E1", "E2", "E3", "E4", "E3+4"],
    heatKeys.map(([m, l]) => {
      const r = metricRows.find((r) => r.group === "pos-prem" && r.method === m && r.layer === l)!;
      return [r.E1, r.E2, r.E3, r.E4, r.E34].map((x) => (typeof x === "number" ? x : NaN));
    }),
    { title: "Median E1–E4 per layer (pos-prem probes)", digits: 2 },
  );
  const cosHeat = dirs.length
    ? heatmapSvg(dirKeys, dirKeys, cosine, {
      title: "Cosine of directions (pos-prem)",
      min: -1,
      max: 1,
      digits: 2,
      cell: 36,
    })
    : "";
  const verdict = `best pos-prem probe accuracy ${
    fmt(results.bestPosPrem.accuracy)
  } (${results.bestPosPrem.method} layer ${results.bestPosPrem.layer}), LM head ${
    fmt(lmAcc?.accuracy)
  }, chance ${fmt(results.chance)}`;
  const md =
    `# Truth probes in context\n\n${values.model} on ${values.data}: ${items} items (${half} train, ${
      items - half
    } eval) per variant, seed ${seed}, ${backend} backend. Template: \`${TEMPLATE_ID}\`.\n\n**${verdict}.**` +
    ` Near-chance accuracy is a finding about the model, not a failure of the probes (tests/probes plant a direction and recover it).\n\n` +
    `## Accuracy on the eval half (train group pos-prem)\n\n` +
    markdownTable(
      accRows.filter((r) => r.group === "pos-prem").reduce((rows, r) => {
        const key = `${r.method} ${r.layer}`;
        let row = rows.find((x) => x.key === key);
        if (!row) rows.push(row = { key, method: r.method, layer: r.layer });
        row[r.variant as string] = r.accuracy;
        return rows;
      }, [] as Record<string, unknown>[]),
      ["method", "layer", ...PREMISE_VARIANTS],
      3,
    ) +
    `\n\n## Context sensitivity (medians; pos-prem probes)\n\n` +
    markdownTable(metricRows.filter((r) => r.group === "pos-prem"), [
      "method",
      "layer",
      "E1",
      "E2",
      "E3",
      "E4",
      "E34",
      "error_sv",
      "premise_sensitivity",
      "rel_error_sv",
      "acc_pos_prem",
      "acc_no_prem",
    ], 3) +
    `\n\n## Calibration (fitted on the no-premise train split)\n\n` +
    markdownTable(metricRows.filter((r) => r.group === "pos-prem"), [
      "method",
      "layer",
      "scale",
      "sign",
      "length",
      "p(h|p;e)",
      "p(h|p;c)",
      "p(h|-p;e)",
      "p(h|-p;c)",
      "p(h)",
    ], 3) +
    (intervention.length
      ? `\n\n## Intervention (blocks ${editLayers.join(", ")}, probe of layer ${
        editLayers.at(-1)
      }; Δp = p edited − p original)\n\n` +
        markdownTable(intervention, ["method", "layer", "label", "n", "mean_dp", "median_dp"], 4)
      : "") +
    "\n";
  const csv = (rows: Record<string, unknown>[]) =>
    stringify(
      rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v ?? ""]))),
      {
        columns: Object.keys(rows[0] ?? {}),
      },
    );
  const files = await writeOutputs(values.out, {
    "results.json": JSON.stringify(results, null, 2),
    "accuracy.csv": csv(accRows),
    "metrics.csv": csv(metricRows),
    ...(intervention.length ? { "intervention.csv": csv(intervention) } : {}),
    ...(drift.length ? { "compression.csv": csv(drift) } : {}),
    "report.md": md,
    "report.html": htmlPage("Truth probes in context", [
      accChart,
      heat,
      cosHeat,
      `<pre>${md.replace(/&/g, "&amp;").replace(/</g, "&lt;")}</pre>`,
    ]),
  });
  console.log(verdict);
  console.error(`wrote ${files.join(", ")}`);
});

function mean01(y: Float64Array): number {
  return y.reduce((a, b) => a + b, 0) / y.length;
}

function fmt(x: unknown): string {
  return typeof x === "number" ? x.toFixed(3) : "n/a";
}
