import { assertAlmostEquals, assertEquals } from "@std/assert";
import { neuronWasserstein, selectWassersteinNeurons } from "../../lib/wasserstein/neurons.ts";
import { w1ToNormal, zscore } from "../../lib/wasserstein/distance.ts";
import { LlamaModel } from "../../lib/model/llama.ts";
import type { DenseLinear } from "../../lib/model/linear.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { golden, MODEL_DIR } from "../model/_golden.ts";

Deno.test("neuron W1 equals a direct computation from the hooked gate_proj outputs; zero-variance neurons are reported", async () => {
  const m = await LlamaModel.load(MODEL_DIR, { backend: "cpu" });
  // make neuron 7 of block 2's gate_proj constant: a zero row gives zero variance
  const lin = m.blocks[2]!.linears.gate_proj as DenseLinear;
  const w = new Matrix(lin.weight.rows, lin.weight.cols, lin.weight.data.slice());
  w.row(7).fill(0);
  lin.setWeight(w);
  const seqs = golden.val_batch.sequences.slice(0, 3);
  const layers = await neuronWasserstein(m, seqs, { names: ["gate_proj"], progress: false });
  assertEquals(layers.length, m.config.numLayers);
  const l2 = layers[2]!;
  assertEquals(l2.tokens, 3 * 257);
  assertEquals(l2.zeroVariance, [7]);
  assertEquals(Number.isNaN(l2.w1[7]), true);
  // independent path: collect the same outputs with a plain forward hook
  const cols: number[][] = Array.from({ length: 5 }, () => []);
  for (const s of seqs) {
    m.forward(s, {
      hooks: {
        linear: (e) => {
          if (e.layer !== 2 || e.name !== "gate_proj") return;
          for (let t = 0; t < e.output.rows; t++) {
            for (let j = 0; j < 5; j++) cols[j]!.push(e.output.get(t, j + 10));
          }
        },
      },
    });
  }
  for (let j = 0; j < 5; j++) {
    assertAlmostEquals(l2.w1[j + 10]!, w1ToNormal(zscore(cols[j]!)!), 1e-9);
  }
  const sel = selectWassersteinNeurons(l2.w1, 3);
  assertEquals(sel.includes(7), false);
  assertEquals(sel.length, Math.round(0.03 * (l2.w1.length - 1)));
});
