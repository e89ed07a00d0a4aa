import { assertAlmostEquals, assertEquals, assertNotEquals, assertThrows } from "@std/assert";
import { Matrix } from "../../lib/core/matrix.ts";
import { intFlag, numFlag } from "../../lib/core/args.ts";
import { Rng } from "../../lib/core/rng.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { progress } from "../../lib/core/progress.ts";
import { writeOutputs } from "../../lib/io/output.ts";
import { assertClose } from "../../lib/std/assert.ts";

Deno.test("Rng: the same seed gives the same stream; golden values pin it across machines", () => {
  const a = new Rng(2024), b = new Rng(2024);
  const xs = Array.from({ length: 100 }, () => a.nextUint32());
  assertEquals(xs, Array.from({ length: 100 }, () => b.nextUint32()));
  assertNotEquals(xs, Array.from({ length: 100 }, () => new Rng(2025).nextUint32()));
  // 32-bit integer arithmetic only: these values are the same on every machine and runtime
  const g = new Rng(42);
  assertEquals([g.nextUint32(), g.nextUint32(), g.nextUint32()], GOLDEN_42);
  assertThrows(() => new Rng(1.5), TypeError);
});

// First three outputs of new Rng(42), computed independently by a Python transcription of
// splitmix32 seeding + xoshiro128** (arbitrary-precision integers masked to 32 bits).
const GOLDEN_42 = [2837322924, 544945897, 479756282];

Deno.test("Rng: uniform in [0,1), normal has mean 0 and variance 1, int in range", () => {
  const r = new Rng(9);
  const n = 200000;
  let s = 0, s2 = 0, lo = 1, hi = 0;
  for (let i = 0; i < n; i++) {
    const u = r.uniform();
    lo = Math.min(lo, u);
    hi = Math.max(hi, u);
    const z = r.normal();
    s += z;
    s2 += z * z;
  }
  if (!(lo >= 0 && hi < 1)) throw new Error(`uniform out of range: [${lo}, ${hi}]`);
  assertAlmostEquals(s / n, 0, 0.01); // 4.5 standard errors
  assertAlmostEquals(s2 / n, 1, 0.015);
  const counts = new Array(7).fill(0);
  for (let i = 0; i < 70000; i++) counts[r.int(7)]++;
  for (const c of counts) assertAlmostEquals(c, 10000, 500);
  assertThrows(() => r.int(0), RangeError);
});

Deno.test("Matrix: shape checks, views, transpose and precision copies", () => {
  const m = Matrix.from([[1, 2, 3], [4, 5, 6]]);
  assertEquals(m.shape, [2, 3]);
  assertEquals(Array.from(m.row(1)), [4, 5, 6]);
  m.row(1)[0] = 9; // a view
  assertEquals(m.get(1, 0), 9);
  assertEquals(Array.from(m.transpose().data), [1, 9, 2, 5, 3, 6]);
  assertEquals(m.toF64().dtype, "f64");
  assertEquals(m.toF64().toF32().dtype, "f32");
  assertThrows(() => new Matrix(2, 2, new Float32Array(3)), ShapeError, "expected 4");
  assertThrows(() => Matrix.from([[1, 2], [3]]), ShapeError, "row 1 has 1 values, expected 2");
  assertThrows(() => Matrix.zeros(-1, 2), ShapeError);
  assertEquals(Matrix.zeros(0, 5).data.length, 0);
});

Deno.test("progress is silent when disabled; writeOutputs leaves no partial files", async () => {
  const bar = progress("x", 10, { enabled: false });
  bar.tick(3);
  bar.stop();
  const dir = await Deno.makeTempDir();
  await writeOutputs(dir, { "a.txt": "A", "b.bin": new Uint8Array([1]) });
  assertEquals(await Deno.readTextFile(`${dir}/a.txt`), "A");
  await Deno.remove(`${dir}/a.txt`);
  let failed = false;
  try {
    await writeOutputs(dir, { "a.txt": "A", "../escape": "x" });
  } catch (e) {
    failed = e instanceof RangeError;
  }
  assertEquals(failed, true);
  const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assertEquals(left, ["b.bin"]); // neither a.txt nor a temporary file
  await Deno.remove(dir, { recursive: true });
});

Deno.test("assertClose: passes within the bound, names the context of a failure", () => {
  assertClose([1, 2], [1, 2 + 1e-7]);
  assertThrows(
    () => assertClose([1, 2], [1, 3], { msg: "seed 7 4×4" }),
    Error,
    "seed 7 4×4: Arrays differ",
  );
  assertThrows(() => assertClose([1], [1, 2], { msg: "ts" }), Error, "ts: Length mismatch");
  assertThrows(() => assertClose([NaN], [1]), Error, "NaN mismatch at 0");
});

Deno.test("intFlag and numFlag: values in range parse; others name the flag, the value and the range", () => {
  assertEquals(intFlag("--n", " 12 ", 1), 12);
  assertEquals(intFlag("--seed", "-3"), -3);
  assertEquals(numFlag("--p", "0.25", 0, 1), 0.25);
  const cases: [() => number, string][] = [
    [() => intFlag("--seed", "x"), "--seed 'x' is not an integer"],
    [() => intFlag("--n", "0", 1), "--n '0' is not an integer ≥ 1"],
    [() => intFlag("--n", "2.5", 1, 9), "--n '2.5' is not an integer in [1, 9]"],
    [() => intFlag("--k", "12", -Infinity, 10), "--k '12' is not an integer ≤ 10"],
    [() => intFlag("--n", undefined, 1), "--n 'undefined' is not an integer ≥ 1"],
    [() => numFlag("--x", "NaN"), "--x 'NaN' is not a number"],
    [() => numFlag("--x", "Infinity"), "--x 'Infinity' is not a number"],
    [() => numFlag("--p", "1.5", 0, 1), "--p '1.5' is not a number in [0, 1]"],
    [() => numFlag("--t", "", 0), "--t '' is not a number ≥ 0"],
  ];
  for (const [f, msg] of cases) {
    const e = assertThrows(f, RangeError);
    assertEquals(e.message, msg);
  }
});
