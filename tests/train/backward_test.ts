// lossAndGrad against an independent f64 Llama (tests/train/_ref_llama.ts): the loss, and every
// parameter tensor's gradient against central finite differences of that f64 loss, on a tiny
// random config (2 layers, GQA 4/2, odd sizes, tied and untied head) with padded sequences, on
// every backend that runs here. Then gradient accumulation, and bad batches.
import { assert, assertThrows } from "@std/assert";
import { Rng } from "../../lib/core/rng.ts";
import { lossAndGrad } from "../../lib/train/backward.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import type { TokenBatch } from "../../lib/train/data.ts";
import { freshSeed, NATIVE, relL2 } from "../_util.ts";
import { randomBatch, refLoss, tinyConfig } from "./_ref_llama.ts";

const BACKENDS = [{ backend: "ts" as const, ignore: false }, ...NATIVE];

for (const tied of [false, true]) {
  const seed = freshSeed();
  const rng = new Rng(seed);
  const config = tinyConfig(tied);
  const params = LlamaParams.init(config, rng, 0.4);
  for (const v of params.layout.views) {
    if (v.kind !== "norm") continue;
    for (let i = v.offset; i < v.offset + v.size; i++) params.data[i] = 1 + 0.3 * rng.normal();
  }
  const batch = randomBatch(rng, config, 3, 7);
  const w64 = Float64Array.from(params.data);
  let fd: Float64Array | undefined;
  const finiteDifferences = () => {
    if (fd) return fd;
    fd = new Float64Array(w64.length);
    const h = 1e-4;
    for (let i = 0; i < w64.length; i++) {
      const x = w64[i]!;
      w64[i] = x + h;
      const up = refLoss(config, w64, batch);
      w64[i] = x - h;
      const dn = refLoss(config, w64, batch);
      w64[i] = x;
      fd[i] = (up - dn) / (2 * h);
    }
    return fd;
  };
  for (const { backend, ignore } of BACKENDS) {
    Deno.test({
      name: `lossAndGrad ${backend}, ${
        tied ? "tied" : "untied"
      } head: loss equals the f64 reference, every tensor's gradient its finite differences (seed ${seed})`,
      ignore,
      fn() {
        const r = lossAndGrad(params, batch, { backend });
        const ref = refLoss(config, w64, batch);
        assert(Math.abs(r.loss - ref) <= 1e-6 * Math.abs(ref), `loss ${r.loss} vs ${ref}`);
        const g = finiteDifferences();
        for (const v of params.layout.views) {
          const err = relL2(
            r.grad.data.subarray(v.offset, v.offset + v.size),
            g.subarray(v.offset, v.offset + v.size),
          );
          assert(err < 1e-5, `${v.name}: relative L2 error ${err.toExponential(2)} ≥ 1e-5`);
        }
      },
    });
  }
}

Deno.test("lossAndGrad: micro-batches with a shared scale add up to the whole batch's gradient", () => {
  const rng = new Rng(freshSeed()), config = tinyConfig(false);
  const params = LlamaParams.init(config, rng, 0.4);
  const batch = randomBatch(rng, config, 4, 6);
  const whole = lossAndGrad(params, batch, { backend: "ts" });
  const half = (r0: number): TokenBatch => ({
    rows: 2,
    seqLen: 6,
    inputs: batch.inputs.slice(r0 * 6, (r0 + 2) * 6),
    targets: batch.targets.slice(r0 * 6, (r0 + 2) * 6),
  });
  const grad = params.zerosLike(), scale = 1 / whole.tokens;
  const a = lossAndGrad(params, half(0), { backend: "ts", grad, scale });
  const b = lossAndGrad(params, half(2), { backend: "ts", grad, scale });
  assert(a.tokens + b.tokens === whole.tokens);
  assert(Math.abs((a.sumLoss + b.sumLoss) - whole.sumLoss) < 1e-9 * whole.sumLoss);
  assert(relL2(grad.data, whole.grad.data) < 1e-6);
});

Deno.test("lossAndGrad refuses bad batches with one sentence naming the place", () => {
  const config = tinyConfig(false), params = LlamaParams.init(config, new Rng(1));
  const ok = randomBatch(new Rng(2), config, 2, 5);
  const bad = (patch: Partial<TokenBatch>) => ({ ...ok, ...patch });
  const ids = ok.inputs.slice();
  ids[3] = config.vocabSize;
  assertThrows(
    () => lossAndGrad(params, bad({ inputs: ids })),
    RangeError,
    "Token id 13 at sequence 0, position 3 is outside the vocabulary [0, 13)",
  );
  const ys = ok.targets.slice();
  ys[6] = -5;
  assertThrows(
    () => lossAndGrad(params, bad({ targets: ys })),
    RangeError,
    "Target -5 at sequence 1",
  );
  assertThrows(
    () =>
      lossAndGrad(params, {
        rows: 0,
        seqLen: 5,
        inputs: new Int32Array(),
        targets: new Int32Array(),
      }),
    RangeError,
    "empty",
  );
  assertThrows(
    () => lossAndGrad(params, bad({ targets: new Int32Array(10).fill(-1) })),
    RangeError,
    "no target tokens",
  );
  const long = randomBatch(new Rng(3), config, 1, config.maxPositionEmbeddings + 1);
  assertThrows(() => lossAndGrad(params, long), RangeError, "more than the model's context of 16");
  assertThrows(() => lossAndGrad(params, bad({ inputs: ok.inputs.slice(1) })), Error, "inputs");
});
