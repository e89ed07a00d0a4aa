// The library as a package: a script in a folder of its own, with no deno.json (so without
// lmkit's import map and lock), imports the root module and area modules by file:// URL and
// computes real results; deno.json's exports name one module per area; no module that is
// published uses a bare specifier that only the import map resolves.
import { assert, assertAlmostEquals, assertEquals } from "@std/assert";
import { runDeno } from "./_util.ts";

const ROOT_URL = new URL("../", import.meta.url);
const ROOT = ROOT_URL.pathname.replace(/\/$/, "");

const AREAS = [
  "ambiguity",
  "comm",
  "core",
  "crosslingual",
  "io",
  "kernels",
  "model",
  "probes",
  "quant",
  "report",
  "sparse",
  "stats",
  "toxicity",
  "train",
  "wasserstein",
];

Deno.test("deno.json exports the root module and one module per area", () => {
  const config = JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`));
  const expected: Record<string, string> = { ".": "./mod.ts" };
  for (const a of AREAS) expected[`./${a}`] = `./lib/${a}/mod.ts`;
  assertEquals(config.exports, expected);
  for (const path of Object.values(expected)) Deno.statSync(`${ROOT}/${path}`);
  // every area folder with a mod.ts is exported (lib/std is the import map's stand-in for @std)
  const withMod = [...Deno.readDirSync(`${ROOT}/lib`)]
    .filter((e) => e.isDirectory && e.name !== "std")
    .filter((e) => {
      try {
        return Deno.statSync(`${ROOT}/lib/${e.name}/mod.ts`).isFile;
      } catch {
        return false;
      }
    })
    .map((e) => e.name)
    .sort();
  assertEquals(withMod, AREAS);
});

/** Every static or dynamic import specifier of a module's code (comments skipped). */
function specifiers(source: string): string[] {
  const code = source.split("\n").filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l)).join("\n");
  const re = /(?:\bfrom[ \t]*|\bimport[ \t]*\([ \t]*|^[ \t]*import[ \t]+)"([^"\n]+)"/gm;
  return [...code.matchAll(re)].map((m) => m[1]!);
}

Deno.test("published modules import only relative paths and npm:/node: specifiers", () => {
  const files = ["mod.ts", "ffi/mod.ts", "ffi/mpi/mod.ts"];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory && p !== "lib/std") walk(p);
      else if (e.isFile && e.name.endsWith(".ts")) files.push(p);
    }
  };
  walk("lib");
  const bare: string[] = [];
  for (const f of files) {
    for (const s of specifiers(Deno.readTextFileSync(`${ROOT}/${f}`))) {
      if (!/^(\.\.?\/|npm:|node:|jsr:)/.test(s)) bare.push(`${f}: ${s}`);
      // a version range would resolve without the lock to whatever the cached registry data says
      else if (s.startsWith("npm:") && !/^npm:(@[^/@]+\/)?[^/@]+@\d+\.\d+\.\d+(\/|$)/.test(s)) {
        bare.push(`${f}: ${s} (pin the version in deno.lock)`);
      }
    }
  }
  assertEquals(bare, []);
});

Deno.test("a script outside the repository imports lmkit by file:// URL with no config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "lmkit-package-" });
  try {
    assert(!dir.startsWith(`${ROOT}/`), dir);
    const golden = JSON.parse(
      await Deno.readTextFile(`${ROOT}/data/models/tinyllama-bytes/golden.json`),
    );
    const prompt = golden.prompts[0] as { input_ids: number[]; last_logits: number[] };
    await Deno.writeTextFile(`${dir}/scores.csv`, "model,score\na,0.5\nb,0.25\n");
    const at = (p: string) => new URL(p, ROOT_URL).href;
    await Deno.writeTextFile(
      `${dir}/use_lmkit.ts`,
      `import { LlamaModel, Matrix, matmul, wasserstein1 } from "${at("mod.ts")}";
import { readCsv } from "${at("lib/io/mod.ts")}";
import { fitFactors } from "${at("lib/crosslingual/mod.ts")}";
import { LexiconMatcher, ldnoobw } from "${at("lib/toxicity/mod.ts")}";
import { spearman } from "${at("lib/stats/mod.ts")}";
const model = await LlamaModel.load(${JSON.stringify(`${ROOT}/data/models/tinyllama-bytes`)}, {
  backend: "ts",
});
const ids = ${JSON.stringify(prompt.input_ids)};
const logits = model.forward(ids);
const rows = await Array.fromAsync(readCsv("scores.csv"));
const x1 = [1, 2, 3, 4, 5], x2 = [1, -1, 1, -1, 0];
const fit = fitFactors(x1.map((v, i) => 2 + 3 * v - x2[i]!), [x1, x2], ["a", "b"]);
const lexicon = ldnoobw("en");
const matcher = new LexiconMatcher(lexicon.entries.map((e) => e.term), { language: "en" });
console.log(JSON.stringify({
  shape: [logits.rows, logits.cols],
  last: Array.from(logits.data.subarray((logits.rows - 1) * logits.cols)),
  w1: wasserstein1([0, 1, 3], [5, 6, 8]),
  product: matmul(Matrix.from([[1, 2]]), Matrix.from([[3], [4]]), { backend: "ts" }).get(0, 0),
  csv: rows.map((r) => r.record.score),
  coefficients: fit.coefficients,
  r2: fit.r2,
  lexiconSize: lexicon.entries.length,
  hits: matcher.matches("what the fuck is this", "word").length,
  rho: spearman([1, 2, 3, 4], [10, 20, 30, 40]).rho,
}));
`,
    );
    // --no-config: no import map, no lock, npm packages from Deno's global cache (no
    // node_modules); --cached-only: nothing is fetched, so it runs offline
    const r = await runDeno(
      [
        "run",
        "--no-config",
        "--cached-only",
        "--no-prompt",
        `--allow-read=${ROOT},${dir}`,
        "use_lmkit.ts",
      ],
      { cwd: dir },
    );
    assertEquals(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assertEquals(out.shape, [prompt.input_ids.length, 258]);
    const ref = prompt.last_logits;
    let maxDiff = 0;
    for (let i = 0; i < ref.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(out.last[i] - ref[i]!));
    }
    assert(maxDiff < 1e-3, `last-position logits differ from golden.json by ${maxDiff}`);
    assertEquals(out.w1, 5); // a shift by 5 moves every unit of mass 5
    assertEquals(out.product, 11);
    assertEquals(out.csv, ["0.5", "0.25"]);
    assert(out.lexiconSize > 100, `${out.lexiconSize}`);
    assertEquals(out.hits, 1);
    assertAlmostEquals(out.rho, 1, 1e-12);
    // an exact linear relation: the least-squares fit (QR through ml-matrix) recovers it
    assertAlmostEquals(out.coefficients[0], 3, 1e-9);
    assertAlmostEquals(out.coefficients[1], -1, 1e-9);
    assertAlmostEquals(out.r2, 1, 1e-12);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
