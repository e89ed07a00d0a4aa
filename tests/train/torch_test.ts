// lossAndGrad and the Trainer against PyTorch autograd (tests/train/fixtures/make_torch_reference.py,
// torch 1.13 from Debian python3-torch, in float64): the bundled model on 4 real sentences padded to
// 95 positions — the loss, the last position's logits, every parameter's gradient, and the losses of
// 10 torch.optim.AdamW steps with clipping and warm-up + cosine.
import { assert } from "@std/assert";
import { SafetensorsFile } from "../../lib/io/safetensors.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import { lossAndGrad } from "../../lib/train/backward.ts";
import type { TokenBatch } from "../../lib/train/data.ts";
import { LlamaParams } from "../../lib/train/params.ts";
import { Trainer } from "../../lib/train/trainer.ts";
import { NATIVE, relL2 } from "../_util.ts";
import { cudaEmulated } from "../../ffi/mod.ts";

const here = new URL("./fixtures/", import.meta.url).pathname;
const ref = JSON.parse(await Deno.readTextFile(`${here}torch_reference.json`));
const model = await LlamaModel.load(
  new URL("../../data/models/tinyllama-bytes", import.meta.url).pathname,
  {
    backend: "ts",
  },
);
const batch: TokenBatch = {
  rows: ref.inputs.length,
  seqLen: ref.inputs[0].length,
  inputs: Int32Array.from(ref.inputs.flat()),
  targets: Int32Array.from(ref.targets.flat()),
};

const GRAD_TOL = 1e-4, LOSS_TOL = 1e-6, STEP_TOL = 2e-5;

// the emulated cuda backend is checked on the tiny config (backward_test.ts): the bundled model
// takes too long there
const NATIVE_HERE = NATIVE.map((n) => ({
  ...n,
  ignore: n.ignore || (n.backend === "cuda" && cudaEmulated()),
}));

for (const { backend, ignore } of [{ backend: "ts" as const, ignore: false }, ...NATIVE_HERE]) {
  Deno.test({
    name:
      `lossAndGrad ${backend} equals PyTorch autograd on the bundled model: loss, last logits, every gradient (rel. L2 < ${GRAD_TOL})`,
    ignore,
    async fn() {
      const params = LlamaParams.fromModel(model);
      const r = lossAndGrad(params, batch, { backend });
      assert(Math.abs(r.loss - ref.loss) <= LOSS_TOL * ref.loss, `loss ${r.loss} vs ${ref.loss}`);
      // the last position of each sequence, through the model's own forward on these weights
      const m = params.toModel("ts");
      ref.last_logits_positions.forEach((pos: number, s: number) => {
        const logits = m.forward(ref.inputs[s].slice(0, pos + 1), { lastOnly: true });
        const e = relL2(logits.data, ref.last_logits[s]);
        assert(e < 1e-5, `sequence ${s} last logits: rel. L2 ${e}`);
      });
      using grads = await SafetensorsFile.open(`${here}torch_grads.safetensors`);
      let worst = 0, worstName = "";
      for (const v of params.layout.views) {
        const t = await grads.readFloat32(v.name);
        const e = relL2(r.grad.view(v.name), t.data);
        if (e > worst) [worst, worstName] = [e, v.name];
      }
      console.log(`${backend}: worst gradient rel. L2 ${worst.toExponential(2)} (${worstName})`);
      assert(worst < GRAD_TOL, `${worstName}: relative L2 error ${worst} ≥ ${GRAD_TOL}`);
    },
  });
}

// (the ts backend follows too, 3.9e-6 at worst, but takes minutes: cpu only here)
for (const { backend, ignore } of [NATIVE[0]!]) {
  Deno.test({
    name:
      `Trainer ${backend}: 10 AdamW steps (clip 1, warm-up + cosine) follow torch.optim.AdamW's losses within ${STEP_TOL} relative`,
    ignore,
    fn() {
      const a = ref.adamw;
      const params = LlamaParams.fromModel(model);
      const t = new Trainer(params, [[0, 1]], {
        steps: 10,
        microBatch: 4,
        lr: 1e-3,
        minLr: 1e-4,
        warmup: 3,
        clip: a.clip,
        beta1: a.betas[0],
        beta2: a.betas[1],
        eps: a.eps,
        weightDecay: a.weight_decay,
      }, { backend });
      const losses: number[] = [];
      for (let i = 0; i < 10; i++) {
        const r = t.trainStepOn([batch]);
        assert(Math.abs(r.lr - a.lrs[i]) < 1e-15, `step ${i + 1} lr ${r.lr} vs ${a.lrs[i]}`);
        losses.push(r.loss);
      }
      losses.push(t.evaluate([batch]).loss);
      const errs = losses.map((l, i) => Math.abs(l - a.losses_f64[i]) / a.losses_f64[i]);
      console.log(`${backend}: 11 losses, worst rel. error ${Math.max(...errs).toExponential(2)}`);
      errs.forEach((e, i) => assert(e < STEP_TOL, `loss ${i}: ${losses[i]} vs ${a.losses_f64[i]}`));
    },
  });
}
