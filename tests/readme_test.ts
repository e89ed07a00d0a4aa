// The README's examples, run as written: every ```ts block runs; every command in its ```sh blocks
// is listed here as run (in this test), long (run with LMKIT_README_LONG=1: `deno task test-readme-long`), or
// skipped with the reason and the test that covers it instead. A new example that is not listed
// fails the first test. Each run must exit 0; what the runs write under out/ is removed after.
import { assert, assertEquals } from "@std/assert";

const ROOT = new URL("../", import.meta.url).pathname;
const README = Deno.readTextFileSync(`${ROOT}README.md`);

/** Each command of the README's ```sh blocks: continuation lines joined, comments dropped. */
function examples(): string[] {
  const out: string[] = [];
  for (const block of README.matchAll(/^```sh\n([\s\S]*?)^```/gm)) {
    let cur = "";
    for (const raw of block[1]!.split("\n")) {
      const line = raw.replace(/\s+#\s.*$/, "").trimEnd(); // a trailing comment
      if (line.trim() === "") continue;
      if (line.endsWith("\\")) {
        cur += line.slice(0, -1).trim() + " ";
        continue;
      }
      out.push((cur + line.trim()).replace(/\s+/g, " "));
      cur = "";
    }
  }
  return out;
}

type How =
  | { mode: "run"; paths?: string[]; before?: () => Promise<void> }
  | { mode: "long"; paths?: string[]; needs?: string }
  | { mode: "skip"; why: string };

// paths: fixed output folders an example writes (removed after, and refused when already there)
const HOW: Record<string, How> = {
  "npx -y deno@2.9.6 task demo": { mode: "skip", why: "the set-up command; CI runs it" },
  "npx -y deno@2.9.6 task test": { mode: "skip", why: "the test command itself" },
  'deno task generate -- --prompt "Die Stadt Paris" --max-new-tokens 40 --temperature 0.8 --seed 1':
    { mode: "run" },
  "deno task perplexity": { mode: "run" },
  "deno task perplexity -- --jsonl data/multilingual_text/ud_pud/pud_de.jsonl --field text --max-windows 64":
    { mode: "run" },
  "deno task wasserstein": { mode: "long" },
  "deno task wasserstein -- --no-ablation --calib-windows 16": { mode: "long" },
  "deno task sparse-expand -- --nm 2:4 --experts 2,4,8": { mode: "long" },
  "deno task sparse-expand -- --methods sparsegpt,expand --experts 8 --seed 0,1,2": {
    mode: "long",
  },
  "deno task ambiguity -- rescore": { mode: "run" },
  "deno run --no-prompt --allow-read --allow-write=out --allow-net=127.0.0.1:8000 scripts/ambiguity_eval.ts live --base-url http://127.0.0.1:8000/v1 --model my-model":
    {
      mode: "skip",
      why:
        "needs a chat-completions server; tests/ambiguity/scripts_test.ts runs live mode against a local one",
    },
  "deno task ambiguity-fragment -- --definition ../shared/data/ambiguity/exploiting_ambiguity/definitions/P6_P19.yaml --results P6_P19.json --sample 100":
    {
      mode: "skip",
      why:
        "needs a query result saved from query.wikidata.org (no network here); tests/ambiguity/fragment_test.ts builds items from saved results",
    },
  "deno task tokenizer-stats": { mode: "run" },
  "deno task tokenizer-stats -- --tokenizers llama3 --out out/tok-llama3": {
    mode: "run",
    paths: ["out/tok-llama3"],
  },
  "deno task transfer-factors -- --results my_results.csv --factor-tables out/tok-llama3/stats.csv --factors fertility,script_match":
    { mode: "run", paths: ["my_results.csv"], before: writeMyResults },
  "deno task toxic-spans": { mode: "run" },
  "deno task toxicity-stats -- --input tests/toxicity/fixtures/comments.jsonl.zst --language-field lang --bootstrap 200":
    { mode: "run" },
  "deno task quantize": { mode: "long" },
  "deno task quantize -- --methods gptq --bits 4 --groups 128 --act-order on --save out/q4 --format gptq":
    { mode: "long", paths: ["out/q4"] },
  "deno task quantize -- --methods gptq --bits 4 --groups 64 --nm 2:4": { mode: "long" },
  "deno task bench-gptq": { mode: "skip", why: "a benchmark (deno task bench-*), run by hand" },
  "deno task quik": { mode: "long" },
  "deno task quik -- --save out/quik4b": { mode: "long", paths: ["out/quik4b"] },
  "deno task bench-quik": { mode: "skip", why: "a benchmark (deno task bench-*), run by hand" },
  "deno task train": { mode: "long" },
  "deno task train -- --steps 200 --checkpoint out/run1": { mode: "long", paths: ["out/run1"] },
  "deno task train -- --resume out/run1": { mode: "long" },
  "deno task train -- --from-scratch --layers 4 --hidden 128 --steps 500 --save out/my-model": {
    mode: "long",
    paths: ["out/my-model"],
  },
  "mpirun -np 2 deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build scripts/train.ts --dist mpi --batch 4":
    { mode: "long", needs: "mpirun" },
  "OMP_NUM_THREADS=1 mpirun -x OMP_NUM_THREADS -np 2 …": {
    mode: "skip",
    why: "an elision of the command above",
  },
  "deno task lgreco": { mode: "long" },
  "mpirun -np 2 deno run --no-prompt --allow-read --allow-write=out --allow-ffi=ffi/build scripts/lgreco.ts --dist mpi":
    { mode: "long", needs: "mpirun" },
  "deno task truth-probes": { mode: "long" },
  "deno task truth-probes -- --methods lr,mmp,ccr,ccs,ummp,lm --edit-layers 2-4 --compress none": {
    mode: "long",
  },
  "deno task truth-probes -- --compress sparsegpt-50,expand-50,expand-2:4x8": { mode: "long" },
};

/** A results table of the shape transfer_factors.ts reads, for the example's my_results.csv. */
async function writeMyResults(): Promise<void> {
  // the score of transfer from English into each PUD language, made from llama3's fertility on
  // it and a fixed per-language term, so that the regression has something to find
  const langs = ["ar", "de", "es", "hi", "ko", "ru", "th", "tr", "zh"];
  const stats = (await Deno.readTextFile(`${ROOT}out/tok-llama3/stats.csv`)).trim().split("\n");
  const head = stats[0]!.split(",");
  const col = (n: string) => head.indexOf(n);
  const fert = new Map<string, number>();
  for (const line of stats.slice(1)) {
    const c = line.split(",");
    if (c[col("form")] === "native") fert.set(c[col("language")]!, Number(c[col("fertility")]));
  }
  const rows = langs.flatMap((l, i) =>
    ["m1", "m2"].map((m, k) =>
      `${m},en,${l},llama3,native,${
        (0.9 - 0.15 * fert.get(l)! + 0.01 * ((i * 7 + k * 3) % 5)).toFixed(4)
      }`
    )
  );
  const head2 = "model,source,target,tokenizer,form,score";
  await Deno.writeTextFile(`${ROOT}my_results.csv`, [head2, ...rows].join("\n") + "\n");
}

/** The entries under out/ (two levels), to remove what the examples add. */
function outEntries(): Set<string> {
  const seen = new Set<string>();
  try {
    for (const a of Deno.readDirSync(`${ROOT}out`)) {
      seen.add(`out/${a.name}`);
      if (!a.isDirectory) continue;
      for (const b of Deno.readDirSync(`${ROOT}out/${a.name}`)) seen.add(`out/${a.name}/${b.name}`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return seen;
}

const before = outEntries();
// the fixed paths examples write, as they were before this test: never removed when already there
const preexisting = new Set(
  Object.values(HOW).flatMap((h) => ("paths" in h ? h.paths ?? [] : [])).filter((p) =>
    existsSync(`${ROOT}${p}`)
  ),
);
const all = examples();
const long = Deno.env.get("LMKIT_README_LONG") === "1";
const hasMpirun = new Deno.Command("sh", { args: ["-c", "command -v mpirun"] }).outputSync()
  .success;

Deno.test("every example in the README is run here, or skipped with a reason", () => {
  assert(all.length >= 20, `found only ${all.length} examples`);
  const unlisted = all.filter((c) => !(c in HOW));
  assertEquals(unlisted, [], "README examples not listed in tests/readme_test.ts");
  const stale = Object.keys(HOW).filter((c) => !all.includes(c));
  assertEquals(stale, [], "examples listed here that the README no longer has");
});

for (const cmd of all) {
  const how = HOW[cmd];
  if (!how || how.mode === "skip") continue;
  const needs = how.mode === "long" ? how.needs : undefined;
  // a fixed path the example writes that is already there is the user's: leave it, skip the example
  const taken = (how.paths ?? []).filter((p) => existsSync(`${ROOT}${p}`));
  Deno.test({
    name: `README: ${cmd}${taken.length ? ` (skipped: ${taken.join(", ")} already there)` : ""}`,
    ignore: (how.mode === "long" && !long) || (needs === "mpirun" && !hasMpirun) ||
      taken.length > 0,
    async fn() {
      if (how.mode === "run") await how.before?.();
      const bin = Deno.execPath().replace(/\/[^/]+$/, "");
      const r = await new Deno.Command("bash", {
        args: ["-c", cmd],
        cwd: ROOT,
        stdin: "null",
        env: { PATH: `${bin}:${Deno.env.get("PATH") ?? ""}`, NO_COLOR: "1" },
      }).output();
      const err = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, 0, `${cmd}\n${err.slice(-2000)}`);
      assert(!/^warning: lmkit's native kernels are not loaded/m.test(err), err);
    },
  });
}

// the TypeScript examples: each ```ts block runs, type-checked, from the repository root
const tsBlocks = [...README.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]!);
Deno.test("the README has TypeScript examples", () => assert(tsBlocks.length >= 2));
tsBlocks.forEach((code, i) => {
  const first = code.split("\n").find((l) => /^[a-z]/.test(l) && !l.startsWith("import")) ?? "";
  Deno.test(`README TypeScript example ${i + 1}: ${first.slice(0, 60)}`, async () => {
    const file = `${ROOT}.readme-example-${Deno.pid}-${i}.ts`;
    await Deno.writeTextFile(file, code);
    try {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--check",
          "--no-prompt",
          "--allow-read",
          "--allow-ffi=ffi/build",
          "--allow-env=LMKIT_BACKEND",
          file,
        ],
        cwd: ROOT,
        stdin: "null",
        env: { NO_COLOR: "1" },
      }).output();
      const err = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, 0, `example ${i + 1}:\n${code}\n${err.slice(-2000)}`);
    } finally {
      await Deno.remove(file);
    }
  });
});

Deno.test("README examples: what they wrote is removed", async () => {
  const fixed = Object.values(HOW).flatMap((h) => ("paths" in h ? h.paths ?? [] : []));
  for (const p of [...outEntries(), ...fixed]) {
    if (before.has(p) || preexisting.has(p)) continue;
    await Deno.remove(`${ROOT}${p}`, { recursive: true }).catch(() => {});
  }
  for (const p of fixed) assert(preexisting.has(p) || !(await exists(`${ROOT}${p}`)), p);
});

function existsSync(p: string): boolean {
  try {
    Deno.lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

async function exists(p: string): Promise<boolean> {
  try {
    await Deno.lstat(p);
    return true;
  } catch {
    return false;
  }
}
