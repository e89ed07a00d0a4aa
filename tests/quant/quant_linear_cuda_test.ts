// A quantized model on the cuda backend (the emulator in `deno task test`): QuantLinear keeps its
// packed weight on the device and gives the cpu layer's outputs; a loaded GPTQ checkpoint on cuda
// gives the cpu model's logits.
import { assert } from "@std/assert";
import { LlamaModel } from "../../lib/model/llama.ts";
import { loadQuantizedModel, saveQuantizedModel } from "../../lib/quant/checkpoint.ts";
import { QuantLinear } from "../../lib/quant/quant_linear.ts";
import { quantizeModel } from "../../lib/quant/quantize_model.ts";
import { NATIVE, relL2 } from "../_util.ts";

Deno.test({
  name: "QuantLinear cuda: a loaded 4-bit act-order checkpoint gives the cpu model's logits",
  ignore: NATIVE.find((n) => n.backend === "cuda")!.ignore,
  async fn() {
    const src = "data/models/tinyllama-bytes";
    const model = await LlamaModel.load(src, { backend: "cpu" });
    const layers = await quantizeModel(model, [[256, 72, 105, 33, 32, 104, 111, 119]], {
      bits: 4,
      groupSize: 32,
      actOrder: true,
      names: ["o_proj", "down_proj"],
      progress: false,
    });
    const dir = await Deno.makeTempDir();
    try {
      await saveQuantizedModel(model, src, `${dir}/q`, layers, { actOrder: true });
      const onCpu = await loadQuantizedModel(`${dir}/q`, { backend: "cpu" });
      const onGpu = await loadQuantizedModel(`${dir}/q`, { backend: "cuda" });
      const lin = onGpu.blocks[1]!.linears.down_proj;
      assert(lin instanceof QuantLinear && lin.backend === "cuda");
      const ids = [256, ...new TextEncoder().encode("GPU")];
      const a = onCpu.forward(ids), b = onGpu.forward(ids);
      const e = relL2(b.data, a.data);
      assert(e < 1e-5, `logits differ by ${e}`);
      for (const blk of onGpu.blocks) for (const l of Object.values(blk.linears)) l.dispose?.();
      onGpu.lmHead.dispose?.();
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
