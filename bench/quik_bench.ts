// QUIK linear layers on the cpu (`deno task bench-quik`): the whole layer — per-token quantization
// of the input, the integer product (AVX-512 VNNI here), the f32 outlier product and the
// dequantizing epilogue — against the f32 product of the same shape (OpenBLAS where it is
// installed, else the own GEMM) and against PyTorch's dynamic int8 linear (bench/torch_quik_peer.py,
// run as a child in the same command when /usr/bin/python3 has torch), at 256–2048 tokens on
// Llama-7B's (out × in) 4096 × 4096 and 11008 × 4096 (W4A4, 256 outliers) and 4096 × 11008
// (down_proj: W8A8, 688 outliers = the 1/16 rule); then the bundled model's prefill tokens/s with
// QUIK-4B against dense. Times are the best of several calls; ratios come from the same run.
import { parseArgs } from "node:util";
import { availableBackends, cpu, libraryInfo } from "../ffi/mod.ts";
import { Matrix } from "../lib/core/matrix.ts";
import { Rng } from "../lib/core/rng.ts";
import { matmul } from "../lib/kernels/matmul.ts";
import { quikMatmul, quikQuantize } from "../lib/kernels/quik_matmul.ts";
import { LlamaModel } from "../lib/model/llama.ts";
import { bundledDocuments, calibrationWindows } from "../lib/model/corpus.ts";
import { loadTokenizer } from "../lib/model/tokenizer.ts";
import { quikModel } from "../lib/quant/quik.ts";
import { randomQuikWeight } from "./_quik.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const { values } = parseArgs({
  args: Deno.args,
  options: {
    tokens: { type: "string", default: "256,512,1024,2048" },
    shapes: { type: "string", default: "4096x4096:4,11008x4096:4,4096x11008:8" },
    model: { type: "string", default: "data/models/tinyllama-bytes" },
  },
});
if (!availableBackends().cpu.ok) throw new Error("the cpu library is not built: deno task build");
const info = libraryInfo(cpu());
const threads = Number(info.threads ?? navigator.hardwareConcurrency);
const TOKENS = values.tokens.split(",").map(Number);
const SHAPES = values.shapes.split(",").map((s) => {
  const [shape, bits] = s.split(":");
  const [out, inF] = shape!.split("x").map(Number);
  return { out: out!, inF: inF!, bits: Number(bits ?? 4) };
});
const rng = new Rng(3);
const best = (fn: () => unknown, reps: number) => {
  fn();
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn();
    t = Math.min(t, performance.now() - t0);
  }
  return t;
};

type Row = {
  out: number;
  inF: number;
  bits: number;
  tokens: number;
  quikMs: number;
  f32Ms: number;
};
const rows: Row[] = [];
console.log(`cpu library: ${JSON.stringify(info)}`);
for (const { out, inF, bits } of SHAPES) {
  const w = randomQuikWeight(rng, out, inF, bits);
  const wf = new Matrix(out, inF, rng.normalArray(out * inF));
  for (const m of TOKENS) {
    const x = new Matrix(m, inF, rng.normalArray(m * inF));
    const reps = m >= 1024 ? 3 : 5;
    const quikMs = best(() => quikMatmul(quikQuantize(x, w.outliers, bits), w), reps);
    const f32Ms = best(() => matmul(x, wf, { transB: true, backend: "cpu" }), reps);
    rows.push({ out, inF, bits, tokens: m, quikMs, f32Ms });
    console.log(
      `${out}×${inF} W${bits}A${bits} ${w.outliers.length} outliers, ${m} tokens: QUIK ${
        quikMs.toFixed(1)
      } ms, f32 ${f32Ms.toFixed(1)} ms (${(f32Ms / quikMs).toFixed(2)}×)`,
    );
  }
}

let peer: { engine: string; torch: string; rows: Record<string, number>[] } | string;
try {
  const o = await new Deno.Command("/usr/bin/python3", {
    args: [
      `${ROOT}bench/torch_quik_peer.py`,
      "--shapes",
      SHAPES.map((s) => `${s.out}x${s.inF}`).join(","),
      "--tokens",
      TOKENS.join(","),
      "--threads",
      `${threads}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(o.stdout).trim().split("\n").at(-1) ?? "";
  peer = o.success
    ? JSON.parse(text)
    : `failed: ${new TextDecoder().decode(o.stderr).trim().split("\n").at(-1)}`;
} catch (e) {
  peer = `did not run (${(e as Error).message}); it needs /usr/bin/python3 with torch`;
}

console.log(
  `\nQUIK linear layer (quantize + integer GEMM + outliers + epilogue), ${threads} threads, BLAS ${
    info.blas ?? "none"
  }; ratios: f32 time / QUIK time (goal ≥ 2×), torch int8 time / QUIK time (goal ≥ 1×)`,
);
if (typeof peer === "string") console.log(`PyTorch peer ${peer}`);
else console.log(`PyTorch ${peer.torch}, dynamic int8 engine ${peer.engine}`);
console.log(
  "| out × in | W/A bits | tokens | QUIK ms | f32 ms | vs f32 | torch int8 ms | vs torch int8 | torch f32 ms |",
);
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  const p = typeof peer === "string"
    ? undefined
    : peer.rows.find((q) => q.out === r.out && q.in === r.inF && q.tokens === r.tokens);
  console.log(
    `| ${r.out} × ${r.inF} | ${r.bits} | ${r.tokens} | ${r.quikMs.toFixed(1)} | ${
      r.f32Ms.toFixed(1)
    } | ${(r.f32Ms / r.quikMs).toFixed(2)}× | ${p ? p.int8_ms!.toFixed(1) : "-"} | ${
      p ? (p.int8_ms! / r.quikMs).toFixed(2) + "×" : "-"
    } | ${p ? p.f32_ms!.toFixed(1) : "-"} |`,
  );
}

// the bundled model's prefill: one 512-token window, dense and QUIK-4B (calibrated on 4 windows)
const dense = await LlamaModel.load(values.model, { backend: "cpu" });
const tok = await loadTokenizer(values.model, dense.config);
const docs = await bundledDocuments("data");
const [ids] = calibrationWindows(docs, tok, { count: 1, context: 511, seed: 7 });
const calib = calibrationWindows(docs, tok, { count: 4, context: 256, seed: 0 });
const quik = await LlamaModel.load(values.model, { backend: "cpu" });
await quikModel(quik, calib, { clip: false, progress: false });
const dMs = best(() => dense.forward(ids!), 5), qMs = best(() => quik.forward(ids!), 5);
console.log(
  `\nBundled model prefill of ${ids!.length} tokens: dense ${
    (ids!.length / dMs * 1000).toFixed(0)
  } tokens/s, QUIK-4B ${(ids!.length / qMs * 1000).toFixed(0)} tokens/s (${
    (dMs / qMs).toFixed(2)
  }×)`,
);
