#!/usr/bin/env -S deno run --no-prompt --allow-read --allow-write=ffi/build --allow-run
// Do the cuda tests catch bugs in the CUDA code? Each entry below is a plausible bug, seeded into
// a copy of ffi/cuda/lmkit_cuda.cu (the original is never touched); the copy is built into
// ffi/build/emu-seeded/ and the cuda tests that should notice run on it (LMKIT_CUDA_EMU=emu-seeded).
// Prints one line per bug, caught or missed, and exits 1 if any was missed or no longer applies
// (the source it alters has changed: update the entry). About 1.5 minutes on two cores.
//
//   deno task cuda-seeded-bugs [-- NAME...]   (NAME: part of a bug's name, to run only those)

interface Bug {
  name: string;
  /** text of lmkit_cuda.cu to replace (must occur), and its replacement */
  from: string;
  to: string;
  /** test files, and the filter of test names (default "cuda") */
  tests: string[];
  filter?: string;
  /** a race the fixed schedule hides: run under ThreadSanitizer (ffi/emu/race_check.sh) */
  tsan?: boolean;
}

const TOPK = ["tests/kernels/topk_test.ts"], EXPERT = ["tests/sparse/sparse_expert_cuda_test.ts"];
const GRAM = ["tests/kernels/gram_test.ts"], SGPT = ["tests/sparse/sparsegpt_test.ts"];
const BUGS: Bug[] = [
  {
    name: "2:4 tuning: a search's choice never reused",
    from: "q.tuned = sp24_search && sp24_apply_tuned(s, m, layout, q.alg),",
    to: "q.tuned = false,",
    tests: EXPERT,
    filter: "tuning",
  },
  {
    name: "2:4 tuning: a reused choice marked but never given to the plan",
    from: "if (L.alg_set(L.h, alg, sp24_attrs[i], &value[i], sizeof(int))) return false;",
    to: "(void)i;",
    tests: EXPERT,
    filter: "tuning",
  },
  { // the bug the first H200 run found (stop 17): every 2:4 weight refused
    name: "cuSPARSELt's prune-check flag never zeroed",
    from: "cudaMalloc(&valid, sizeof(int)) || cudaMemset(valid, 0, sizeof(int))",
    to: "cudaMalloc(&valid, sizeof(int))",
    tests: EXPERT,
    filter: "2:4",
  },
  {
    name: "bitmap warp scan adds lanes below s",
    from: "if (lane >= s) inc += t;",
    to: "inc += t;",
    tests: EXPERT,
  },
  {
    name: "syrk given a leading dimension one too large",
    from: "(const float*)x, n, &b, (float*)h, n);",
    to: "(const float*)x, n + 1, &b, (float*)h, n);",
    tests: GRAM,
  },
  {
    name: "Gram's upper triangle never mirrored",
    from: "if (!st) mirror_lower_cm<float><<<",
    to: "if (0) mirror_lower_cm<float><<<",
    tests: GRAM,
  },
  {
    name: "top-k: no barrier between two scans on one TempStorage",
    from: "    Scan(scan_tmp).ExclusiveSum(tie, tie_rank, tie_total);\n    __syncthreads();",
    to: "    Scan(scan_tmp).ExclusiveSum(tie, tie_rank, tie_total);",
    tests: TOPK,
  },
  {
    name: "top-k: histogram read before it is cleared everywhere",
    from:
      "    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;\n    __syncthreads();",
    to: "    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;",
    tests: TOPK,
  },
  {
    name: "top-k: shared prefix and mask never initialised",
    from: "    s_prefix = 0;\n    s_mask = 0;\n    s_remaining = k;",
    to: "    s_remaining = k;",
    tests: TOPK,
  },
  {
    name: "threshold: shared count never zeroed",
    from: "if (threadIdx.x == 0) total = 0;",
    to: "",
    tests: TOPK,
  },
  {
    name: "wide top-k: no barrier between the two block scans",
    from: "    Scan(tmp).ExclusiveSum(va, ea, sa);\n    __syncthreads();",
    to: "    Scan(tmp).ExclusiveSum(va, ea, sa);",
    tests: TOPK,
  },
  {
    name: "wide top-k: no barrier between the two block reductions",
    from: "  int sa = Reduce(tmp).Sum(a);\n  __syncthreads();",
    to: "  int sa = Reduce(tmp).Sum(a);",
    tests: TOPK,
  },
  {
    name: "wide top-k: every earlier tie counted in a block's offset",
    from: "s_out = above_before[b] + min(ties_before[b], need);",
    to: "s_out = above_before[b] + ties_before[b];",
    tests: TOPK,
  },
  {
    name: "wide top-k: histogram cleared while thread 0 may still read it (race)",
    from: "    s.remaining = rem;\n    st[row] = s;\n  }\n  __syncthreads();",
    to: "    s.remaining = rem;\n    st[row] = s;\n  }",
    tests: TOPK,
    filter: "wide rows",
    tsan: true,
  },
  {
    name: "gather without the zero padding rows",
    from: "xs[t] = i < m ? x[(size_t)rows[i] * d + t % d] : __float2bfloat16(0.0f);",
    to: "xs[t] = x[(size_t)rows[i] * d + t % d];",
    tests: EXPERT,
  },
  {
    name: "f32 → bf16 conversion runs 64 elements past the end",
    from: "i < n; i += (size_t)gridDim.x * blockDim.x)\n    y[i] = __float2bfloat16(x[i]);",
    to: "i < n + 64; i += (size_t)gridDim.x * blockDim.x)\n    y[i] = __float2bfloat16(x[i]);",
    tests: EXPERT,
  },
  {
    name: "bf16 → f32 conversion writes one element past the end",
    from: "i < n; i += (size_t)gridDim.x * blockDim.x)\n    y[i] = __bfloat162float(x[i]);",
    to: "i <= n; i += (size_t)gridDim.x * blockDim.x)\n    y[i] = __bfloat162float(x[i]);",
    tests: EXPERT,
  },
  {
    name: "Cholesky of the wrong triangle",
    from: "if (B.potrf(B.sh, CUBLAS_FILL_UPPER, n, work",
    to: "if (B.potrf(B.sh, CUBLAS_FILL_LOWER, n, work",
    tests: ["tests/kernels/obs_test.ts"],
  },
  {
    name: "SparseGPT lazy update reads U at the transposed offset",
    from: "u + (size_t)i1 * cols + i2,",
    to: "u + (size_t)i2 * cols + i1,",
    tests: SGPT,
  },
  {
    name: "SparseGPT N:M ties go to the higher index",
    from: "(sc[idx[b]] == sc[t] && idx[b] > t)",
    to: "(sc[idx[b]] == sc[t] && idx[b] < t)",
    tests: SGPT,
  },
  {
    name: "SparseGPT block threshold one rank too high",
    from: "k = (size_t)floor((double)(live * count) * sparsity);",
    to: "k = (size_t)floor((double)(live * count) * sparsity) + 1;",
    tests: SGPT,
  },
  {
    name: "transpose-scatter reads its tile untransposed",
    from: "y[(size_t)(rows ? rows[i] : i) * n + j] = tile[threadIdx.x][t];",
    to: "y[(size_t)(rows ? rows[i] : i) * n + j] = tile[t][threadIdx.x];",
    tests: EXPERT,
  },
  {
    name: "2:4 product describes row-major X as column-major",
    from: "L.dense(L.h, q.xd, m, s->k, s->k, 16, CUDA_R_16BF, LT_ORDER_ROW)",
    to: "L.dense(L.h, q.xd, m, s->k, s->k, 16, CUDA_R_16BF, LT_ORDER_COL)",
    tests: EXPERT,
  },
  {
    name: "routed layer: per-cluster cursors not zeroed",
    from: "cudaMemset(counts, 0, sizeof(int) * 3 * (size_t)e)",
    to: "cudaMemset(counts, 0, sizeof(int) * 1 * (size_t)e)",
    tests: EXPERT,
  },
  {
    name: "bitmap unpacking: 16-byte stores on rows that are only 8-byte aligned",
    from: "if ((cols & 7) == 0) {",
    to: "if ((cols & 3) == 0) {",
    tests: EXPERT,
  },
];

const root = new URL("../../", import.meta.url).pathname;
const dec = new TextDecoder();
/** ThreadSanitizer's runtime, or "" where it is not installed. */
async function libtsan(): Promise<string> {
  const r = await new Deno.Command("c++", {
    args: ["-print-file-name=libtsan.so"],
    stdout: "piped",
  })
    .output().catch(() => null);
  if (!r?.success) return "";
  try {
    return await Deno.realPath(dec.decode(r.stdout).trim());
  } catch {
    return "";
  }
}
const tsan = await libtsan();
const out = `${root}ffi/build/emu-seeded`, src = `${out}/src`;
const original = await Deno.readTextFile(`${root}ffi/cuda/lmkit_cuda.cu`);
const only = Deno.args[0] === "--" ? Deno.args.slice(1) : Deno.args; // `deno task … -- NAME`
if (only.includes("-h") || only.includes("--help")) {
  console.log(
    `seeded_bugs.ts — do the cuda tests catch ${BUGS.length} seeded CUDA bugs on the emulator?

Usage: deno task cuda-seeded-bugs [-- NAME...]

  NAME        run only the bugs whose name contains it (several allowed)
  -h, --help  this text

Each bug is seeded into a copy of ffi/cuda/lmkit_cuda.cu, built into ffi/build/emu-seeded/ (under
ThreadSanitizer for races) and checked against the cuda tests that should notice; one line per
bug as it finishes. Exit 1 if a bug is missed or its entry no longer applies.`,
  );
  Deno.exit(0);
}
const chosen = BUGS.filter((b) => !only.length || only.some((o) => b.name.includes(o)));
if (!chosen.length) {
  console.error(`No seeded bug's name contains ${only.map((o) => `'${o}'`).join(" or ")}`);
  Deno.exit(2);
}
let bad = 0;
for (const bug of chosen) {
  const at = original.indexOf(bug.from);
  if (at < 0 || original.indexOf(bug.from, at + 1) >= 0) {
    console.log(`stale   ${bug.name}: the text it alters is ${at < 0 ? "gone" : "not unique"}`);
    bad++;
    continue;
  }
  await Deno.mkdir(src, { recursive: true });
  await Deno.writeTextFile(`${src}/lmkit_cuda.cu`, original.replace(bug.from, bug.to));
  if (bug.tsan && !tsan) {
    console.log(`skipped ${bug.name}: ThreadSanitizer's runtime (libtsan) is not installed`);
    continue;
  }
  const build = await new Deno.Command("bash", {
    args: [`${root}ffi/emu/build.sh`, "--force", out, src],
    env: bug.tsan ? { EMU_SANITIZE: "thread" } : {},
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!build.success) {
    console.log(`nobuild ${bug.name}: ${dec.decode(build.stderr).slice(-300)}`);
    bad++;
    continue;
  }
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--no-prompt",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi=ffi/build",
      "--allow-run",
      "--filter",
      bug.filter ?? "cuda",
      ...bug.tests,
    ],
    cwd: root,
    env: {
      LMKIT_CUDA_EMU: "emu-seeded",
      NO_COLOR: "1",
      ...(bug.tsan
        ? {
          LD_PRELOAD: tsan,
          LD_LIBRARY_PATH: out, // TSan's dlopen interceptor hides the library's $ORIGIN
          TSAN_OPTIONS: "ignore_noninstrumented_modules=1 halt_on_error=1 exitcode=66",
        }
        : {}),
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = dec.decode(run.stdout) + dec.decode(run.stderr);
  const why = text.split("\n").find((l) =>
    l.startsWith("cuda emulator:") || l.startsWith("WARNING: ThreadSanitizer")
  ) ?? "";
  if (run.success) {
    bad++;
  }
  console.log(`${run.success ? "MISSED " : "caught "} ${bug.name}${why ? `  (${why})` : ""}`);
}
await Deno.remove(out, { recursive: true }).catch(() => {});
console.log(bad ? `${bad} seeded bug(s) missed or stale` : "every seeded bug was caught");
Deno.exit(bad ? 1 : 0);
