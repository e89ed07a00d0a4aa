// SparseGPT on one 4096×4096 layer with 128 × 512 calibration tokens (`deno task bench`): the
// Hessian accumulated batch by batch (H = 2/N·Σxxᵀ, in f64 and in f32), then the prune (OBS preparation +
// column sweep) at 50 % unstructured, on the cpu backend. The authors' PyTorch code takes about
// 32 s for this on PyTorch's CPU backend on these machines (issue 4; measured here with PyTorch
// 1.13: 19.9 s, `bench/gpu/torch_peers.py --device cpu --sparse`), 0.69 s on an H200.
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { HessianAccumulator } from "../lib/kernels/gram.ts";
import { sparseGpt } from "../lib/sparse/sparsegpt.ts";

const n = 4096, seqs = 128, tokens = 512;
const rng = new Rng(5);
const w = new Matrix(n, n, rng.normalArray(n * n, 0.02));
const batch = new Matrix(tokens, n, rng.normalArray(tokens * n));
let h: Matrix<Float64Array> | undefined;

Deno.bench({
  name: `Hessian of ${seqs}×${tokens} tokens, n=${n} (cpu)`,
  group: "sparsegpt 4096",
  n: 1,
  warmup: 0,
  fn() {
    const acc = new HessianAccumulator(n, { backend: "cpu" });
    for (let s = 0; s < seqs; s++) {
      batch.data[s]! += 1e-3; // a different batch each time, without the cost of new random numbers
      acc.add(batch);
    }
    h = acc.result();
  },
});
Deno.bench({
  name: `Hessian in f32 (the authors' precision; ssyrk)`,
  group: "sparsegpt 4096",
  n: 1,
  warmup: 0,
  fn() {
    const acc = new HessianAccumulator(n, { backend: "cpu", precision: "f32" });
    for (let s = 0; s < seqs; s++) {
      batch.data[s]! += 1e-3;
      acc.add(batch);
    }
    acc.result();
  },
});
Deno.bench({
  name: "prune 50% (OBS preparation + column sweep, cpu)",
  group: "sparsegpt 4096",
  n: 1,
  warmup: 0,
  fn() {
    sparseGpt(w, h!, { sparsity: 0.5, backend: "cpu" });
  },
});
