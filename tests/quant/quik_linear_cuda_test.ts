// A QUIK model on the cuda backend (the emulator in `deno task test`): QuikLinear keeps its weight
// on the device, quantizes tokens there and runs the tensor-core product. In a cuda forward every
// projection gives the cpu layer's output on its input. The two whole models cannot agree to
// rounding (the f32 rounding differences of attention and norms move a few activations across a
// level boundary: a 3e-7 relative change of the embeddings moves the cpu model's logits by about
// 3 %), so their losses are only compared loosely.
import { assert } from "@std/assert";
import { LlamaModel } from "../../lib/model/llama.ts";
import { quikModel } from "../../lib/quant/quik.ts";
import { loadQuikModel, saveQuikModel } from "../../lib/quant/quik_checkpoint.ts";
import { QuikLinear } from "../../lib/quant/quik_linear.ts";
import { evaluateLoss } from "../../lib/model/perplexity.ts";
import { NATIVE, relL2 } from "../_util.ts";

Deno.test({
  name:
    "QuikLinear cuda: a loaded QUIK-4B checkpoint gives the cpu layers' outputs and the cpu loss",
  ignore: NATIVE.find((n) => n.backend === "cuda")!.ignore,
  async fn() {
    const src = "data/models/tinyllama-bytes";
    const model = await LlamaModel.load(src, { backend: "cpu" });
    const layers = await quikModel(model, [[256, 72, 105, 33, 32, 104, 111, 119, 32, 97]], {
      clip: false,
      progress: false,
    });
    const dir = await Deno.makeTempDir();
    try {
      await saveQuikModel(src, `${dir}/q`, layers);
      const onCpu = await loadQuikModel(`${dir}/q`, { backend: "cpu" });
      const onGpu = await loadQuikModel(`${dir}/q`, { backend: "cuda" });
      const lin = onGpu.blocks[1]!.linears.down_proj;
      assert(lin instanceof QuikLinear && lin.backend === "cuda" && lin.weight.bits === 8);
      // every projection of the cuda forward, in place, against the cpu layer on its input
      const text = "Tensor cores multiply tiles of integers.";
      const ids = [256, ...new TextEncoder().encode(text)];
      let seen = 0;
      const logits = onGpu.forward(ids, {
        hooks: {
          linear: ({ layer, name, input, output }) => {
            const e = relL2(output.data, onCpu.blocks[layer]!.linears[name].forward(input).data);
            assert(e < 1e-6, `block ${layer} ${name}: ${e}`);
            seen++;
          },
        },
      });
      assert(seen === 7 * onCpu.config.numLayers && logits.data.every(Number.isFinite));
      const lc = evaluateLoss(onCpu, [ids], { byteLevel: true }).bitsPerByte;
      const lg = evaluateLoss(onGpu, [ids], { byteLevel: true }).bitsPerByte;
      assert(Math.abs(lg - lc) < 0.15 * lc, `bits/byte ${lg} vs ${lc}`);
      for (const blk of onGpu.blocks) for (const l of Object.values(blk.linears)) l.dispose?.();
      onGpu.lmHead.dispose?.();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
