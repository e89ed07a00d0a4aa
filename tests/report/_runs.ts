// Each script that writes a report, with the cheapest flags (taken from its own tests) that still
// give a representative report: every chart and table kind it has. Used by browser_test.ts.

const ROOT = new URL("../../", import.meta.url).pathname;
const SHARED = `${ROOT}../shared/data`;
const FIX = `${ROOT}tests/toxicity/fixtures/`;

/** One script run. */
export interface ReportRun {
  /** Short name (the run's folder). */
  name: string;
  /** scripts/<script>. */
  script: string;
  /** Options before `--out`. */
  args: (tmp: string) => string[];
  /** Files the run needs (skipped with this reason when absent). */
  needs?: string[];
  /** Writes inputs into `tmp` first. */
  prepare?: (tmp: string) => Promise<void>;
}

/** transfer_factors' inputs: the shape of its own test, with some noise so intervals are wide. */
async function transferInputs(tmp: string): Promise<void> {
  const fert: Record<string, number> = { de: 1.6, ru: 2.9, zh: 2.3, es: 1.4, ar: 3.2, hi: 4.6 };
  const params: Record<string, number> = { m1: 110, m2: 340, m3: 560 };
  const latin = new Set(["de", "es"]);
  let csv = "model,source,target,task,score\n", k = 0;
  for (const m of Object.keys(params)) {
    for (const t of Object.keys(fert)) {
      const noise = 0.04 * Math.sin(12.9898 * ++k);
      const score = 0.9 - 0.1 * fert[t]! + 0.0002 * params[m]! + 0.05 * (latin.has(t) ? 1 : 0);
      csv += `${m},en,${t},ner,${score + noise}\n`;
    }
  }
  await Deno.writeTextFile(`${tmp}/results.csv`, csv);
  await Deno.writeTextFile(
    `${tmp}/tok.csv`,
    "language,fertility\n" + Object.entries(fert).map(([l, f]) => `${l},${f}`).join("\n") + "\n",
  );
  await Deno.writeTextFile(
    `${tmp}/size.csv`,
    "model,params\n" + Object.entries(params).map(([m, p]) => `${m},${p}`).join("\n") + "\n",
  );
}

/** Every script that writes report.html. */
export const RUNS: readonly ReportRun[] = [
  {
    name: "ambiguity",
    script: "ambiguity_eval.ts",
    args: () => ["rescore"],
    needs: [`${SHARED}/ambiguity`],
  },
  {
    name: "lgreco",
    script: "lgreco.ts",
    args: () => [
      ...["--families", "quantize,powersgd", "--steps", "10", "--batch", "1", "--context", "32"],
      ...["--warmup", "3", "--adjust-freq", "3", "--acc-iter", "2", "--eval-windows", "2"],
    ],
  },
  {
    name: "qsdp",
    script: "qsdp.ts",
    args: () => [
      ...["--grid", "W8G8,W4G4", "--layers", "1", "--hidden", "64", "--intermediate", "128"],
      ...["--tokens", "2048", "--batch", "2", "--context", "64", "--lr", "1e-2"],
      ...["--eval-windows", "2"],
    ],
  },
  {
    name: "quantize",
    script: "quantize.ts",
    args: () => [
      ...["--methods", "rtn,gptq", "--bits", "4,3", "--groups", "64"],
      ...["--calib-windows", "2", "--context", "64", "--names", "down_proj,o_proj"],
    ],
  },
  {
    name: "quik",
    script: "quik.ts",
    args: () => [
      ...["--calib-windows", "2", "--context", "64", "--outlier-sweep", "0", "--no-clip"],
    ],
  },
  {
    name: "sparse_expand",
    script: "sparse_expand.ts",
    args: () => [
      ...["--methods", "magnitude,expand", "--experts", "2", "--sparsities", "0.5,0.7"],
      ...["--calib-windows", "1", "--restarts", "1"],
    ],
  },
  {
    name: "tokenizer_stats",
    script: "tokenizer_stats.ts",
    args: () => [
      ...["--languages", "en,de,zh,th,ar,ru", "--tokenizers", "bytes,chars,cl100k,llama3"],
      ...["--limit", "20"],
    ],
  },
  {
    name: "toxic_spans",
    script: "toxic_spans.ts",
    args: () => ["--quick"],
    needs: [`${SHARED}/toxic_spans`],
  },
  {
    name: "toxicity_stats",
    script: "toxicity_stats.ts",
    prepare: async (tmp) => {
      await Deno.writeTextFile(
        `${tmp}/events.csv`,
        "event,date,language\nnew year,2021-01-20,\nderby,2021-02-01,de\n",
      );
      await Deno.writeTextFile(
        `${tmp}/topics.csv`,
        "community,topic\nnews,news\npics,images\npolitics,politics\n",
      );
    },
    args: (tmp) => [
      ...["--input", `${FIX}comments.jsonl.zst`, "--language-field", "lang"],
      ...["--languages", "en,de,tr", "--events", `${tmp}/events.csv`],
      ...["--topics", `${tmp}/topics.csv`, "--min-topic-comments", "5", "--bootstrap", "50"],
    ],
  },
  {
    name: "train",
    script: "train.ts",
    args: () => [
      ...["--from-scratch", "--layers=2", "--hidden=32", "--heads=4", "--kv-heads=2"],
      ...["--intermediate=48", "--context=48", "--batch=3", "--steps=14", "--lr=3e-3"],
      ...["--eval-every=5", "--eval-windows=2"],
    ],
  },
  {
    name: "transfer_factors",
    script: "transfer_factors.ts",
    prepare: transferInputs,
    args: (tmp) => [
      ...["--results", `${tmp}/results.csv`, "--factor-tables", `${tmp}/tok.csv,${tmp}/size.csv`],
      ...["--factors", "fertility,params,script_match", "--bootstrap", "200"],
    ],
  },
  {
    name: "truth_probes",
    script: "truth_probes.ts",
    args: (tmp) => [
      ...["--items", "24", "--methods", "lr,mmp,ccr,lm", "--edit-layers", "3-4"],
      ...["--compress", "none", "--cache", `${tmp}/tp-cache`],
    ],
    needs: [`${SHARED}/truth_probes/geometry_of_truth/cities.csv`],
  },
  {
    name: "wasserstein",
    script: "wasserstein_neurons.ts",
    args: () => [
      ...["--calib-windows", "2", "--random-draws", "2", "--heldout", "4", "--experts", "2"],
      ...["--method", "magnitude"],
    ],
  },
];

/** Runs one script into `${tmp}/${run.name}`; returns its exit code, stderr and seconds. */
export async function runReport(
  run: ReportRun,
  tmp: string,
): Promise<{ code: number; stderr: string; seconds: number; dir: string }> {
  const dir = `${tmp}/${run.name}`;
  await run.prepare?.(tmp);
  const t0 = performance.now();
  const o = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--no-prompt",
      "--allow-read",
      `--allow-write=${tmp}`,
      "--allow-ffi=ffi/build",
      "--allow-env=LMKIT_BACKEND",
      `scripts/${run.script}`,
      ...run.args(tmp),
      "--out",
      dir,
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  return {
    code: o.code,
    stderr: new TextDecoder().decode(o.stderr),
    seconds: (performance.now() - t0) / 1000,
    dir,
  };
}
