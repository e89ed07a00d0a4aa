// L-GreCo's DP (`deno bench bench/lgreco_bench.ts`): one solve for 200 layers × 10 candidate
// ranks × 10,000 error buckets (the authors' DPBUCKETS), goal ≤ 50 ms. Baseline: the same DP
// written as plain nested loops over Arrays of Arrays (the authors' numpy loops, lgreco_hook.py
// lines 540–592, transcribed), in the same run; both must return the same choice. The layers are
// PowerSGD-like: size r·(n + m), error falling with the rank as a power-law spectrum tail. The
// first (cold, JIT-compiling) solve of each is printed before the bench.
import { Rng } from "../lib/core/rng.ts";
import { solveLgreco, uniformBudget } from "../lib/comm/lgreco.ts";

const L = 200, RANKS = [2, 3, 4, 5, 6, 7, 8, 10, 12, 16], B = 10_000, R0 = 2; // rank 4
const rng = new Rng(27);
const errors: number[][] = [], bytes: number[][] = [];
for (let l = 0; l < L; l++) {
  const n = 64 * (1 + rng.int(64)), m = 64 * (1 + rng.int(64)), scale = 0.1 + 10 * rng.uniform();
  const decay = 0.5 + rng.uniform();
  // ‖G − G_r‖_F for singular values σ_i = scale · i^(−decay)
  errors.push(RANKS.map((r) => {
    let tail = 0;
    for (let i = r + 1; i <= Math.min(n, m); i++) tail += (scale * i ** -decay) ** 2;
    return Math.sqrt(tail);
  }));
  bytes.push(RANKS.map((r) => 4 * r * (n + m)));
}
const budget = uniformBudget(errors, R0);

/** The DP as the authors write it, over plain Arrays. */
function plainDp(errors: number[][], bytes: number[][], budget: number, B: number): number[] {
  const L = errors.length, C = errors[0]!.length, u = budget / B;
  const e: number[][] = [];
  for (let l = 0; l < L; l++) {
    e.push([]);
    for (let c = 0; c < C; c++) e[l]!.push(Math.min(Math.max(Math.ceil(errors[l]![c]! / u), 1), B));
  }
  const DP: number[][] = [], PD: number[][] = [];
  for (let l = 0; l < L; l++) {
    DP.push(new Array<number>(B + 1).fill(Infinity));
    PD.push(new Array<number>(B + 1).fill(-1));
  }
  for (let b = 0; b <= B; b++) {
    for (let c = 0; c < C; c++) {
      if (b > e[0]![c]! && DP[0]![b]! > bytes[0]![c]!) {
        DP[0]![b] = bytes[0]![c]!;
        PD[0]![b] = c;
      }
    }
  }
  for (let l = 1; l < L; l++) {
    for (let c = 0; c < C; c++) {
      const ec = e[l]![c]!;
      for (let b = ec; b <= B; b++) {
        const v = DP[l - 1]![b - ec]! + bytes[l]![c]!;
        if (v < DP[l]![b]!) {
          DP[l]![b] = v;
          PD[l]![b] = c;
        }
      }
    }
  }
  let b = 0;
  for (let i = 1; i <= B; i++) if (DP[L - 1]![i]! < DP[L - 1]![b]!) b = i;
  const choice = new Array<number>(L);
  for (let l = L - 1; l >= 0; l--) {
    choice[l] = PD[l]![b]!;
    b -= e[l]![choice[l]!]!;
  }
  return choice;
}

let t = performance.now();
const fast = solveLgreco(errors, bytes, budget, { buckets: B });
const coldFast = performance.now() - t;
t = performance.now();
const plain = plainDp(errors, bytes, budget, B);
const coldPlain = performance.now() - t;
if (!fast.feasible || fast.choice.join() !== plain.join()) {
  throw new Error("solveLgreco and the plain DP disagree");
}
const uniformBytes = bytes.reduce((s, r) => s + r[R0]!, 0);
console.log(
  `first solve: solveLgreco ${coldFast.toFixed(1)} ms, plain DP ${
    coldPlain.toFixed(1)
  } ms; ${L} layers × ${RANKS.length} ranks × ${B} buckets: ${fast.bytes} bytes against ${uniformBytes} for rank 4 everywhere (${
    (uniformBytes / fast.bytes).toFixed(2)
  }×), error ${fast.error.toPrecision(6)} ≤ budget ${budget.toPrecision(6)}`,
);

Deno.bench({
  name: "plain nested-loop DP (Arrays of Arrays), 200 × 10 × 10,000",
  group: "lgreco",
  baseline: true,
  fn: () => void plainDp(errors, bytes, budget, B),
});
Deno.bench({
  name: "solveLgreco (typed arrays, byte backpointers), 200 × 10 × 10,000",
  group: "lgreco",
  fn: () => void solveLgreco(errors, bytes, budget, { buckets: B }),
});
