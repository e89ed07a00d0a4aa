// The C library checks every shape and buffer length itself, before touching memory, and reports
// through lk_last_error (the TypeScript wrappers check too; these calls bypass them).
import { assert, assertEquals } from "@std/assert";
import { cpu } from "../../ffi/mod.ts";

const lib = cpu();
function lastError(): string {
  const buf = new Uint8Array(512);
  lib.lk_last_error(buf, buf.length);
  return new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
}
function expectFail(status: number, code: number, msg: string): void {
  assertEquals(status, code, `expected status ${code}, got ${status} (${lastError()})`);
  assertEquals(lastError(), msg);
}

Deno.test("C gram: short buffers, negative sizes and non-finite scales are refused", () => {
  const x = new Float32Array(6), h = new Float32Array(9), hd = new Float64Array(9);
  expectFail(
    lib.lk_cpu_gram_f32(x, 6, 2, 3, h, 8, 1, 0),
    1,
    "lk_cpu_gram_f32: buffer h holds 8 elements, expected at least 9",
  );
  expectFail(
    lib.lk_cpu_gram_f64(x, 5, 2, 3, hd, 9, 1, 0),
    1,
    "lk_cpu_gram_f64: buffer x holds 5 elements, expected at least 6",
  );
  expectFail(
    lib.lk_cpu_gram_f32(x, 6, -2, 3, h, 9, 1, 0),
    1,
    "lk_cpu_gram_f32: rows=-2 n=3, expected >= 0",
  );
  expectFail(
    lib.lk_cpu_gram_f64(x, 6, 2, 3, hd, 9, NaN, 0),
    2,
    "lk_cpu_gram_f64: alpha=nan beta=0, expected finite numbers",
  );
  assertEquals(lib.lk_cpu_gram_f64(x, 6, 2, 3, hd, 9, 1, 0), 0);
});

Deno.test("C OBS prepare: size, buffer, damping and tries are checked", () => {
  const h = new Float64Array([4, 0, 0, 1]), info = new Float64Array(2);
  expectFail(
    lib.lk_cpu_obs_prepare_f64(h, 4, 0, 0.01, 4, info, 2),
    1,
    "lk_cpu_obs_prepare_f64: n=0, expected >= 1",
  );
  expectFail(
    lib.lk_cpu_obs_prepare_f64(h, 3, 2, 0.01, 4, info, 2),
    1,
    "lk_cpu_obs_prepare_f64: buffer h holds 3 elements, expected at least 4",
  );
  expectFail(
    lib.lk_cpu_obs_prepare_f64(h, 4, 2, 0.01, 4, info, 1),
    1,
    "lk_cpu_obs_prepare_f64: buffer info holds 1 elements, expected at least 2",
  );
  expectFail(
    lib.lk_cpu_obs_prepare_f64(h, 4, 2, -1, 4, info, 2),
    2,
    "lk_cpu_obs_prepare_f64: percdamp=-1, expected a finite number >= 0",
  );
  expectFail(
    lib.lk_cpu_obs_prepare_f64(h, 4, 2, 0.01, 0, info, 2),
    2,
    "lk_cpu_obs_prepare_f64: max_tries=0, expected >= 1",
  );
  assertEquals(lib.lk_cpu_obs_prepare_f64(h, 4, 2, 0, 1, info, 2), 0);
  assertEquals(Array.from(h, (v) => v + 0), [0.5, 0, 0, 1]); // U of diag(4, 1)⁻¹ (−0 counts as 0)
});

Deno.test("C top-k and threshold: k range and every output buffer are checked", () => {
  const x = new Float32Array(6),
    idx = new Int32Array(4),
    val = new Float32Array(4),
    thr = new Float32Array(2);
  expectFail(
    lib.lk_cpu_topk_f32(x, 6, 2, 3, 4, 1, idx, 4, val, 4, thr, 2),
    2,
    "lk_cpu_topk_f32: k=4, expected 1 <= k <= cols=3",
  );
  expectFail(
    lib.lk_cpu_topk_f32(x, 6, 2, 3, 2, 1, idx, 3, val, 4, thr, 2),
    1,
    "lk_cpu_topk_f32: buffer idx holds 3 elements, expected at least 4",
  );
  expectFail(
    lib.lk_cpu_topk_f32(x, 6, 2, 3, 2, 1, idx, 4, val, 4, thr, 1),
    1,
    "lk_cpu_topk_f32: buffer thr holds 1 elements, expected at least 2",
  );
  const mask = new Uint8Array(6), count = new Int32Array(2);
  expectFail(
    lib.lk_cpu_threshold_f32(x, 6, 2, 3, thr, 2, 1, mask, 5, count, 2),
    1,
    "lk_cpu_threshold_f32: buffer mask holds 5 elements, expected at least 6",
  );
  expectFail(
    lib.lk_cpu_threshold_f32(x, 6, 2, 3, thr, 2, 1, mask, 6, count, 1.5),
    1,
    "lk_cpu_threshold_f32: buffer count length 1.5 is not a whole number of elements",
  );
  assertEquals(lib.lk_cpu_threshold_f32(x, 6, 2, 3, thr, 2, 1, mask, 6, count, 2), 0);
  expectFail(lib.lk_cpu_set_blas(3), 2, "lk_cpu_set_blas: mode 3, expected 0 or 1");
});

Deno.test("C SparseGPT sweep: pattern, block, buffers and U's diagonal are checked", () => {
  const rows = 2, cols = 8, w = new Float64Array(rows * cols), u = new Float64Array(cols * cols);
  for (let j = 0; j < cols; j++) u[j * cols + j] = 1;
  const p = new Uint8Array(rows).fill(1), mask = new Uint8Array(rows * cols);
  const run = (
    o: { s?: number; n?: number; m?: number; block?: number; maskLen?: number; uu?: Float64Array },
  ) =>
    lib.lk_cpu_sparsegpt_f64(
      w,
      w.length,
      o.uu ?? u,
      u.length,
      rows,
      cols,
      o.s ?? 0,
      o.n ?? 0,
      o.m ?? 0,
      p,
      p.length,
      o.block ?? 4,
      mask,
      o.maskLen ?? mask.length,
    );
  expectFail(
    run({ n: 2, m: 4, block: 6 }),
    2,
    "lk_cpu_sparsegpt_f64: block=6 is not a multiple of M=4 (an N:M group must lie in one block)",
  );
  expectFail(
    run({ n: 2, m: 3 }),
    1,
    "lk_cpu_sparsegpt_f64: N:M 2:3 needs N < M and M dividing cols=8",
  );
  expectFail(run({ s: 1 }), 2, "lk_cpu_sparsegpt_f64: sparsity 1 is outside (0, 1)");
  expectFail(run({ s: 0.5, block: 0 }), 2, "lk_cpu_sparsegpt_f64: block=0, expected >= 1");
  expectFail(
    run({ s: 0.5, maskLen: 15 }),
    1,
    "lk_cpu_sparsegpt_f64: buffer mask holds 15 elements, expected at least 16",
  );
  const bad = Float64Array.from(u);
  bad[3 * cols + 3] = NaN;
  expectFail(
    run({ s: 0.5, uu: bad }),
    3,
    "lk_cpu_sparsegpt_f64: U[3,3] = nan, expected a positive diagonal",
  );
  assertEquals(run({ n: 2, m: 4, block: 4 }), 0);
  assertEquals(mask.reduce((a, b) => a + b, 0), rows * cols / 2);
});

Deno.test("LMKIT_CPU_BUILD names a cpu-* build of the C library, or fails in one sentence", async () => {
  const load = async (value: string) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "import { cpuLibrary } from './ffi/mod.ts'; console.log(cpuLibrary().reason);",
      ],
      cwd: new URL("../../", import.meta.url).pathname,
      env: { LMKIT_CPU_BUILD: value, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const bad = await load("../elsewhere");
  assertEquals(bad.code, 1);
  assert(
    bad.stderr.includes(
      "LMKIT_CPU_BUILD '../elsewhere' is not a folder name of the form cpu-NAME",
    ),
    bad.stderr,
  );
  const missing = await load("cpu-never-built");
  assertEquals(missing.code, 0, missing.stderr);
  assert(
    /cpu-never-built\/liblmkit_cpu\.so' is not built \(run `bash ffi\/cpu\/avx2_check\.sh`\)/
      .test(missing.stdout),
    missing.stdout,
  );
});

Deno.test("C sizes near INT32_MAX: no overflowed index, no overflowed number in a message", () => {
  // spmm.c computed the block count (n + br − 1)/br in int32 and then read blk_ptr[nblk] at a
  // negative index (a segfault with m = 0, n = 2³¹ − 1)
  const x = new Float32Array(0), y = new Float32Array(0), bp = new Int32Array(2);
  expectFail(
    lib.lk_cpu_bsc_matmul_f32(
      x,
      0,
      bp,
      2,
      new Uint16Array(0),
      0,
      new Uint8Array(0),
      0,
      new Float32Array(0),
      0,
      y,
      0,
      0,
      1,
      2147483647,
      4,
    ),
    1,
    "lk_cpu_bsc_matmul_f32: buffer blk_ptr holds 2 elements, expected at least 536870913",
  );
  // attention formatted start + t in int32 (UBSan: signed overflow)
  const q = new Float32Array(8), kv = new Float32Array(64);
  expectFail(
    lib.lk_cpu_attention_f32(q, 8, kv, 64, kv, 64, q, 8, 2, 2147483647, 1, 1, 4, 16),
    1,
    "lk_cpu_attention_f32: positions up to 2147483649 exceed the cache capacity 16",
  );
});

Deno.test("C OBS prepare stops raising the damping once it overflows to infinity", () => {
  // a matrix no damping can make positive definite (a negative mean diagonal: λ = percdamp·mean
  // only pushes it further), with a damping that overflows after a few tenfold steps: the message
  // lists only the finite dampings tried
  const h = new Float64Array([-4, 0, 0, -1]), info = new Float64Array(2);
  const st = lib.lk_cpu_obs_prepare_f64(h, 4, 2, 1e300, 20, info, 2);
  assertEquals(st, 3, lastError());
  const msg = lastError();
  assert(msg.includes("1e+300, 1e+301") && !/inf/.test(msg.split("(")[0]!), msg);
});
