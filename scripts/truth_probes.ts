#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build --allow-env=LMKIT_BACKEND
/**
 * Truth directions in context (Schouten et al.; sfschouten/tvj-in-llms): hidden states of
 * contrast pairs in seven premise variants, LR / mass-mean / CCR (/ CCS / unsupervised
 * mass-mean) probes and the LM-head baseline per layer in the authors' four training groups
 * (no-prem, pos-prem, same, combined), calibration on the no-premise split, the
 * context-sensitivity metrics E1–E4, error_sv and the rest, cosine similarity of directions, the
 * causal intervention along the probe direction at the answer strings in the premise, and the
 * same probes on SparseGPT and Sparse Expansion copies of the model.
 *
 * @module
 */
import { parseArgs } from "@std/cli";
import { stringify } from "@std/csv";
import { intFlag } from "../lib/core/args.ts";
import { requirePermissions } from "../lib/core/permissions.ts";
import { progress } from "../lib/core/progress.ts";
import { runScript } from "../lib/core/script.ts";
import { RUN_FOLDER_FLAGS, runFolder } from "../lib/core/run_folder.ts";
import { writeOutputs } from "../lib/io/output.ts";
import { selectBackend } from "../ffi/mod.ts";
import { LINEAR_NAMES, type LinearName, LlamaModel } from "../lib/model/llama.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { pruneModel } from "../lib/sparse/prune_model.ts";
import { quantizeModel } from "../lib/quant/quantize_model.ts";
import { sparseExpand } from "../lib/sparse/expansion.ts";
import { checkClusters } from "../lib/sparse/router.ts";
import { checkModelPattern } from "../lib/sparse/mod.ts";
import { loadStates, saveStates, sha256Text, weightsHash } from "../lib/probes/cache.ts";
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
  COMBINED_RECIPE,
  type CombinedPart,
  combineTrainSets,
  contextMetrics,
  type ContrastPairs,
  cosineSimilarityMatrix,
  fitCalibration,
  lmHeadBaseline,
  lrProbe,
  massMeanProbe,
  median,
  probeProbabilities,
  type TrainingGroup,
  unsupervisedMassMeanProbe,
} from "../lib/probes/mod.ts";
import {
  type Chart,
  ColorMap,
  heatmapChart,
  lineChart,
  markdownTable,
  reportFiles,
} from "../lib/report/mod.ts";

/** Experts of an `expand-P` copy when the spec names none. */
const DEFAULT_EXPERTS = 4;
/** k-means restarts of the Sparse Expansion routers (sparse_expand.ts's default). */
const EXPAND_RESTARTS = 4;

const USAGE = `
truth_probes.ts — truth probes in context: per-layer probes, calibration, E1–E4, intervention.

Usage: scripts/truth_probes.ts [options]
       deno task truth-probes [-- options]

  --model DIR        checkpoint (default data/models/tinyllama-bytes)
  --data CSV         statements with statement,label columns and a premise source: a premise
                     column, city + correct_country, or n1 + n2
                     (default ../shared/data/truth_probes/geometry_of_truth/cities.csv)
  --items N          items per variant, first half train, second half eval (default 1000)
  --seed N           item order, shuffled premises, random letters, the combined set (default 0)
  --methods LIST     of lr, mmp, ccr, ccs, ummp (unsupervised mass-mean), lm (default
                     lr,mmp,ccr,lm; ccs trains 10 seeds)
  --edit-layers A-B  blocks (1-based) edited by the intervention (default: the middle third)
  --no-intervention  skip the causal intervention
  --compress LIST    compressed copies probed the same way (pos-prem group) for the drift table:
                     sparsegpt-P (P % unstructured) or sparsegpt-N:M: SparseGPT of every
                     projection; expand-P or expand-N:M: Sparse Expansion of the MLPs (attention
                     stays dense) into ${DEFAULT_EXPERTS} experts, expand-PxE or expand-N:MxE into E;
                     gptq-B or gptq-BgG (rtn-B, rtn-BgG): B-bit weights of every projection,
                     per row or in groups of G (GPTQ true-sequential; round-to-nearest);
                     each fitted on --calib-windows windows of the bundled corpora
                     (default sparsegpt-50,sparsegpt-2:4; "none" for none)
  --calib-windows N  calibration windows of 256 tokens for --compress (default 32)
  --cache DIR        hidden-state cache (default out/truth-probes/cache)
  --backend NAME     ts, cpu or cuda (default: the fastest available)
  --out DIR          results.json, *.csv, report.md, report.html (default out/truth-probes/<run-id>)
                     a chosen folder must be new or empty, unless --overwrite

Training groups (the authors'): pos-prem and no-prem train every probe on the original-premise
or the no-premise variant and evaluate it on all seven; same trains the unsupervised probes (ccr,
ccs, ummp, lm) on each variant and evaluates each on its own variant; combined trains them on the
authors' mix of the seven train splits (lib/probes/groups.ts; its counts scaled down when the
train half has fewer than 500 items) and evaluates on all seven. LR and mass-mean need labels and
join only pos-prem and no-prem, as in the authors' configs.
`;

type Method = "lr" | "mmp" | "ccr" | "ccs" | "ummp" | "lm";
const METHODS: readonly Method[] = ["lr", "mmp", "ccr", "ccs", "ummp", "lm"];
/** Probes that need labels: trained in the no-prem and pos-prem groups only (as the authors'). */
const SUPERVISED: readonly Method[] = ["lr", "mmp"];
const GROUPS = [
  "pos-prem",
  "no-prem",
  "same",
  "combined",
] as const satisfies readonly TrainingGroup[];
type Group = typeof GROUPS[number];
/** The train set of a probe: a variant's train split or the combined set. */
type TrainSet = PremiseVariant | "combined";
/** The single train set of a group (same: the variant evaluated). */
const GROUP_TRAIN: Record<Exclude<Group, "same">, TrainSet> = {
  "pos-prem": "original_pos_prem",
  "no-prem": "no_prem",
  combined: "combined",
};

/** A compressed copy of the model asked for by --compress. */
interface CopySpec {
  /** Canonical name (`sparsegpt-50`, `expand-2:4x4`), the drift table's model column. */
  tag: string;
  method: "sparsegpt" | "expand" | "gptq" | "rtn";
  pattern: { sparsity: number } | { nm: [number, number] };
  /** Experts per projection (expand). */
  experts: number;
  /** Bits and group size (gptq, rtn; group 0 = one group per row). */
  quant?: { bits: number; groupSize: number };
}

/** Parses one --compress entry, or throws one sentence naming it. */
function parseCopy(spec: string): CopySpec {
  const c = spec.trim();
  const q = /^(gptq|rtn)-(\d+)(?:g(\d+))?$/.exec(c);
  if (q) {
    const bits = Number(q[2]), groupSize = q[3] === undefined ? 0 : Number(q[3]);
    if (bits < 2 || bits > 8 || (q[3] !== undefined && groupSize < 1)) {
      throw new RangeError(
        `--compress: '${c}' is not gptq-B or gptq-BgG (rtn likewise) with 2 ≤ B ≤ 8 bits and a group size G ≥ 1`,
      );
    }
    return {
      tag: c,
      method: q[1] as "gptq" | "rtn",
      pattern: { sparsity: 0 },
      experts: 0,
      quant: { bits, groupSize },
    };
  }
  const m = /^(sparsegpt|expand)-(?:(\d+(?:\.\d+)?)|(\d+):(\d+))(?:x(\d+))?$/.exec(c);
  const pct = Number(m?.[2]), n = Number(m?.[3]), mm = Number(m?.[4]);
  const experts = m?.[5] !== undefined ? Number(m[5]) : DEFAULT_EXPERTS;
  if (
    !m || (m[2] !== undefined ? !(pct > 0 && pct < 100) : !(n >= 1 && n < mm)) ||
    (m[5] !== undefined && (m[1] !== "expand" || experts < 1))
  ) {
    throw new RangeError(
      `--compress: '${c}' is not sparsegpt-P, sparsegpt-N:M, expand-P or expand-N:M (0 < P < 100, 1 ≤ N < M), optionally with xE experts (E ≥ 1) after an expand entry, or gptq-B[gG] / rtn-B[gG]`,
    );
  }
  const method = m[1] as "sparsegpt" | "expand";
  const pat = m[2] !== undefined ? m[2] : `${n}:${mm}`;
  return {
    tag: method === "expand" ? `expand-${pat}x${experts}` : `sparsegpt-${pat}`,
    method,
    pattern: m[2] !== undefined ? { sparsity: pct / 100 } : { nm: [n, mm] },
    experts,
  };
}

/** The authors' combined recipe with its counts scaled to a train half of `half` items. */
function combinedRecipe(half: number): CombinedPart[] {
  const f = Math.min(1, half / 500);
  return COMBINED_RECIPE.map((p) => ({
    ...p,
    count: Math.min(half, Math.max(1, Math.round(p.count * f))),
  }));
}

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

/** A probe's training data: pairs, labels (NaN = unlabelled) and the LM's answer preference. */
interface TrainData {
  pairs: ContrastPairs;
  labels: Float64Array;
  lmDiff: Float64Array;
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
    case "ummp":
      return unsupervisedMassMeanProbe(pairs).direction;
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
      "calib-windows": { type: "string", default: "32" },
      cache: { type: "string", default: "out/truth-probes/cache" },
      backend: { type: "string" },
      ...RUN_FOLDER_FLAGS,
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
  const compress = values.compress === "none" ? [] : values.compress.split(",").map(parseCopy);
  const calibCount = intFlag("--calib-windows", values["calib-windows"], 1, 100_000);
  requirePermissions("truth_probes.ts", [
    { name: "read", path: values.model },
    { name: "read", path: values.data },
    { name: "read", path: values.cache },
    { name: "write", path: values.cache },
    { name: "write", path: values.out ?? "out/truth-probes" },
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
  // every compressed copy checked against the model and the calibration tokens now, not after
  // the dense model's minutes of work
  const windows = compress.length
    ? calibrationWindows(await bundledDocuments("data"), tok, {
      count: calibCount,
      context: 256,
      seed,
    })
    : [];
  const MLP: readonly LinearName[] = ["gate_proj", "up_proj", "down_proj"];
  for (const c of compress) {
    if (c.quant) continue; // bits and group were checked when parsed; any width quantizes
    try {
      checkModelPattern(model, c.method === "expand" ? MLP : LINEAR_NAMES, c.pattern);
      if (c.method === "expand") {
        checkClusters(c.experts, windows.reduce((a, s) => a + s.length, 0));
      }
    } catch (e) {
      throw new RangeError(
        `--compress: '${c.tag}' does not fit the model: ${(e as Error).message}`,
      );
    }
  }
  const data = await loadTruthItems(values.data, { items, seed });
  const half = Math.floor(items / 2);
  const labels = Float64Array.from(data, (x) => x.label);
  const trainY = labels.slice(0, half), evalY = labels.slice(half);
  const hash = await weightsHash(values.model);
  const itemsKey = await sha256Text(JSON.stringify(data));
  await Deno.mkdir(values.cache, { recursive: true });
  const dataName = values.data.split("/").at(-1)!.replace(/\.csv$/, "");
  const recipe = combinedRecipe(half);

  const prompts = Object.fromEntries(
    PREMISE_VARIANTS.map((v) => [v, renderVariant(data, v, seed)]),
  );
  /**
   * Hidden states of every variant (cached under `tag`; `getModel` is called only when one is
   * missing, so that a cached copy is not compressed again), and the probes of `groups` on them:
   * rows of accuracy per variant and of the context metrics, and every fitted probe under
   * `train|layer|method` (train: a variant or "combined").
   */
  const analyse = async (
    getModel: () => Promise<LlamaModel>,
    tag: string,
    groups: readonly Group[],
  ) => {
    const states = {} as Record<PremiseVariant, ContrastStates>;
    let m: LlamaModel | undefined;
    for (const v of PREMISE_VARIANTS) {
      const key = await sha256Text(JSON.stringify({ hash, TEMPLATE_ID, itemsKey, v, seed, tag }));
      const path = `${values.cache}/${dataName}-${tag}-${v}-${key.slice(0, 16)}.safetensors`;
      const hit = await loadStates(path, key);
      if (hit) {
        states[v] = hit;
        console.error(`${tag} ${v}: cached`);
        continue;
      }
      m ??= await getModel();
      const bar = progress(`${tag} ${v}`, items);
      const t0 = performance.now();
      states[v] = collectContrastStates(m, tok, prompts[v]!, { onProgress: () => bar.tick() });
      bar.stop();
      await saveStates(path, states[v], key);
      console.error(`${tag} ${v}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }

    const fitted = new Map<string, Fitted>();
    const accRows: Record<string, unknown>[] = [], metricRows: Record<string, unknown>[] = [];
    const lmP = (v: PremiseVariant, from: number, to: number) =>
      lmHeadBaseline(new Float64Array(to - from), states[v].lmDiff.slice(from, to)).p;
    // how many probe fits the groups need (one per train set × layer × method), for the bar
    const unsup = methods.filter((m) => !SUPERVISED.includes(m));
    const perLayer = (method: Method) => {
      const sets = new Set<TrainSet>();
      for (const g of groups) {
        if (g !== "pos-prem" && g !== "no-prem" && SUPERVISED.includes(method)) continue;
        if (g === "same") PREMISE_VARIANTS.forEach((v) => sets.add(v));
        else sets.add(GROUP_TRAIN[g]);
      }
      return sets.size;
    };
    const bar = progress(
      `${tag} probes`,
      methods.reduce((a, m) => a + (m === "lm" ? 1 : L) * perLayer(m), 0),
    );
    for (let l = 0; l < L; l++) {
      await new Promise((r) => setTimeout(r, 0)); // let the progress bar and signals through
      const trainOf = {} as Record<PremiseVariant, ContrastPairs>;
      const evalOf = {} as Record<PremiseVariant, ContrastPairs>;
      for (const v of PREMISE_VARIANTS) {
        trainOf[v] = split(states[v], l, 0, half);
        evalOf[v] = split(states[v], l, half, items);
      }
      let combined: TrainData | undefined;
      const trainData = (t: TrainSet): TrainData => {
        if (t !== "combined") {
          return { pairs: trainOf[t], labels: trainY, lmDiff: states[t].lmDiff.slice(0, half) };
        }
        if (combined) return combined;
        // the same seed draws the same items of each split for the states and the LM logits
        const c = combineTrainSets(
          recipe.map((p) => ({
            ...p,
            pairs: trainOf[p.variant as PremiseVariant],
            labels: trainY,
          })),
          seed,
        );
        const lm = combineTrainSets(
          recipe.map((p) => ({
            ...p,
            pairs: {
              n: half,
              d: 1,
              neg: new Float64Array(half),
              pos: states[p.variant as PremiseVariant].lmDiff.slice(0, half),
            },
            labels: trainY,
          })),
          seed,
        );
        return combined = { pairs: c.pairs, labels: c.labels, lmDiff: lm.pairs.pos };
      };
      const calP = (direction: Float64Array) => probeProbabilities(direction, trainOf.no_prem);
      /** The probe of `method` trained on `t` at layer l (fitted once, then reused). */
      const fit = (method: Method, t: TrainSet): Fitted => {
        const key = `${t}|${l}|${method}`;
        const have = fitted.get(key);
        if (have) return have;
        const td = trainData(t);
        let f: Fitted;
        if (method === "lm") {
          f = {
            direction: null,
            calibration: fitCalibration({
              calibrationP: lmP("no_prem", 0, half),
              trainP: lmHeadBaseline(new Float64Array(td.lmDiff.length), td.lmDiff).p,
              trainLabels: td.labels,
            }),
          };
        } else {
          const direction = fitDirection(method, td.pairs, td.labels);
          f = {
            direction,
            calibration: fitCalibration({
              calibrationP: calP(direction),
              trainP: probeProbabilities(direction, td.pairs),
              trainLabels: td.labels,
              trainPairs: td.pairs,
              direction,
            }),
          };
        }
        fitted.set(key, f);
        bar.tick();
        return f;
      };
      const predict = (method: Method, f: Fitted, v: PremiseVariant) =>
        applyCalibration(
          method === "lm" ? lmP(v, half, items) : probeProbabilities(f.direction!, evalOf[v]),
          f.calibration,
        );
      for (const group of groups) {
        for (const method of group === "pos-prem" || group === "no-prem" ? methods : unsup) {
          if (method === "lm" && l > 0) continue; // the LM head has no layer
          const layer = method === "lm" ? "head" : l + 1;
          const p = {} as Record<PremiseVariant, Float64Array>;
          let f: Fitted | undefined;
          for (const v of PREMISE_VARIANTS) {
            const t: TrainSet = group === "same" ? v : GROUP_TRAIN[group];
            const fv = fit(method, t);
            if (group !== "same") f = fv;
            p[v] = predict(method, fv, v);
            accRows.push({
              group,
              train: t,
              layer,
              method,
              variant: v,
              accuracy: accuracy(p[v], evalY),
            });
          }
          const mt = contextMetrics({
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
            E1: mt.e1?.median,
            E2: mt.e2?.median,
            E3: mt.e3.median,
            E4: mt.e4.median,
            E34: mt.e34.median,
            E1_mean: mt.e1?.mean,
            E2_mean: mt.e2?.mean,
            E3_mean: mt.e3.mean,
            E4_mean: mt.e4.mean,
            E3_trim: mt.e3.trimMean,
            E4_trim: mt.e4.trimMean,
            E3_p20: mt.e3.p20,
            E3_p80: mt.e3.p80,
            error_sv: mt.errorSv,
            premise_sensitivity: mt.premiseSensitivity,
            rel_error_sv: mt.relErrorSv,
            acc_pos_prem: mt.accuracyPosPrem,
            acc_no_prem: mt.accuracyNoPrem,
            "p(h|p;e)": mt.meanP.posPremTrue,
            "p(h|p;c)": mt.meanP.posPremFalse,
            "p(h|-p;e)": mt.meanP.negPremTrue,
            "p(h|-p;c)": mt.meanP.negPremFalse,
            "p(h)": mt.meanP.noPrem,
            // "same" has one calibration per variant: see results.json's calibrations
            scale: f?.calibration.scale,
            sign: f?.calibration.sign,
            length: f?.calibration.length,
          });
        }
      }
    }
    bar.stop();
    // rows by group, then layer (the LM head first), then method, as the tables read
    const order = (
      r: Record<string, unknown>,
    ) => [GROUPS.indexOf(r.group as Group), r.layer === "head" ? 0 : r.layer as number];
    const byGroupLayer = (a: Record<string, unknown>, b: Record<string, unknown>) => {
      const [ga, la] = order(a), [gb, lb] = order(b);
      return ga! - gb! || la! - lb!;
    };
    accRows.sort(byGroupLayer), metricRows.sort(byGroupLayer);
    return { states, fitted, accRows, metricRows };
  };
  const { states, fitted, accRows, metricRows } = await analyse(
    () => Promise.resolve(model),
    "dense",
    GROUPS,
  );
  const calibrations = [...fitted].map(([key, f]) => {
    const [train, l, method] = key.split("|");
    return {
      train,
      layer: method === "lm" ? "head" : Number(l) + 1,
      method,
      ...f.calibration,
    };
  });

  // cosine similarity of the pos-prem directions across layers × methods
  const probeMethods = methods.filter((m) => m !== "lm");
  const dirKeys: string[] = [], dirs: Float64Array[] = [], signs: number[] = [];
  for (const method of probeMethods) {
    for (let l = 0; l < L; l++) {
      const f = fitted.get(`original_pos_prem|${l}|${method}`)!;
      dirKeys.push(`${method} L${l + 1}`);
      dirs.push(f.direction!);
      signs.push(f.calibration.sign);
    }
  }
  const cosine = dirs.length ? cosineSimilarityMatrix(dirs, signs) : [];
  // … and of the unsupervised directions across train sets (the seven variants and the
  // combined set), per method and layer
  const trainSets: TrainSet[] = [...PREMISE_VARIANTS, "combined"];
  const cosineVariants = probeMethods.filter((m) => !SUPERVISED.includes(m)).flatMap((method) =>
    Array.from({ length: L }, (_, l) => {
      const fs = trainSets.map((t) => fitted.get(`${t}|${l}|${method}`)!);
      return {
        method,
        layer: l + 1,
        labels: trainSets,
        matrix: cosineSimilarityMatrix(
          fs.map((f) => f.direction!),
          fs.map((f) => f.calibration.sign),
        ),
      };
    })
  );

  // the causal intervention: −sign·length·θ̂ of the last edited block's pos-prem probe, added
  // after every edited block at the answer strings in the premise and the period after them
  const intervention: Record<string, unknown>[] = [];
  const evalPrompts = prompts.original_pos_prem!.slice(half);
  if (editLayers.length) {
    const probeLayer = editLayers.at(-1)! - 1;
    for (const method of methods.filter((m) => m === "lr" || m === "mmp" || m === "ccr")) {
      const f = fitted.get(`original_pos_prem|${probeLayer}|${method}`)!;
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
        const g = fitted.get(`original_pos_prem|${l}|${method}`)!;
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
    for (const c of compress) {
      const compressed = async () => {
        const t0 = performance.now();
        const copy = await LlamaModel.load(values.model, { backend });
        if (c.method === "expand") {
          await sparseExpand(copy, windows, {
            experts: c.experts,
            ...c.pattern,
            restarts: EXPAND_RESTARTS,
            seed,
            progress: false,
          });
        } else if (c.quant) {
          await quantizeModel(copy, windows, {
            method: c.method as "gptq" | "rtn",
            ...c.quant,
            progress: false,
          });
        } else {
          await pruneModel(copy, windows, { method: "sparsegpt", ...c.pattern, progress: false });
        }
        console.error(`${c.tag}: compressed in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        return copy;
      };
      const cacheTag = `${c.tag}-calib${calibCount}${
        c.method === "expand" ? `-restarts${EXPAND_RESTARTS}` : ""
      }-seed${seed}`;
      const r = await analyse(compressed, cacheTag, ["pos-prem"]);
      summarise(c.tag, r.metricRows);
    }
  }

  // outputs
  /** The best probe (not the LM head) of a group on an eval variant, with the LM head's. */
  const bestOf = (group: Group, variant: PremiseVariant) => {
    const rows = accRows.filter((r) => r.group === group && r.variant === variant);
    const probes = rows.filter((r) => r.method !== "lm");
    const lm = rows.find((r) => r.method === "lm");
    const b = probes.reduce<Record<string, unknown> | undefined>(
      (a, r) => (a === undefined || (r.accuracy as number) > (a.accuracy as number) ? r : a),
      undefined,
    );
    return {
      group,
      eval: variant,
      method: (b?.method ?? "") as string,
      layer: (b?.layer ?? "") as number | string,
      accuracy: (b?.accuracy ?? NaN) as number,
      lm_head: (lm?.accuracy ?? NaN) as number,
    };
  };
  const best = GROUPS.flatMap((g) =>
    (["original_pos_prem", "no_prem"] as const).map((v) => bestOf(g, v))
  );
  const lmAcc = accRows.find((r) =>
    r.method === "lm" && r.group === "pos-prem" && r.variant === "original_pos_prem"
  );
  const chance = Math.max(mean01(evalY), 1 - mean01(evalY));
  const results = {
    model: values.model,
    data: values.data,
    items,
    seed,
    backend,
    methods,
    groups: GROUPS,
    combinedRecipe: recipe,
    template: TEMPLATE_ID,
    editLayers,
    weightsHash: hash,
    bestPosPrem: bestOf("pos-prem", "original_pos_prem"),
    bestNoPrem: bestOf("no-prem", "no_prem"),
    best,
    lmHeadPosPrem: lmAcc?.accuracy,
    chance,
    accuracy: accRows,
    metrics: metricRows,
    calibrations,
    cosine: { labels: dirKeys, matrix: cosine },
    cosineVariants,
    intervention,
    compression: drift,
  };
  // one colour per probe method in every chart; the training group is the line's dash
  const colors = new ColorMap(probeMethods);
  const accCharts: Chart[] = dirs.length
    ? (["original_pos_prem", "no_prem"] as const).map((v) =>
      lineChart({
        name: `accuracy-${v}`,
        title: `Eval accuracy per layer on ${v} (group "same" = pos-prem / no-prem here)`,
        section: "Accuracy on the eval half",
        data: accRows.filter((r) =>
          r.variant === v && r.group !== "same" && typeof r.layer === "number" &&
          (r.group === "pos-prem" || r.group === "no-prem" ||
            !SUPERVISED.includes(r.method as Method))
        ).map((r) => ({
          method: r.method as string,
          group: r.group as string,
          layer: r.layer as number,
          accuracy: r.accuracy as number,
        })),
        x: "layer",
        y: "accuracy",
        series: "method",
        dash: "group",
        colors,
        xInteger: true,
        points: true,
        rules: [{ y: chance, label: `chance ${fmt(chance)}` }],
      })
    )
    : [];
  const heats = GROUPS.flatMap((group) => {
    const rows = metricRows.filter((r) => r.group === group && r.method !== "lm");
    return rows.length
      ? [heatmapChart({
        name: `e-metrics-${group}`,
        title: `Median E1–E4 per layer (${group} probes)`,
        section: "Context sensitivity",
        data: rows.flatMap((r) =>
          (["E1", "E2", "E3", "E4", "E34"] as const).map((k) => ({
            probe: `${r.method} L${r.layer}`,
            metric: k === "E34" ? "E3+4" : k,
            value: typeof r[k] === "number" ? r[k] as number : null,
          }))
        ),
        x: "metric",
        y: "probe",
        value: "value",
        digits: 2,
        cellHeight: 18,
        valueTitle: "median",
      })]
      : [];
  });
  const cosHeat = dirs.length
    ? [heatmapChart({
      name: "cosine-directions",
      title: "Cosine of directions (pos-prem)",
      section: "Best probe per training group",
      data: dirKeys.flatMap((a, i) =>
        dirKeys.map((b, j) => ({ row: a, column: b, cosine: cosine[i]![j]! }))
      ),
      x: "column",
      y: "row",
      value: "cosine",
      domain: [-1, 1],
      scheme: "diverging",
      digits: 2,
      cellWidth: 38,
      cellHeight: 18,
    })]
    : [];
  // the train-set cosines of the first unsupervised probe at the intervention's probe layer (or
  // the middle layer)
  const cv = cosineVariants.find((c) =>
    c.layer === (editLayers.at(-1) ?? Math.max(1, Math.round(L / 2)))
  );
  const cosVarHeat = cv
    ? [heatmapChart({
      name: "cosine-train-sets",
      title: `Cosine of ${cv.method} directions across train sets (layer ${cv.layer})`,
      section: "Best probe per training group",
      data: cv.labels.flatMap((a, i) =>
        cv.labels.map((b, j) => ({ row: a, column: b, cosine: cv.matrix[i]![j]! }))
      ),
      x: "column",
      y: "row",
      value: "cosine",
      domain: [-1, 1],
      scheme: "diverging",
      digits: 2,
      cellWidth: 44,
    })]
    : [];
  const at = (b: { accuracy: number; method: unknown; layer: unknown }) =>
    `${fmt(b.accuracy)} (${b.method} layer ${b.layer})`;
  const bestGroup = (g: Group) =>
    best.find((b) => b.group === g && b.eval === "original_pos_prem")!;
  const verdict = `best pos-prem probe accuracy ${at(results.bestPosPrem)}, LM head ${
    fmt(lmAcc?.accuracy)
  }, chance ${fmt(chance)}; on the original premise: same ${
    bestGroup("same").method ? at(bestGroup("same")) : "n/a"
  }, combined ${bestGroup("combined").method ? at(bestGroup("combined")) : "n/a"}`;
  const md =
    `# Truth probes in context\n\n${values.model} on ${values.data}: ${items} items (${half} train, ${
      items - half
    } eval) per variant, seed ${seed}, ${backend} backend. Template: \`${TEMPLATE_ID}\`.\n\n**${verdict}.**` +
    ` Near-chance accuracy is a finding about the model, not a failure of the probes (tests/probes plant a direction and recover it).\n\n` +
    `Training groups: **pos-prem** and **no-prem** train every probe on the original-premise or the no-premise train split and evaluate it on all seven variants; **same** trains the unsupervised probes (${
      unsupLabel(methods)
    }) on each variant and evaluates each on its own variant; **combined** trains them on a mix of the train splits (${
      recipe.map((p) => `${p.count} ${p.variant}${p.supervised ? "" : " unlabelled"}`).join(", ")
    }) and evaluates on all seven. LR and mass-mean need labels and are trained in pos-prem and no-prem only, as in the authors' configs.\n\n` +
    `## Best probe per training group (eval half)\n\n` +
    markdownTable(best, ["group", "eval", "method", "layer", "accuracy", "lm_head"], 3) +
    `\n\n## Accuracy on the eval half\n\n` +
    markdownTable(
      accRows.reduce((rows, r) => {
        const key = `${r.group} ${r.method} ${r.layer}`;
        let row = rows.find((x) => x.key === key);
        if (!row) rows.push(row = { key, group: r.group, method: r.method, layer: r.layer });
        row[r.variant as string] = r.accuracy;
        return rows;
      }, [] as Record<string, unknown>[]),
      ["group", "method", "layer", ...PREMISE_VARIANTS],
      3,
    ) +
    `\n\n## Context sensitivity (medians)\n\n` +
    markdownTable(metricRows, [
      "group",
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
    `Group same has one calibration per variant (results.json: calibrations).\n\n` +
    markdownTable(metricRows.filter((r) => r.group !== "same"), [
      "group",
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
    (drift.length
      ? `\n\n## Compressed copies (pos-prem probes, means over layers)\n\n` +
        `sparsegpt-*: SparseGPT of every projection; expand-*xE: Sparse Expansion of the MLPs into E experts (attention dense); gptq-B[gG] / rtn-B[gG]: B-bit weights of every projection, per row or in groups of G (GPTQ, round-to-nearest); ${calibCount} calibration windows of 256 tokens, seed ${seed}.\n\n` +
        markdownTable(drift, [
          "model",
          "method",
          "layers",
          "acc_pos_prem",
          "acc_no_prem",
          "scale",
          "E1",
          "E2",
          "E3",
          "E4",
          "error_sv",
        ], 3)
      : "") +
    "\n";
  const csv = (rows: Record<string, unknown>[]) =>
    stringify(
      rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v ?? ""]))),
      {
        columns: Object.keys(rows[0] ?? {}),
      },
    );
  const files = await writeOutputs(await runFolder("truth-probes", values), {
    "results.json": JSON.stringify(results, null, 2),
    "accuracy.csv": csv(accRows),
    "metrics.csv": csv(metricRows),
    "best.csv": csv(best),
    ...(intervention.length ? { "intervention.csv": csv(intervention) } : {}),
    ...(drift.length ? { "compression.csv": csv(drift) } : {}),
    "report.md": md,
    ...(await reportFiles({
      title: "Truth probes in context",
      markdown: md,
      charts: [...accCharts, ...heats, ...cosHeat, ...cosVarHeat],
    })),
  });
  console.log(verdict);
  console.error(`wrote ${files.join(", ")}`);
});

function unsupLabel(methods: readonly Method[]): string {
  const u = methods.filter((m) => !SUPERVISED.includes(m));
  return u.length ? u.join(", ") : "none asked for";
}

function mean01(y: Float64Array): number {
  return y.reduce((a, b) => a + b, 0) / y.length;
}

function fmt(x: unknown): string {
  return typeof x === "number" ? x.toFixed(3) : "n/a";
}
