// toxicity_stats across ranks (`--dist mpi`). Without MPI: the split of the input (whole files,
// byte ranges at line boundaries, compressed files whole, ranks in input order) and the
// byte-range reader at every cut of a small file (the line that crosses a cut is read once, by
// the rank where it starts; line numbers add up). With real `mpirun --oversubscribe -np 2` and
// `-np 3` worlds of the script (2 cores here): on 12,000 comments of real texts plus the zstd and
// gzip fixtures, every output file equals the single-process run's byte for byte (the report's
// `Run:` line and summary.json's `seconds` and `dist` excepted); a bad row on rank 2 is reported
// by rank 0 with its line in the file, and of two bad rows on ranks 1 and 2 the first; with
// --skip-bad-rows the counts (and their order) match. The mpirun tests are skipped, with one
// printed reason, where mpirun or ffi/build/liblmkit_mpi.so is missing.
import { assert, assertEquals } from "@std/assert";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { type Comment, readComments } from "../../lib/toxicity/comments.ts";
import {
  type InputFile,
  type Piece,
  planPieces,
  readPiece,
  splittable,
} from "../../lib/toxicity/dist.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed, type MpiRun, mpirunDeno, mpirunMissing } from "../_util.ts";
import { DAY0, realCommentLines } from "./_real_comments.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const FIX = `${ROOT}tests/toxicity/fixtures/`;
const FIELDS = {
  text: "body",
  time: "created_utc",
  community: "subreddit",
  language: "lang",
  id: "id",
  parent: "parent_id",
};

// ---- the split ----

function checkPlan(files: InputFile[], ranks: number): Piece[][] {
  const plan = planPieces(files, ranks);
  assertEquals(plan.length, ranks);
  const all = plan.flat();
  // ranks hold consecutive runs, in input order
  assertEquals(all.map((p) => p.index), all.map((_, i) => i));
  files.forEach((f, i) => {
    const mine = all.filter((p) => p.file === i);
    if (!splittable(f.path)) {
      assertEquals(mine.length, 1, f.path);
      assert(mine[0]!.whole && mine[0]!.start === 0 && mine[0]!.end === f.size);
      return;
    }
    if (f.size === 0) return assertEquals(mine.length, 0);
    // the ranges tile the file
    assertEquals(mine[0]!.start, 0);
    assertEquals(mine.at(-1)!.end, f.size);
    for (let k = 1; k < mine.length; k++) assertEquals(mine[k]!.start, mine[k - 1]!.end);
    assertEquals(mine.length === 1, mine[0]!.whole);
  });
  return plan;
}

Deno.test("the split: consecutive runs of about equal weight; JSON lines cut, compressed and CSV files whole", () => {
  const files = [
    { path: "a.jsonl", size: 900 },
    { path: "b.jsonl.gz", size: 60 }, // weight 300
    { path: "c.csv", size: 100 },
    { path: "d.ndjson", size: 0 },
    { path: "e.json", size: 1700 },
    { path: "f.jsonl.zst", size: 10 }, // weight 100
  ];
  for (let ranks = 1; ranks <= 7; ranks++) checkPlan(files, ranks);
  const three = checkPlan(files, 3);
  // weights 900 | 300 | 100 | 0 | 1700 | 100 = 3100: bounds 1033 and 2066
  // (b's middle 1050 and c's 1250 lie in rank 1's share)
  assertEquals(three.map((r) => r.map((p) => [p.path, p.start, p.end])), [
    [["a.jsonl", 0, 900]],
    [["b.jsonl.gz", 0, 60], ["c.csv", 0, 100], ["e.json", 0, 766]],
    [["e.json", 766, 1700], ["f.jsonl.zst", 0, 10]],
  ]);
  const rng = new Rng(freshSeed());
  for (let t = 0; t < 200; t++) {
    const exts = [".jsonl", ".jsonl.gz", ".csv", ".tsv.gz", ".json", ".jsonl.zst"];
    const fs = Array.from({ length: 1 + rng.int(6) }, (_, i) => ({
      path: `f${i}${exts[rng.int(exts.length)]}`,
      size: rng.int(4) === 0 ? rng.int(3) : rng.int(100_000),
    }));
    checkPlan(fs, 1 + rng.int(8));
  }
  assertEquals(planPieces([{ path: "one.jsonl", size: 10 }], 4)[3]!.length, 1);
});

/** Every comment of `pieces` (one file), with its line in the file. */
async function readAll(pieces: Piece[]): Promise<Comment[]> {
  const out: Comment[] = [];
  let before = 0;
  for (const p of pieces) {
    const lines = { count: 0 };
    for await (const c of readPiece(p, FIELDS, { lines })) {
      out.push({ ...c, line: c.line + before });
    }
    before += lines.count;
  }
  return out;
}

Deno.test("byte ranges at every cut of a file: each line read once, by the range where it starts, numbered as in the file", async () => {
  const dir = await Deno.makeTempDir();
  const line = (i: number, body = `comment ${i}`) =>
    JSON.stringify({ id: `c${i}`, body, created_utc: 1609459200 + i, lang: "en" });
  const text = [
    line(0),
    "",
    line(1) + "\r",
    line(2, "ünïcödé 😀 " + "long ".repeat(40)),
    "   ",
    line(3),
    line(4, "x"),
    "",
    "",
    line(5),
  ].join("\n"); // the last line has no newline
  for (const [name, body] of [["a.jsonl", text], ["b.jsonl", text + "\n"]] as const) {
    const path = `${dir}/${name}`;
    await Deno.writeTextFile(path, body);
    const size = (await Deno.stat(path)).size;
    const want = await Array.fromAsync(readComments(path, FIELDS));
    assertEquals(want.map((c) => c.line), [1, 3, 4, 6, 7, 10]);
    const piece = (start: number, end: number, index: number): Piece => ({
      index,
      file: 0,
      path,
      start,
      end,
      whole: false,
    });
    const bytes = await Deno.readFile(path);
    let crossed = 0;
    for (let cut = 0; cut <= size; cut++) {
      const got = await readAll([piece(0, cut, 0), piece(cut, size, 1)]);
      assertEquals(got, want, `cut at byte ${cut}`);
      if (cut > 0 && cut < size && bytes[cut - 1] !== 10) crossed++;
    }
    assert(crossed > size / 2);
    const rng = new Rng(freshSeed());
    for (let t = 0; t < 100; t++) {
      const cuts = [0, ...Array.from({ length: 1 + rng.int(5) }, () => rng.int(size + 1)), size]
        .sort((a, b) => a - b);
      const got = await readAll(cuts.slice(1).map((end, k) => piece(cuts[k]!, end, k)));
      assertEquals(got, want, `cuts ${cuts}`);
    }
  }
  await Deno.remove(dir, { recursive: true });
});

// ---- real mpirun worlds of the script ----

const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the toxicity_stats mpi tests: ${skip}`);

/** toxicity_stats.ts on one process (np 0: `--dist single`, no mpirun) or an mpirun world. */
function run(np: number, dir: string, args: string[]): Promise<MpiRun> {
  return mpirunDeno(np, [
    "--no-prompt",
    `--allow-read=${dir},${FIX}`,
    `--allow-write=${dir}`,
    "--allow-ffi=ffi/build",
    "scripts/toxicity_stats.ts",
    ...args,
    "--dist",
    np === 0 ? "single" : "mpi",
  ], { limitS: 120 });
}

/** The output files of a run, with the lines that describe the run itself left out. */
async function outputs(dir: string): Promise<Map<string, string>> {
  const m = new Map<string, string>();
  for await (const e of Deno.readDir(dir)) {
    let text = await Deno.readTextFile(`${dir}/${e.name}`);
    if (e.name === "summary.json") {
      const s = JSON.parse(text);
      assertEquals(text, JSON.stringify(s, null, 1) + "\n");
      assert(typeof s.seconds === "number" && typeof s.dist?.communicator === "string");
      delete s.seconds;
      delete s.dist;
      text = JSON.stringify(s, null, 1);
    }
    if (e.name.startsWith("report.")) {
      assertEquals(text.match(/^Run: .*$/gm)?.length, 1, `${e.name}: one Run: line`);
      text = text.replace(/^Run: .*$/m, "Run: …");
    }
    m.set(e.name, text);
  }
  return m;
}

async function sameOutputs(single: string, world: string, what: string): Promise<void> {
  const a = await outputs(single), b = await outputs(world);
  assertEquals([...b.keys()].sort(), [...a.keys()].sort(), what);
  for (const [name, text] of a) {
    assert(text === b.get(name), `${what}: ${name} differs from the single-process run's`);
  }
}

/** The real collection and its side files in a new folder. */
async function collection(n: number): Promise<{ dir: string; lines: string[]; languages: string }> {
  const dir = await Deno.makeTempDir({ prefix: "toxdist" });
  const { lines, languages } = await realCommentLines(n, 5);
  await Deno.writeTextFile(`${dir}/real.jsonl`, lines.join("\n") + "\n");
  const day = (k: number) => new Date((DAY0 + k) * 86400000).toISOString().slice(0, 10);
  await Deno.writeTextFile(
    `${dir}/events.csv`,
    `event,date,language\nspring,${day(20)},\nlate,${day(50)},de\nfixture,2021-01-20,\n`,
  );
  await Deno.writeTextFile(
    `${dir}/topics.csv`,
    "community,topic\n" + Array.from({ length: 40 }, (_, i) => `r${i},t${i % 7}\n`).join("") +
      "news,news\npics,images\n",
  );
  const langs = [...new Set([...languages, "en", "de", "tr"])].join(",");
  return { dir, lines, languages: langs };
}

/** The rank that reads the line starting at byte `offset` of the only input, and whether its range starts there. */
function rankOf(plan: Piece[][], offset: number): number {
  return plan.findIndex((ps) => ps.some((p) => p.start <= offset && offset < p.end));
}

Deno.test({
  name:
    "toxicity_stats --dist mpi on 2 and 3 ranks writes the single-process files byte for byte (real texts, zstd and gzip inputs, cuts inside lines)",
  ignore: !!skip,
  fn: async () => {
    const { dir, languages } = await collection(12000);
    const inputs = [`${FIX}comments.jsonl.zst`, `${dir}/real.jsonl`, `${FIX}comments.jsonl.gz`];
    const sizes = await Promise.all(
      inputs.map(async (p) => ({ path: p, size: (await Deno.stat(p)).size })),
    );
    // the cuts of real.jsonl fall inside lines; the gzip file goes whole to the last rank
    const real = await Deno.readFile(`${dir}/real.jsonl`);
    for (const np of [2, 3]) {
      const plan = planPieces(sizes, np);
      const cuts = plan.flat().filter((p) => p.file === 1 && p.start > 0);
      assertEquals(cuts.length, np - 1);
      for (const c of cuts) assert(real[c.start - 1] !== 10, `cut at ${c.start} is a line start`);
      assertEquals(plan[np - 1]!.at(-1)!.path, `${FIX}comments.jsonl.gz`);
    }
    const args = (out: string) => [
      "--input",
      inputs.join(","),
      "--language-field",
      "lang",
      "--languages",
      languages,
      "--events",
      `${dir}/events.csv`,
      "--topics",
      `${dir}/topics.csv`,
      "--min-topic-comments",
      "20",
      "--min-day-comments",
      "5",
      "--bootstrap",
      "200",
      "--out",
      `${dir}/${out}`,
    ];
    const single = await run(0, dir, args("single"));
    assertEquals(single.code, 0, single.stderr);
    for (const np of [2, 3]) {
      const t0 = performance.now();
      const w = await run(np, dir, args(`np${np}`));
      assertEquals(w.code, 0, w.stdout + w.stderr);
      await sameOutputs(`${dir}/single`, `${dir}/np${np}`, `${np} ranks`);
      // rank 0 alone reports and writes
      assertEquals(w.stdout.match(/^# Toxicity statistics$/gm)?.length, 1);
      assertEquals(w.stderr.match(/^wrote /gm)?.length, 1);
      const summary = JSON.parse(await Deno.readTextFile(`${dir}/np${np}/summary.json`));
      assert(summary.dist.communicator.startsWith(`mpi (Open MPI`), summary.dist.communicator);
      assert(summary.dist.communicator.includes(`rank 0 of ${np}`));
      assertEquals(summary.dist.ranks.length, np);
      assertEquals(
        summary.dist.ranks.reduce((s: number, r: { comments: number }) => s + r.comments, 0),
        12600,
      );
      console.log(`  ${np} ranks: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const s = JSON.parse(await Deno.readTextFile(`${dir}/single/summary.json`));
    assertEquals(s.dist.communicator, "single (rank 0 of 1)");
    assertEquals(s.comments, 12600);
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "toxicity_stats --dist mpi: a bad row on rank 2 is reported by rank 0 with its line in the file; of bad rows on ranks 1 and 2, the first",
  ignore: !!skip,
  fn: async () => {
    const { dir, lines, languages } = await collection(6000);
    // lines (0-based) in the middle of rank 1's and rank 2's ranges
    const k1 = 3000, k2 = 5000;
    const bad = (k: number) => {
      const v = JSON.parse(lines[k]!);
      v.created_utc = "later";
      return JSON.stringify(v);
    };
    const args = [
      "--input",
      `${dir}/bad.jsonl`,
      "--language-field",
      "lang",
      "--languages",
      languages,
    ];
    for (const rows of [[k2], [k1, k2]]) {
      const text = lines.map((l, k) => rows.includes(k) ? bad(k) : l);
      await Deno.writeTextFile(`${dir}/bad.jsonl`, text.join("\n") + "\n");
      const offsets: number[] = [];
      let at = 0;
      for (const l of text) {
        offsets.push(at);
        at += new TextEncoder().encode(l).length + 1;
      }
      const plan = planPieces([{ path: `${dir}/bad.jsonl`, size: at }], 3);
      assertEquals(rows.map((k) => rankOf(plan, offsets[k]!)), rows.length === 1 ? [2] : [1, 2]);
      // not the first line of its rank's range
      for (const k of rows) {
        assert(
          !plan.flat().some((p) =>
            p.start > 0 && p.start >= offsets[k - 1]! && p.start <= offsets[k]!
          ),
        );
      }
      const want = `error: '${dir}/bad.jsonl' line ${
        rows[0]! + 1
      }: timestamp "later" in field 'created_utc' is not Unix seconds or an ISO 8601 date`;
      const single = await run(0, dir, [...args, "--out", `${dir}/o1`]);
      assertEquals([single.code, single.stderr.trim()], [1, want]);
      const w = await run(3, dir, [...args, "--out", `${dir}/o3`]);
      assert(w.code !== 0);
      const errors = w.stderr.split("\n").filter((l) => l.startsWith("error: "));
      assertEquals(errors, [want], w.stderr);
      for (const o of ["o1", "o3"]) {
        assertEquals(await Deno.stat(`${dir}/${o}`).then(() => true, () => false), false);
      }
    }
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test({
  name:
    "toxicity_stats --dist mpi --skip-bad-rows: rows skipped on every rank are counted as by one process, in the same order",
  ignore: !!skip,
  fn: async () => {
    const { dir, lines, languages } = await collection(6000);
    const text = lines.map((l, k) => {
      if (k === 700) return "{oops"; // rank 0
      const v = JSON.parse(l);
      if (k === 2500) v.created_utc = "soon"; // rank 1
      if (k % 1000 === 999) v.lang = "xx"; // every rank
      if (k === 5500) delete v.body; // rank 2
      return JSON.stringify(v);
    });
    await Deno.writeTextFile(`${dir}/bad.jsonl`, text.join("\n") + "\n");
    const args = (out: string) => [
      "--input",
      `${dir}/bad.jsonl,${FIX}comments.jsonl`,
      "--language-field",
      "lang",
      "--languages",
      languages,
      "--skip-bad-rows",
      "--out",
      `${dir}/${out}`,
    ];
    const single = await run(0, dir, args("single"));
    assertEquals(single.code, 0, single.stderr);
    const w = await run(3, dir, args("np3"));
    assertEquals(w.code, 0, w.stdout + w.stderr);
    await sameOutputs(`${dir}/single`, `${dir}/np3`, "3 ranks");
    const s = JSON.parse(await Deno.readTextFile(`${dir}/np3/summary.json`));
    assertEquals(Object.entries(s.skipped), [
      ["malformed JSON", 1],
      ["unparseable timestamp", 1],
      ["no 'body' text", 1],
      ["unknown language", 6],
    ]);
    assertEquals(s.comments, 6000 + 300 - 9);
    await Deno.remove(dir, { recursive: true });
  },
});
