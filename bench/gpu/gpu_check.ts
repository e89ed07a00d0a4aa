// GPU benchmark: our CUDA kernels with data resident on the device, checked against the cpu
// backend on the same inputs, then timed; PyTorch peers (bench/gpu/torch_peers.py) read from
// the JSON file named by --peers. Prints a table last. Run through bench/gpu/check.sh.
import { relativeL2Error } from "../../lib/core/numeric.ts";
import { parseArgs } from "@std/cli";
import { check, cpu, cuda, cudaSync, DeviceBuffer, libraryInfo } from "../../ffi/mod.ts";
import { Matrix, type MatrixData } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { gramAccumulate } from "../../lib/kernels/gram.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import { obsPrepare } from "../../lib/kernels/obs.ts";
import { topk } from "../../lib/kernels/topk.ts";
import { sparseGpt } from "../../lib/sparse/sparsegpt.ts";
import {
  bf16ToHost,
  CudaRoutedExperts,
  setSp24Search,
  toDeviceBf16,
} from "../../lib/sparse/sparse_expert_cuda.ts";
import { quikMatmul, quikQuantize } from "../../lib/kernels/quik_matmul.ts";
import { randomQuikWeight } from "../_quik.ts";
import { keepNofM } from "../_prune.ts";
import { benchRouter, splitText } from "../_router.ts";

const { values } = parseArgs({
  options: {
    peers: { type: "string" },
    out: { type: "string" },
    quick: { type: "boolean" },
    // a dry run at small sizes (every row, no meaningful time): for the CUDA emulator in CI, so
    // that the script reaches a GPU lease known to run
    tiny: { type: "boolean" },
    sparse: { type: "boolean" }, // only issue 4's rows (SparseGPT, the routed layer)
    // only the routed layer, its 2:4 rows twice (default and tuned plans alternating), with the
    // time of each first product (plans made; searched when tuned)
    routed: { type: "boolean" },
    quik: { type: "boolean" }, // only the QUIK rows (issue 25)
  },
});
const lib = cuda();
const rng = new Rng(7);
const randn = (r: number, c: number) => new Matrix(r, c, rng.normalArray(r * c));

/** Wall time in ms of the last timeCuda's warm-up (prep, run, sync). */
let warmMs = 0;
/** Median device time in ms of `run`, with `prep` (untimed) before each repetition. */
function timeCuda(run: () => void, prep: () => void = () => {}, reps = 10): number {
  const t0 = performance.now();
  prep();
  run();
  cudaSync();
  warmMs = performance.now() - t0;
  const ts: number[] = [];
  for (let r = 0; r < reps; r++) {
    prep();
    cudaSync();
    run();
    ts.push(cudaSync());
  }
  ts.sort((a, b) => a - b);
  return ts[ts.length >> 1] as number;
}

interface Row {
  op: string;
  shape: string;
  ms: number;
  gflops: number;
  relErrVsCpu: number;
  cpuMs: number;
}
const rows: Row[] = [];
/** Records a row and prints it at once, so that a run cut short still shows what it measured. */
function add(row: Row): void {
  rows.push(row);
  console.error(`measured: ${row.op} | ${row.shape} | ${row.ms.toFixed(3)} ms`);
}
const quick = values.quick ?? false, tiny = values.tiny ?? false;
const N = tiny ? 128 : quick ? 1024 : 4096;

const onlyQuik = values.quik ?? false;
// the dense kernels, measured four times already (bench/gpu/RESULTS.md)
if (!values.sparse && !values.routed && !onlyQuik) {
  // matmul
  for (const transB of [false, true]) {
    const a = randn(N, N), b = randn(N, N);
    const t0 = performance.now();
    const want = matmul(a, b, { backend: "cpu", transB });
    const cpuMs = performance.now() - t0;
    const got = matmul(a, b, { backend: "cuda", transB });
    using da = DeviceBuffer.from(a.data);
    using db = DeviceBuffer.from(b.data);
    using dc = DeviceBuffer.alloc("f32", N * N);
    const ms = timeCuda(() =>
      check(lib, lib.lk_cuda_matmul_f32(da.handle, db.handle, dc.handle, N, N, N, transB ? 1 : 0))
    );
    add({
      op: transB ? "matmul A·Bᵀ f32" : "matmul A·B f32",
      shape: `${N}³`,
      ms,
      gflops: 2 * N ** 3 / ms / 1e6,
      relErrVsCpu: relativeL2Error(got.data, want.data),
      cpuMs,
    });
  }

  // Gram
  for (const acc of ["f32", "f64"] as const) {
    const R = 2 * N, x = randn(R, N);
    const mk = (): Matrix<MatrixData> => acc === "f64" ? Matrix.zeros64(N, N) : Matrix.zeros(N, N);
    const t0 = performance.now();
    const want = gramAccumulate(mk(), x, { backend: "cpu" });
    const cpuMs = performance.now() - t0;
    const got = gramAccumulate(mk(), x, { backend: "cuda" });
    using dx = DeviceBuffer.from(x.data);
    using dh = DeviceBuffer.alloc(acc, N * N);
    const fn = acc === "f64" ? lib.lk_cuda_gram_f64 : lib.lk_cuda_gram_f32;
    const ms = timeCuda(() => check(lib, fn(dx.handle, R, N, dh.handle, 1, 0)));
    add({
      op: `gram XᵀX, ${acc} H`,
      shape: `X ${R}×${N}`,
      ms,
      gflops: R * N * N / ms / 1e6,
      relErrVsCpu: relativeL2Error(got.data, want.data),
      cpuMs,
    });
  }

  // OBS preparation
  for (const n of tiny ? [N] : quick ? [1024] : [1024, 4096]) {
    const x = randn(2 * n, n);
    const h = Matrix.zeros64(n, n);
    gramAccumulate(h, x, { backend: "cuda", alpha: 1 / n, beta: 0 });
    const t0 = performance.now();
    const want = obsPrepare(h, { backend: "cpu" });
    const cpuMs = performance.now() - t0;
    const got = obsPrepare(h, { backend: "cuda" });
    using dh = DeviceBuffer.alloc("f64", n * n);
    const info = new Float64Array(2);
    const ms = timeCuda(
      () => check(lib, lib.lk_cuda_obs_prepare_f64(dh.handle, n, 0.01, 4, info, 2)),
      () => dh.upload(h.data),
      5,
    );
    // potrf n³/3 + trsm against the identity n³
    add({
      op: "obs prepare f64",
      shape: `H ${n}×${n}`,
      ms,
      gflops: (4 / 3) * n ** 3 / ms / 1e6,
      relErrVsCpu: relativeL2Error(got.u.data, want.u.data),
      cpuMs,
    });
  }
}

// SparseGPT: the column sweep alone (device-resident, against the cpu sweep on the same W and U),
// then the whole layer as a user runs it (Hessian of the calibration batches on the device, OBS
// preparation and sweep on the device, host transfers included)
if (!values.routed && !onlyQuik) {
  try {
    const n = tiny ? 256 : quick ? 1024 : 4096, seqs = tiny ? 2 : quick ? 16 : 128;
    const toks = tiny ? 64 : 512;
    const w = new Matrix(n, n, rng.normalArray(n * n, 0.02));
    const x = randn(toks, n);
    const h = Matrix.zeros64(n, n);
    gramAccumulate(h, x, { backend: "cuda", alpha: 2 / toks, beta: 0 });
    const { u } = obsPrepare(h, { backend: "cuda" });
    const w64 = Float64Array.from(w.data), all = new Uint8Array(n).fill(1);
    const cpuW = w64.slice(), cpuMask = new Uint8Array(n * n);
    const t0 = performance.now();
    const cpuLib = cpu();
    check(
      cpuLib,
      cpuLib.lk_cpu_sparsegpt_f64(
        cpuW,
        cpuW.length,
        u.data,
        u.data.length,
        n,
        n,
        0.5,
        0,
        0,
        all,
        n,
        128,
        cpuMask,
        cpuMask.length,
      ),
    );
    const cpuMs = performance.now() - t0;
    using dw = DeviceBuffer.from(w64), du = DeviceBuffer.from(u.data), dp = DeviceBuffer.from(all);
    using dm = DeviceBuffer.alloc("u8", n * n);
    const sweep = () =>
      check(
        lib,
        lib.lk_cuda_sparsegpt_f64(dw.handle, du.handle, n, n, 0.5, 0, 0, dp.handle, 128, dm.handle),
      );
    const ms = timeCuda(sweep, () => dw.upload(w64), 5);
    dw.upload(w64);
    sweep();
    const gotW = dw.download(new Float64Array(n * n)), gotMask = dm.download(new Uint8Array(n * n));
    let maskDiff = 0;
    for (let i = 0; i < gotMask.length; i++) maskDiff += gotMask[i] !== cpuMask[i] ? 1 : 0;
    console.error(
      `sparsegpt sweep ${n}: ${maskDiff} of ${n * n} mask entries differ from the cpu sweep`,
    );
    add({
      op: "sparsegpt sweep f64 50%",
      shape: `${n}×${n}`,
      ms,
      gflops: n ** 3 / ms / 1e6, // the lazy updates: about rows·cols² multiply-adds
      relErrVsCpu: relativeL2Error(gotW, cpuW),
      cpuMs,
    });
    // the whole layer: 128 batches of 512 tokens through the device Gram, then sparseGpt on cuda
    using dx = DeviceBuffer.from(x.data);
    const layer = () => {
      using dh = DeviceBuffer.alloc("f32", n * n);
      for (let s = 0; s < seqs; s++) {
        check(
          lib,
          lib.lk_cuda_gram_f32(dx.handle, toks, n, dh.handle, 2 / ((s + 1) * toks), s / (s + 1)),
        );
      }
      const hh = dh.download(new Float32Array(n * n));
      return sparseGpt(w, new Matrix(n, n, Float64Array.from(hh)), {
        sparsity: 0.5,
        backend: "cuda",
      });
    };
    layer();
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      const t1 = performance.now();
      layer();
      times.push(performance.now() - t1);
    }
    times.sort((a, b) => a - b);
    add({
      op: "sparsegpt layer 50% (Hessian + prune)",
      shape: `${n}×${n}, ${seqs}×${toks} tokens`,
      ms: times[1]!,
      gflops: (seqs * toks * n * n + n ** 3) / times[1]! / 1e6,
      relErrVsCpu: Number.NaN, // checked by the sweep row and tests/sparse on cuda
      cpuMs: Number.NaN,
    });
  } catch (e) { // a failure here must not cost the rest of the run its figures
    console.error(`sparsegpt on cuda failed: ${(e as Error).message}`);
  }
}

// The routed Sparse Expansion layer at Llama-2-70B MLP shapes (issue 4), bf16, device-resident:
// the dense layer (one cuBLAS GEMM over all tokens) against the routed layer with dense experts
// (gather per cluster, the authors' way), with 2:4 experts on the sparse tensor cores, and with
// bitmap experts (the compressed storage of unstructured experts, unpacked per expert). The 16
// experts share one weight, so the routed outputs must equal the dense product (the error column
// here is against the dense bf16 product on the GPU, not the cpu).
if (!onlyQuik) {
  try {
    const M = tiny ? 512 : quick ? 1024 : 4096, E = 16;
    // tiny: up routes by centroids (rank 8 < 16 experts), down by scores (rank 32 > 16)
    const din0 = tiny ? 256 : quick ? 2048 : 8192, dout0 = tiny ? 1024 : quick ? 7168 : 28672;
    // uniform values of unit variance from a xorshift (timing inputs: ten times faster to make than
    // normals, which took about 12 s for the 235M weights on the CPU while the GPU waited)
    let st = 0x9e3779b9;
    const fill = (n: number) => {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        st ^= st << 13;
        st ^= st >>> 17;
        st ^= st << 5;
        a[i] = ((st >>> 0) / 4294967296 - 0.5) * 3.4641;
      }
      return a;
    };
    const big = new Matrix(dout0, din0, fill(dout0 * din0));
    keepNofM(big.data as Float32Array, 2, 4);
    for (const [name, din, dout] of [["up", din0, dout0], ["down", dout0, din0]] as const) {
      const shape = `${name} ${din}→${dout}, M=${M}, ${E} experts`;
      const w = new Matrix(dout, din, big.data); // the same 2:4 values, read in this shape
      const flops = 2 * M * din * dout;
      const xh = fill(M * din);
      using dx = toDeviceBf16(xh), dw = toDeviceBf16(w.data as Float32Array);
      using dense = DeviceBuffer.alloc("bf16", M * dout), dy = DeviceBuffer.alloc("bf16", M * dout);
      using dl = DeviceBuffer.alloc("i32", M);
      const denseMs = timeCuda(() =>
        check(lib, lib.lk_cuda_matmul_bf16(dx.handle, dw.handle, dense.handle, M, din, dout, 1))
      );
      const want = bf16ToHost(dense);
      add({
        op: "routed: dense bf16 cuBLAS, all tokens",
        shape,
        ms: denseMs,
        gflops: flops / denseMs / 1e6,
        relErrVsCpu: Number.NaN,
        cpuMs: Number.NaN,
      });
      // k-means centroids on these tokens, as bench/sparse_routed_bench.ts does on the CPU
      // its own seed: the same split with and without the rows before (--sparse, --routed)
      const router = benchRouter(new Matrix(M, din, xh), E, new Rng(11));
      const experts = Array.from({ length: E }, () => w);
      const label = {
        "dense": "routed: dense experts (gather per cluster)",
        "2:4": "routed: 2:4 experts",
        "2:4 tuned": "routed: 2:4 experts, plans tuned by cusparseLtMatmulSearch",
        "bitmap": "routed: bitmap experts (unpacked per expert)",
      } as const;
      type Variant = keyof typeof label;
      const variants: Variant[] = values.routed
        ? ["dense", "2:4", "2:4 tuned", "2:4", "2:4 tuned"]
        : ["dense", "2:4", "2:4 tuned", "bitmap"];
      for (const variant of variants) {
        const storage = variant === "2:4 tuned" ? "2:4" : variant;
        let layer: CudaRoutedExperts;
        try {
          layer = new CudaRoutedExperts(router, experts, { storage });
        } catch (e) {
          console.error(`routed ${variant} ${shape}: ${(e as Error).message}`);
          continue;
        }
        using _ = layer;
        let ms: number;
        try {
          // the warm-up product makes (and, tuned, searches) each expert's plan
          setSp24Search(variant === "2:4 tuned");
          ms = timeCuda(() => layer.forwardDevice(dx, M, dy, dl));
          console.error(`routed ${variant} ${shape}: first product ${warmMs.toFixed(1)} ms`);
        } catch (e) {
          console.error(`routed ${variant} ${shape}: ${(e as Error).message}`);
          continue;
        } finally {
          setSp24Search(false);
        }
        add({
          op: label[variant],
          shape,
          ms,
          gflops: flops / ms / 1e6,
          relErrVsCpu: relativeL2Error(bf16ToHost(dy), want),
          cpuMs: Number.NaN,
        });
        console.error(
          `${shape}: routed ${variant} experts ${(denseMs / ms).toFixed(2)}× dense bf16 cuBLAS, ${
            (layer.expertBytes / 2 ** 30).toFixed(2)
          } GiB of experts, ${splitText(dl.download(new Int32Array(M)), E)}`,
        );
      }
      // one expert's product alone (M/E tokens)
      const mt = M / E;
      using xs = toDeviceBf16(fill(mt * din)), ys = DeviceBuffer.alloc("bf16", mt * dout);
      const oneDense = timeCuda(() =>
        check(lib, lib.lk_cuda_matmul_bf16(xs.handle, dw.handle, ys.handle, mt, din, dout, 1))
      );
      add({
        op: `one expert dense bf16, ${mt} tokens`,
        shape,
        ms: oneDense,
        gflops: 2 * mt * din * dout / oneDense / 1e6,
        relErrVsCpu: Number.NaN,
        cpuMs: Number.NaN,
      });
      for (const tuned of [false, true]) {
        const id = new Int32Array(1);
        try {
          check(lib, lib.lk_cuda_sp24_create(dw.handle, dout, din, id, 1));
          setSp24Search(tuned);
          const oneSparse = timeCuda(() =>
            check(lib, lib.lk_cuda_sp24_matmul(id[0]!, xs.handle, mt, ys.handle))
          );
          add({
            op: `one expert 2:4${tuned ? " tuned" : ""}, ${mt} tokens`,
            shape,
            ms: oneSparse,
            gflops: 2 * mt * din * dout / oneSparse / 1e6,
            relErrVsCpu: Number.NaN,
            cpuMs: Number.NaN,
          });
        } catch (e) {
          console.error(`one expert 2:4${tuned ? " tuned" : ""} ${shape}: ${(e as Error).message}`);
        } finally {
          setSp24Search(false);
          if (id[0]) lib.lk_cuda_sp24_free(id[0]);
        }
      }
    }
  } catch (e) {
    console.error(`routed layer on cuda failed: ${(e as Error).message}`);
  }
}

// QUIK (issue 25): the whole layer on the device — per-token quantization kernel, then the
// integer product on the tensor cores with the outliers and the epilogue — per path (int4 mma for
// 4-bit layers, int8 mma), 1/16 of the inputs as outliers; checked against the cpu kernels at 16
// tokens (where the cpu product is quick); peers: torch bf16 linear and torch._int_mm int8.
if (!values.sparse && !values.routed) {
  try {
    const shapes: [number, number][] = tiny
      ? [[96, 160]]
      : quick
      ? [[4096, 4096]]
      : [[4096, 4096], [8192, 8192], [28672, 8192], [8192, 28672]];
    for (const [out, inF] of shapes) {
      for (const bits of [4, 8]) {
        const w = randomQuikWeight(rng, out, inF, bits);
        const no = w.outliers.length, kq = inF - no;
        using dwq = DeviceBuffer.from(w.levels);
        using dws = DeviceBuffer.from(w.scales);
        using dwsum = DeviceBuffer.from(w.sums);
        using dwo = DeviceBuffer.from(w.outlierWeight);
        const isOut = new Uint8Array(inF);
        for (const c of w.outliers) isOut[c] = 1;
        const intCols = Int32Array.from({ length: inF }, (_, c) => c).filter((c) => !isOut[c]);
        using dic = DeviceBuffer.from(intCols);
        using doc = DeviceBuffer.from(w.outliers);
        for (const m of tiny ? [16] : [16, 2048, 4096]) {
          const x = randn(m, inF), kp = Math.ceil(kq / 64) * 64;
          let want: Matrix | undefined, cpuMs = NaN;
          if (m <= 16) {
            const t0 = performance.now();
            want = quikMatmul(quikQuantize(x, w.outliers, bits, { backend: "cpu" }), w, {
              backend: "cpu",
            });
            cpuMs = performance.now() - t0;
          }
          using dx = DeviceBuffer.from(x.data);
          using dxq = DeviceBuffer.alloc("u8", m * kp);
          using dxs = DeviceBuffer.alloc("f32", m);
          using dxz = DeviceBuffer.alloc("f32", m);
          using dqs = DeviceBuffer.alloc("i32", m);
          using dxo = DeviceBuffer.alloc("f32", m * no);
          using dy = DeviceBuffer.alloc("f32", m * out);
          for (const path of bits === 4 ? [4, 8] : [8]) {
            const layer = () => {
              check(
                lib,
                lib.lk_cuda_quik_quantize_f32(
                  dx.handle,
                  dic.handle,
                  doc.handle,
                  dxq.handle,
                  dxs.handle,
                  dxz.handle,
                  dqs.handle,
                  dxo.handle,
                  m,
                  inF,
                  no,
                  bits,
                ),
              );
              check(
                lib,
                lib.lk_cuda_quik_matmul_f32(
                  dxq.handle,
                  dxs.handle,
                  dxz.handle,
                  dxo.handle,
                  dwq.handle,
                  dws.handle,
                  dwsum.handle,
                  dwo.handle,
                  dy.handle,
                  -1,
                  m,
                  kq,
                  no,
                  out,
                  bits,
                  path,
                ),
              );
            };
            layer();
            const got = new Float32Array(m * out);
            dy.download(got);
            const ms = timeCuda(layer, () => {}, m >= 2048 ? 3 : 10);
            add({
              op: `QUIK W${bits}A${bits} layer, ${path === 4 ? "int4" : "int8"} mma`,
              shape: `${m}×${inF}→${out}, ${no} outliers`,
              ms,
              gflops: 2 * m * inF * out / ms / 1e6,
              relErrVsCpu: want ? relativeL2Error(got, want.data) : NaN,
              cpuMs,
            });
          }
        }
      }
    }
  } catch (e) {
    console.error(`QUIK on cuda failed: ${(e as Error).message}`);
  }
}

if (!values.sparse && !values.routed && !onlyQuik) {
  // top-k
  const wide = tiny ? 1 << 15 : quick ? 1 << 20 : 1 << 24; // ≥ 16384: the many-blocks path
  for (const [r, c, frac] of [[N, N, 0.1], [1, wide, 0.01]] as const) {
    const x = randn(r, c), k = Math.max(1, Math.round(c * frac));
    const t0 = performance.now();
    const want = topk(x, k, { backend: "cpu" });
    const cpuMs = performance.now() - t0;
    const got = topk(x, k, { backend: "cuda" });
    let mismatches = 0;
    for (let i = 0; i < want.indices.length; i++) {
      mismatches += want.indices[i] !== got.indices[i] ? 1 : 0;
    }
    using dx = DeviceBuffer.from(x.data);
    using di = DeviceBuffer.alloc("i32", r * k);
    using dv = DeviceBuffer.alloc("f32", r * k);
    using dt = DeviceBuffer.alloc("f32", r);
    const ms = timeCuda(() =>
      check(lib, lib.lk_cuda_topk_f32(dx.handle, r, c, k, 1, di.handle, dv.handle, dt.handle))
    );
    add({
      op: "top-k |x| (index mismatches as error)",
      shape: `${r}×${c}, k=${k}`,
      ms,
      gflops: r * c * 4 / ms / 1e6,
      relErrVsCpu: mismatches,
      cpuMs,
    });
  }
}

const peers: Record<string, number> = values.peers
  ? JSON.parse(await Deno.readTextFile(values.peers))
  : {};
const peerKey = (r: Row) => `${r.op}|${r.shape}`;
const lines = [
  `device: ${JSON.stringify(libraryInfo(lib))}`,
  "",
  "| op | shape | lmkit cuda ms | GFLOP/s (top-k: GB/s) | PyTorch ms | torch/lmkit | error vs cpu | cpu backend ms |",
  "|---|---|---|---|---|---|---|---|",
  ...rows.map((r) => {
    const p = peers[peerKey(r)];
    return `| ${r.op} | ${r.shape} | ${r.ms.toFixed(3)} | ${r.gflops.toFixed(0)} | ${
      p ? p.toFixed(3) : "—"
    } | ${p ? (p / r.ms).toFixed(2) : "—"} | ${
      Number.isNaN(r.relErrVsCpu) ? "—" : r.relErrVsCpu.toExponential(1)
    } | ${Number.isNaN(r.cpuMs) ? "—" : r.cpuMs.toFixed(0)} |`;
  }),
];
const matched = new Set(rows.map(peerKey));
const peerOnly = Object.entries(peers).filter(([k]) => !matched.has(k));
if (peerOnly.length) {
  lines.push(
    "",
    "PyTorch only (no lmkit kernel yet):",
    "",
    "| op | shape | PyTorch ms |",
    "|---|---|---|",
  );
  for (const [k, ms] of peerOnly) {
    const [op, shape] = k.split("|");
    lines.push(`| ${op} | ${shape} | ${ms.toFixed(3)} |`);
  }
}
// QUIK against its peers (goals: ≥ 1.6× bf16 and ≥ 85 % of the int8 GEMM alone at 2048–4096)
const quikRows = rows.filter((r) => r.op.startsWith("QUIK"));
if (quikRows.length) {
  lines.push(
    "",
    "| QUIK row | shape | ms | torch bf16 ms | bf16 / QUIK | torch int8 GEMM ms | int8 GEMM / QUIK |",
    "|---|---|---|---|---|---|---|",
  );
  for (const r of quikRows) {
    const key = r.shape.replace(/, \d+ outliers$/, "");
    const bf = peers[`torch bf16 linear|${key}`], i8 = peers[`torch int8 _int_mm|${key}`];
    lines.push(
      `| ${r.op} | ${r.shape} | ${r.ms.toFixed(3)} | ${bf ? bf.toFixed(3) : "—"} | ${
        bf ? (bf / r.ms).toFixed(2) : "—"
      } | ${i8 ? i8.toFixed(3) : "—"} | ${i8 ? (i8 / r.ms).toFixed(2) : "—"} |`,
    );
  }
}
if (values.out) await Deno.writeTextFile(values.out, JSON.stringify({ rows, peers }, null, 2));
console.log(lines.join("\n"));
