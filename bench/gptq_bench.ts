// GPTQ of one 4096 × 4096 layer with 128 × 512 calibration tokens (`deno task bench-gptq`): the
// Hessian (cpu, f32 as the authors accumulate it, and f64) and the 4-bit group-128 quantization on
// the cpu backend, against the PyTorch CPU peer (bench/torch_gptq_peer.py: the authors' algorithm,
// f32, same shapes, same thread count) run as a child in the same run when python3 has torch.
// Prints seconds of each part, the ratio of totals, and each side's relative output error on two
// calibration sequences. Options: --rows --cols --samples --seqlen (defaults as above).
import { parseArgs } from "node:util";
import { availableBackends, cpu, libraryInfo } from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { HessianAccumulator } from "../lib/kernels/gram.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { gptq } from "../lib/quant/gptq.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({
  args: Deno.args,
  options: {
    rows: { type: "string", default: "4096" },
    cols: { type: "string", default: "4096" },
    samples: { type: "string", default: "128" },
    seqlen: { type: "string", default: "512" },
  },
});
const rows = Number(values.rows), cols = Number(values.cols);
const samples = Number(values.samples), seqlen = Number(values.seqlen);
if (!availableBackends().cpu.ok) throw new Error("the cpu library is not built: deno task build");
const info = libraryInfo(cpu());
const threads = Number(info.threads ?? navigator.hardwareConcurrency);

const rng = new Rng(0);
const w = new Matrix(rows, cols, rng.normalArray(rows * cols));
const ours: Record<string, number> = {};
let xs: Matrix[] = [];
for (const precision of ["f32", "f64"] as const) {
  // the Hessian's time is that of add() and result() only, not of drawing the random tokens
  let hessianMs = 0;
  const acc = new HessianAccumulator(cols, { backend: "cpu", precision });
  const r = new Rng(1);
  xs = [];
  for (let n = 0; n < samples; n++) {
    const x = new Matrix(seqlen, cols, r.normalArray(seqlen * cols));
    if (n < 2) xs.push(x);
    const t = performance.now();
    acc.add(x);
    hessianMs += performance.now() - t;
  }
  let t1 = performance.now();
  const h = acc.result();
  hessianMs += performance.now() - t1;
  t1 = performance.now();
  const q = gptq(w, h, { bits: 4, groupSize: 128, backend: "cpu" });
  const t2 = performance.now();
  ours[`hessian_${precision}_s`] = hessianMs / 1000;
  ours[`gptq_${precision}_s`] = (t2 - t1) / 1000;
  const x = new Matrix(2 * seqlen, cols, new Float32Array(2 * seqlen * cols));
  x.data.set(xs[0]!.data, 0);
  x.data.set(xs[1]!.data, seqlen * cols);
  const ref = matmul(x, w, { transB: true, backend: "cpu" });
  const got = matmul(x, q.weight, { transB: true, backend: "cpu" });
  let num = 0, den = 0;
  for (let i = 0; i < ref.data.length; i++) {
    num += (ref.data[i]! - got.data[i]!) ** 2;
    den += ref.data[i]! ** 2;
  }
  ours[`rel_error_${precision}`] = num / den;
  console.log(
    `lmkit cpu (H ${precision}): Hessian ${ours[`hessian_${precision}_s`]!.toFixed(2)} s, GPTQ ${
      ours[`gptq_${precision}_s`]!.toFixed(2)
    } s, relative output error ${(num / den).toExponential(3)}`,
  );
}

let peer: Record<string, number | string> | string;
try {
  const out = await new Deno.Command("/usr/bin/python3", {
    args: [
      `${ROOT}bench/torch_gptq_peer.py`,
      ...["--rows", `${rows}`, "--cols", `${cols}`, "--samples", `${samples}`],
      ...["--seqlen", `${seqlen}`, "--threads", `${threads}`],
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1) ?? "";
  peer = out.success
    ? JSON.parse(text)
    : `failed: ${new TextDecoder().decode(out.stderr).trim().split("\n").at(-1)}`;
} catch (e) {
  peer = `did not run (${(e as Error).message}); it needs /usr/bin/python3 with torch`;
}
console.log(
  `\nGPTQ 4-bit g128 of a ${rows} × ${cols} layer, ${samples} × ${seqlen} tokens, ${threads} threads, BLAS ${
    info.blas ?? "none"
  }`,
);
if (typeof peer === "string") console.log(`  PyTorch peer ${peer}`);
else {
  const p = peer as Record<string, number>;
  console.log(
    `  PyTorch ${peer.torch}: Hessian ${p.hessian_s!.toFixed(2)} s, GPTQ ${
      p.gptq_s!.toFixed(2)
    } s, relative output error ${p.rel_error!.toExponential(3)}`,
  );
  for (const precision of ["f32", "f64"]) {
    const mine = ours[`hessian_${precision}_s`]! + ours[`gptq_${precision}_s`]!;
    const theirs = p.hessian_s! + p.gptq_s!;
    console.log(
      `  lmkit (H ${precision}) / PyTorch time: total ${(mine / theirs).toFixed(2)}×, GPTQ step ${
        (ours[`gptq_${precision}_s`]! / p.gptq_s!).toFixed(2)
      }× (goal ≤ 1.0×)`,
    );
  }
}
