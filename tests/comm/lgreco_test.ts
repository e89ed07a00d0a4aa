// L-GreCo's DP against brute force and against a literal port of the authors' numpy loops on
// random small instances; its edge cases and argument checks; the schedule's state machine on a
// scripted run.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import {
  LGRECO_BUCKETS,
  lgrecoPlan,
  LgrecoSchedule,
  solveLgreco,
  uniformBudget,
} from "../../lib/comm/lgreco.ts";
import { freshSeed } from "../_util.ts";

const seed = freshSeed();

/** The authors' discretisation (lgreco_hook.py lines 545–549), written out independently. */
function buckets(err: number, budget: number, B: number): number {
  const q = Math.ceil(Math.min(err, budget + 1) / (budget / B));
  return Math.min(Math.max(q, 1), B);
}

/** Every choice of one candidate per layer. */
function* choices(L: number, C: number): Generator<number[]> {
  const x = new Array<number>(L).fill(0);
  for (;;) {
    yield [...x];
    let l = 0;
    while (l < L && ++x[l]! === C) x[l++] = 0;
    if (l === L) return;
  }
}

function sumOf(t: number[][], x: number[]): number {
  return x.reduce((s, c, l) => s + t[l]![c]!, 0);
}

/**
 * A literal port of the authors' DP (lines 555–592): first layer where `bucket > e`, the rest by
 * shifted rows with strict `<`, np.argmin's first index, back-tracking. Feasible inputs only.
 */
function authorsDp(errors: number[][], bytes: number[][], budget: number, B: number): number[] {
  const L = errors.length, C = errors[0]!.length;
  const e = errors.map((r) => r.map((x) => buckets(x, budget, B)));
  const DP = Array.from({ length: L }, () => new Array<number>(B + 1).fill(Infinity));
  const PD = Array.from({ length: L }, () => new Array<number>(B + 1).fill(-1));
  for (let b = 0; b <= B; b++) {
    for (let c = 0; c < C; c++) {
      if (b > e[0]![c]! && DP[0]![b]! > bytes[0]![c]!) {
        PD[0]![b] = c;
        DP[0]![b] = bytes[0]![c]!;
      }
    }
  }
  for (let l = 1; l < L; l++) {
    for (let c = 0; c < C; c++) {
      const ec = e[l]![c]!;
      for (let b = ec; b <= B; b++) {
        const tmp = DP[l - 1]![b - ec]! + bytes[l]![c]!;
        if (tmp < DP[l]![b]!) {
          DP[l]![b] = tmp;
          PD[l]![b] = c;
        }
      }
    }
  }
  const last = DP[L - 1]!;
  let b = 0;
  for (let i = 1; i <= B; i++) if (last[i]! < last[b]!) b = i;
  const out: number[] = [];
  for (let l = L - 1; l >= 0; l--) {
    out.push(PD[l]![b]!);
    b -= e[l]![PD[l]![b]!]!;
  }
  return out.reverse();
}

function randomInstance(rng: Rng): { errors: number[][]; bytes: number[][] } {
  const L = 1 + rng.int(6), C = 1 + rng.int(4), coarse = rng.uniform() < 0.4;
  const errors: number[][] = [], bytes: number[][] = [];
  for (let l = 0; l < L; l++) {
    // coarse values repeat (ties); sometimes a zero error or an inadmissible Infinity
    errors.push(Array.from({ length: C }, () => {
      const u = rng.uniform();
      return u < 0.08 ? 0 : u < 0.1 ? Infinity : coarse ? rng.int(5) * 0.5 : rng.uniform() * 3;
    }));
    bytes.push(Array.from({ length: C }, () => rng.int(coarse ? 6 : 1000)));
  }
  return { errors, bytes };
}

Deno.test(`lgreco: the DP is the brute-force optimum and the authors' choice (seed ${seed})`, () => {
  const rng = new Rng(seed);
  let feasible = 0, infeasible = 0;
  for (let trial = 0; trial < 600; trial++) {
    const { errors, bytes } = randomInstance(rng);
    const L = errors.length, C = errors[0]!.length;
    const B = [1, 2, 7, 50, 333, LGRECO_BUCKETS][rng.int(6)]!;
    const finite = errors.flat().filter((x) => x < Infinity);
    const budget = rng.uniform() < 0.5 && finite.length
      ? (0.2 + 2 * rng.uniform()) * Math.max(...finite) * L / 2
      : rng.uniform() * 4 * L;
    const s = solveLgreco(errors, bytes, budget, { buckets: B });
    const at = `trial ${trial}: L=${L} C=${C} B=${B} budget=${budget}`;
    let best = Infinity, bestBuckets = Infinity, bestTrue = Infinity, bestShrunk = Infinity;
    for (const x of choices(L, C)) {
      const size = sumOf(bytes, x), err = sumOf(errors, x);
      // budget 0 admits zero errors only (the authors divide by zero there)
      const used = budget === 0
        ? 0
        : x.reduce((t, c, l) => t + buckets(errors[l]![c]!, budget, B), 0);
      if (
        (budget === 0 ? err === 0 : used <= B - 1) &&
        (size < best || (size === best && used < bestBuckets))
      ) {
        best = size;
        bestBuckets = used;
      }
      if (err <= budget) bestTrue = Math.min(bestTrue, size);
      if (err <= budget * (1 - L / B)) bestShrunk = Math.min(bestShrunk, size);
    }
    assertEquals(s.feasible, best < Infinity, at);
    assertEquals(s.bytes, sumOf(bytes, s.choice), at);
    assertEquals(s.error, sumOf(errors, s.choice), at);
    if (!s.feasible) {
      infeasible++;
      // the least error per layer
      s.choice.forEach((c, l) => assertEquals(errors[l]![c], Math.min(...errors[l]!), at));
      continue;
    }
    feasible++;
    assertEquals(s.bytes, best, at);
    assertEquals(s.usedBuckets, bestBuckets, at);
    if (budget > 0) assertEquals(s.choice, authorsDp(errors, bytes, budget, B), at);
    // the bound: true error below the budget, bytes between the two true-error optima
    assert(s.error <= s.bucketSize * (B - 1) && (s.error < budget || s.error === 0), at);
    assert(s.bytes >= bestTrue && s.bytes <= bestShrunk, at);
  }
  assert(feasible > 200 && infeasible > 20, `${feasible} feasible, ${infeasible} infeasible`);
});

Deno.test("lgreco: one layer, one candidate, zero errors, empty", () => {
  // one layer: the cheapest candidate whose error rounds below the budget
  const one = solveLgreco([[5, 2, 1]], [[1, 2, 3]], 4, { buckets: 100 });
  assertEquals([one.choice, one.bytes, one.error, one.usedBuckets], [[1], 2, 2, 50]);
  // one candidate: taken when it fits, else reported infeasible
  assertEquals(solveLgreco([[1], [2]], [[7], [8]], 3.5).choice, [0, 0]);
  const tight = solveLgreco([[1], [2]], [[7], [8]], 3); // 1 + 2 is not strictly below 3
  assertEquals([tight.feasible, tight.choice, tight.bytes, tight.error], [false, [0, 0], 15, 3]);
  // zero errors cost one bucket each: the cheapest per layer when L ≤ B − 1
  const zero = [[0, 0], [0, 0], [0, 0]], sizes = [[4, 3], [1, 2], [6, 6]];
  const z = solveLgreco(zero, sizes, 1);
  assertEquals([z.choice, z.bytes, z.error, z.usedBuckets], [[1, 0, 0], 10, 0, 3]);
  assertEquals(solveLgreco(zero, sizes, 1, { buckets: 4 }).feasible, true);
  assertEquals(solveLgreco(zero, sizes, 1, { buckets: 3 }).feasible, false); // as the authors
  assertEquals(solveLgreco([], [], 1), {
    choice: [],
    bytes: 0,
    error: 0,
    feasible: true,
    usedBuckets: 0,
    bucketSize: 1e-4,
  });
});

Deno.test("lgreco: budget 0, infeasible budgets, Infinity errors, ties", () => {
  // budget 0: zero-error candidates only, the cheapest of them
  const errors = [[0, 1, 0], [2, 0, 0]], bytes = [[9, 1, 5], [1, 8, 3]];
  const b0 = solveLgreco(errors, bytes, 0);
  assertEquals([b0.feasible, b0.choice, b0.bytes, b0.error], [true, [2, 2], 8, 0]);
  // no zero-error candidate in layer 1: infeasible, the least error per layer (ties: fewer bytes)
  const none = solveLgreco([[0, 1], [2, 3]], [[4, 1], [1, 1]], 0);
  assertEquals([none.feasible, none.choice, none.error], [false, [0, 0], 2]);
  // a budget below every choice: the least-error choice, flagged
  const low = solveLgreco([[3, 1, 2], [4, 5, 4]], [[1, 2, 3], [9, 1, 8]], 2);
  assertEquals([low.feasible, low.choice, low.bytes, low.error], [false, [1, 2], 10, 5]);
  // Infinity never fits
  assertEquals(solveLgreco([[Infinity, 1]], [[0, 5]], 1e300).choice, [1]);
  assertEquals(solveLgreco([[Infinity]], [[0]], 1e300).feasible, false);
  // equal bytes: the fewer buckets; equal everything: the lower index
  assertEquals(solveLgreco([[2, 1]], [[5, 5]], 10).choice, [1]);
  assertEquals(solveLgreco([[1, 1, 1]], [[5, 5, 5]], 10).choice, [0]);
  assertEquals(solveLgreco([[1, 1], [1, 1]], [[5, 5], [5, 5]], 10).choice, [0, 0]);
  // uniform at α = 1 is never admitted (Σ ceil ≥ B > B − 1); a cheaper or finer choice is
  const e2 = [[4, 2], [4, 2]], s2 = [[1, 2], [1, 2]];
  const u = solveLgreco(e2, s2, uniformBudget(e2, 0));
  assertEquals([u.choice, u.bytes], [[1, 0], 3]);
});

Deno.test("lgreco: uniformBudget", () => {
  const errors = [[9, 4, 1], [3, 2, 1.5]];
  assertEquals(uniformBudget(errors, 2), 2.5);
  assertEquals(uniformBudget(errors, [0, 1], 2), 22);
  assertEquals(uniformBudget(errors, 0, 0), 0);
  assertEquals(uniformBudget([], 0), 0);
});

function oneSentence(fn: () => unknown, E: new (m: string) => Error, quoted: string): void {
  const e = assertThrows(fn, E, quoted);
  assert(!e.message.includes("\n") && !e.message.endsWith("."), e.message);
}

Deno.test("lgreco: bad input fails with one sentence quoting the value", () => {
  const ok = [[1, 2], [3, 4]];
  oneSentence(() => solveLgreco([[1, NaN], [3, 4]], ok, 1), RangeError, "errors[0][1] is NaN");
  oneSentence(() => solveLgreco([[1, -2], [3, 4]], ok, 1), RangeError, "errors[0][1] is -2");
  oneSentence(() => solveLgreco(ok, [[1, 2], [-1, 4]], 1), RangeError, "bytes[1][0] is -1");
  oneSentence(() => solveLgreco(ok, [[1, 2], [Infinity, 4]], 1), RangeError, "is Infinity");
  oneSentence(() => solveLgreco([[1, 2], [3]], ok, 1), ShapeError, "errors[1] has 1 candidates");
  oneSentence(() => solveLgreco(ok, [[1, 2], [3]], 1), ShapeError, "bytes[1] has 1 candidates");
  oneSentence(() => solveLgreco([[], []], [[], []], 1), ShapeError, "errors[0] has 0");
  oneSentence(() => solveLgreco(ok, [[1, 2]], 1), ShapeError, "bytes has 1 layers");
  oneSentence(() => solveLgreco(ok, ok, 1, { buckets: 0 }), RangeError, "buckets is 0");
  oneSentence(() => solveLgreco(ok, ok, 1, { buckets: 2.5 }), RangeError, "buckets is 2.5");
  oneSentence(() => solveLgreco(ok, ok, -1), RangeError, "budget is -1");
  oneSentence(() => solveLgreco(ok, ok, NaN), RangeError, "budget is NaN");
  oneSentence(() => solveLgreco(ok, ok, Infinity), RangeError, "budget is Infinity");
  oneSentence(
    () => solveLgreco([[1, "2" as unknown as number]], [[1, 2]], 1),
    RangeError,
    `errors[0][1] is "2"`,
  );
  oneSentence(() => solveLgreco(3 as unknown as number[][], ok, 1), TypeError, "errors is 3");
  oneSentence(() => uniformBudget(ok, 2), RangeError, "uniform is 2");
  oneSentence(() => uniformBudget(ok, [0]), ShapeError, "uniform has 1 entries");
  oneSentence(() => uniformBudget(ok, 0, -1), RangeError, "alpha is -1");
  oneSentence(() => uniformBudget([[Infinity]], 0), RangeError, "is Infinity");
});

Deno.test("lgreco: lgrecoPlan is the authors' schedule", () => {
  const o = { uniform: 0, warmup: 3, adjustFreq: 5, accIter: 2 };
  const acc: number[] = [], solve: number[] = [], plain: number[] = [];
  for (let t = 0; t < 21; t++) {
    const p = lgrecoPlan(t, o);
    if (p.accumulate) acc.push(t);
    if (p.solve) solve.push(t);
    if (!p.compressed) plain.push(t);
    assertEquals(p.window, p.compressed ? Math.floor((t - 3) / 5) : -1);
  }
  assertEquals([plain, acc, solve], [[0, 1, 2], [6, 7, 11, 12, 16, 17], [8, 13, 18]]);
  // accIter = adjustFreq: every compressed step accumulates; the window's first also solves
  const all = { uniform: 0, warmup: 0, adjustFreq: 2, accIter: 2 };
  assertEquals([0, 1, 2].map((t) => lgrecoPlan(t, all)), [
    { step: 0, compressed: true, window: 0, solve: false, accumulate: true },
    { step: 1, compressed: true, window: 0, solve: false, accumulate: true },
    { step: 2, compressed: true, window: 1, solve: true, accumulate: true },
  ]);
  // the authors' defaults: 1000 warm-up steps, windows of 100, the last 10 accumulate
  const d = new LgrecoSchedule(1, 1, { uniform: 0 }).settings;
  assertEquals({ ...d }, {
    uniform: 0,
    warmup: 1000,
    adjustFreq: 100,
    accIter: 10,
    alpha: 1,
    buckets: 10_000,
  });
  assertEquals(lgrecoPlan(1089, { uniform: 0 }).accumulate, false);
  assertEquals(lgrecoPlan(1090, { uniform: 0 }).accumulate, true);
  assertEquals(lgrecoPlan(1100, { uniform: 0 }).solve, true);
  assertEquals(lgrecoPlan(1000, { uniform: 0 }).solve, false);
  oneSentence(() => lgrecoPlan(0, { uniform: 0, accIter: 101 }), RangeError, "accIter is 101");
  oneSentence(() => lgrecoPlan(0, { uniform: 0, adjustFreq: 0 }), RangeError, "adjustFreq is 0");
  oneSentence(() => lgrecoPlan(0, { uniform: 0, warmup: -1 }), RangeError, "warmup is -1");
  oneSentence(() => lgrecoPlan(-1, { uniform: 0 }), RangeError, "step is -1");
  oneSentence(() => new LgrecoSchedule(2, 3, { uniform: 3 }), RangeError, "uniform is 3");
  oneSentence(() => new LgrecoSchedule(0, 3, { uniform: 0 }), RangeError, "layers is 0");
  oneSentence(
    () => new LgrecoSchedule(2, 3, { uniform: 0, initial: [0, 5] }),
    RangeError,
    "initial[1] is 5",
  );
});

Deno.test(`lgreco: the schedule on a scripted run (seed ${seed})`, () => {
  const rng = new Rng(seed ^ 0x5eed);
  const L = 2, C = 3, sizes = [4, 3];
  const s = new LgrecoSchedule(L, C, {
    uniform: 1,
    warmup: 2,
    adjustFreq: 4,
    accIter: 2,
    buckets: 500,
  });
  assertEquals(s.choice, [1, 1]);
  const expected = sizes.map((n) => new Float64Array(n));
  const handed: number[] = [], solved: number[] = [];
  // candidate c of layer l: error (3 − c)·|g|·(l + 1)/3, bytes (c + 1)·10^(1 − l)
  const table = (l: number, c: number, g: Float64Array) => ({
    error: (3 - c) * Math.hypot(...g) * (l + 1) / 3,
    bytes: (c + 1) * 10 ** (1 - l),
  });
  for (let t = 0; t < 16; t++) {
    assertEquals(s.step, t);
    const p = s.plan();
    if (p.solve) {
      const seen: string[] = [];
      const adj = s.solve((l, c, g) => {
        assertEquals(g, expected[l]); // the sum of what was handed in this window
        seen.push(`${l}${c}`);
        return table(l, c, g);
      });
      assertEquals(seen, ["00", "01", "02", "10", "11", "12"]);
      const errs = expected.map((g, l) => [0, 1, 2].map((c) => table(l, c, g).error));
      const bytes = expected.map((g, l) => [0, 1, 2].map((c) => table(l, c, g).bytes));
      assertEquals([adj.errors, adj.bytes, adj.step], [errs, bytes, t]);
      assertEquals(adj.budget, uniformBudget(errs, 1));
      const ref = solveLgreco(errs, bytes, adj.budget, { buckets: 500 });
      assertEquals(adj.solution, ref);
      assert(ref.feasible);
      assertEquals([adj.choice, s.choice], [ref.choice, ref.choice]);
      oneSentence(() => s.solve(table), RangeError, "already solved");
      for (let l = 0; l < L; l++) assertEquals(s.accumulated(l), undefined);
      expected.forEach((g) => g.fill(0));
      solved.push(t);
    } else {
      oneSentence(() => s.solve(table), RangeError, `step ${t} is not a solve step`);
    }
    for (let l = 0; l < L; l++) {
      const g = Array.from({ length: sizes[l]! }, () => rng.normal());
      if (!p.accumulate) {
        oneSentence(() => s.accumulate(l, g), RangeError, `step ${t} is not an accumulation`);
        continue;
      }
      s.accumulate(l, g);
      g.forEach((x, i) => expected[l]![i]! += x);
      assertEquals(s.accumulated(l), expected[l]);
      oneSentence(() => s.accumulate(l, g), RangeError, `layer ${l} was already handed in`);
    }
    if (p.accumulate) handed.push(t);
    s.advance();
  }
  assertEquals([handed, solved], [[4, 5, 8, 9, 12, 13], [6, 10, 14]]);
});

Deno.test("lgreco: the schedule keeps its choice when the DP finds none; other misuse", () => {
  const o = { uniform: 0, warmup: 0, adjustFreq: 2, accIter: 2, alpha: 0, initial: [1, 0] };
  const s = new LgrecoSchedule(2, 2, o);
  s.accumulate(0, [1, 2]);
  s.accumulate(1, [3]);
  oneSentence(() => s.accumulate(1, [3, 4]), RangeError, "already handed in");
  s.advance();
  oneSentence(() => s.accumulate(0, [1, 2, 3]), ShapeError, "has 3 elements, expected 2");
  s.accumulate(0, new Float32Array([1, 1]));
  s.advance();
  oneSentence(() => s.accumulate(0, [1, 2]), RangeError, "step 2 solves first");
  // α = 0: budget 0, and no zero-error candidate: keep [1, 0]
  const adj = s.solve(() => ({ error: 1, bytes: 1 }));
  assertEquals([adj.budget, adj.solution.feasible, adj.choice, s.choice], [0, false, [1, 0], [
    1,
    0,
  ]]);
  // accIter = adjustFreq: this step accumulates too, into a fresh sum
  s.accumulate(0, [5, 5]);
  assertEquals(s.accumulated(0), new Float64Array([5, 5]));
  s.advance();
  s.advance();
  oneSentence(() => s.solve(() => ({ error: 0, bytes: 1 })), RangeError, "layer 1 had no gradient");
  const t = new LgrecoSchedule(1, 2, { uniform: 0, warmup: 0, adjustFreq: 1, accIter: 1 });
  t.accumulate(0, [1]);
  t.advance();
  oneSentence(() => t.solve(() => ({ error: NaN, bytes: 1 })), RangeError, "error is NaN");
  t.adopt([1]);
  assertEquals(t.choice, [1]);
  oneSentence(() => t.adopt([2]), RangeError, "choice[0] is 2");
  oneSentence(() => t.accumulated(1), RangeError, "layer is 1");
});
