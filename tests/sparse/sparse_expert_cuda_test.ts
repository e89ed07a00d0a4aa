// The routed expert layer on the GPU (skipped without one): 2:4 experts through cuSPARSELt,
// bitmap experts unpacked per expert and dense bf16 experts through cuBLAS against the cpu layer
// on fresh random weights, with tokens drawn near the centroids so that routing is unambiguous; a
// 2:4 product alone at awkward token counts; a weight that is not 2:4 fails with one sentence; the
// bitmap unpacking bit for bit against the host's at awkward shapes, and bitmaps whose bits and
// offsets disagree fail with one sentence.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { check, cuda, cudaEmulated, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { relativeL2Error } from "../../lib/core/numeric.ts";
import type { Matrix } from "../../lib/core/matrix.ts";
import { Rng } from "../../lib/core/rng.ts";
import { matmul } from "../../lib/kernels/matmul.ts";
import type { Router } from "../../lib/sparse/router.ts";
import { routeTokens } from "../../lib/sparse/router.ts";
import {
  bf16ToHost,
  CudaRoutedExperts,
  expertStorage,
  setSp24Search,
  toDeviceBf16,
} from "../../lib/sparse/sparse_expert_cuda.ts";
import { SparseExpertLinear } from "../../lib/sparse/sparse_expert.ts";
import { compressWeight } from "../../lib/kernels/sparse_weight.ts";
import { bitmapFromDense, bitmapToDense } from "../../lib/kernels/spmm_bitmap.ts";
import { freshSeed, NATIVE, randn } from "../_util.ts";

const ignore = NATIVE.find((b) => b.backend === "cuda")!.ignore;

/** A random 2:4 weight (two random positions kept in every group of four columns). */
function random24(rng: Rng, rows: number, cols: number): Matrix {
  const w = randn(rng, rows, cols);
  for (let i = 0; i < w.data.length; i += 4) {
    const a = Math.floor(rng.uniform() * 4), b = (a + 1 + Math.floor(rng.uniform() * 3)) % 4;
    for (let j = 0; j < 4; j++) if (j !== a && j !== b) w.data[i + j] = 0;
  }
  return w;
}

/** A router with well-separated centroids and tokens drawn close to them. */
function clustered(rng: Rng, d: number, rank: number, k: number, m: number) {
  const components = new Float64Array(rank * d);
  for (let j = 0; j < rank; j++) components[j * d + j] = 1; // the first `rank` coordinates
  const centroids = Float64Array.from({ length: k * rank }, () => 8 * rng.normal());
  const router: Router = { mean: new Float64Array(d), components, centroids, dim: d, rank, k };
  const x = randn(rng, m, d);
  for (let t = 0; t < m; t++) {
    const c = t % k;
    for (let j = 0; j < rank; j++) {
      x.data[t * d + j] = centroids[c * rank + j]! + 0.1 * x.data[t * d + j]!;
    }
  }
  return { router, x };
}

Deno.test("expert storage on the GPU: 2:4 read from every stored form, checked when asked for", () => {
  const seed = freshSeed(), rng = new Rng(seed), at = `seed ${seed}`;
  const a = random24(rng, 64, 96), b = random24(rng, 64, 96);
  for (
    const forms of [
      [a, b],
      [compressWeight(a, { format: "nm", nm: { n: 2, m: 4 } }), compressWeight(b)],
      [compressWeight(a, { format: "bitmap" }), compressWeight(b, { format: "block-sparse" })],
      [compressWeight(a, { format: "csr" }), b],
    ]
  ) {
    assertEquals(expertStorage(forms), "2:4", at);
    assertEquals(expertStorage(forms, "dense"), "dense", at);
    assertEquals(expertStorage(forms, "bitmap"), "bitmap", at);
  }
  // a third nonzero in one group of four: bitmap by default, a clear refusal when 2:4 is asked
  const c = random24(rng, 64, 96);
  const g = 4 * Math.floor(rng.uniform() * (c.data.length / 4));
  c.data.fill(1, g, g + 3);
  assertEquals(expertStorage([a, c]), "bitmap", at);
  assertThrows(() => expertStorage([a, c], "2:4"), RangeError, "Expert 1 is not 2:4");
  assertThrows(
    () => expertStorage([compressWeight(a), compressWeight(c, { format: "bitmap" })], "2:4"),
    RangeError,
    "Expert 1 is not 2:4",
  );
  // 2:4 but 48 rows: not a cuSPARSELt shape
  const d = random24(rng, 48, 96);
  assertEquals(expertStorage([d]), "bitmap", at);
  assertThrows(() => expertStorage([d], "2:4"), ShapeError, "multiples of 32, got 48×96");
  assertThrows(
    () => expertStorage([a], "csr" as unknown as "dense"),
    RangeError,
    "Unknown expert storage 'csr'",
  );
  assertThrows(() => expertStorage([]), ShapeError, "No experts given");
});

Deno.test({
  name:
    "cuda routed layer: 2:4 experts on the sparse tensor cores, bitmap and dense bf16 experts equal the cpu layer",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed);
    const d = 256, n = 96, k = 4;
    // rank 8 > k: the router runs as k linear scores; rank 3 < k: projection and centroids
    for (const [m, rank] of [[1, 8], [37, 3], [300, 8], [300, 3]] as const) {
      const { router, x } = clustered(rng, d, rank, k, m);
      for (
        const [structured, storage] of [[true, "2:4"], [false, "bitmap"], [false, "dense"]] as const
      ) {
        const experts = Array.from({ length: k }, () => {
          if (structured) return random24(rng, n, d);
          const w = randn(rng, n, d);
          for (let i = 0; i < w.data.length; i++) if (rng.uniform() < 0.6) w.data[i] = 0;
          return w;
        });
        const cpu = new SparseExpertLinear(router, experts.map((w) => compressWeight(w)), "cpu");
        using gpu = new CudaRoutedExperts(
          router,
          experts,
          storage === "dense" ? { storage } : {},
        );
        assertEquals(gpu.storage, storage);
        const got = gpu.forward(x), want = cpu.forward(x);
        const at = `seed ${seed} m=${m} rank=${rank} ${storage}`;
        assertEquals(Array.from(got.labels), Array.from(routeTokens(router, x)), at);
        const err = relativeL2Error(got.y.data, want.data);
        assert(err < 2e-2, `${at}: relative error ${err}`);
        using layer = new SparseExpertLinear(router, experts.map((w) => compressWeight(w)), "cuda");
        assert(relativeL2Error(layer.forward(x).data, want.data) < 2e-2, at);
      }
    }
    // the score form (no centroids) needs one score row per cluster
    const lib = cuda(), zeros = (n: number) => new Float32Array(n);
    using bx = toDeviceBf16(zeros(2 * 64)), bc = toDeviceBf16(zeros(3 * 64));
    using bw = toDeviceBf16(zeros(32 * 64)), bz = DeviceBuffer.from(zeros(3));
    using by = DeviceBuffer.alloc("bf16", 2 * 32), bl = DeviceBuffer.alloc("i32", 2);
    const experts = Int32Array.from({ length: 4 }, () => bw.handle);
    assertThrows(
      () =>
        check(
          lib,
          lib.lk_cuda_routed_bf16(
            bx.handle,
            2,
            64,
            bc.handle,
            3,
            bz.handle,
            0,
            4,
            experts,
            4,
            0,
            32,
            by.handle,
            bl.handle,
          ),
        ),
      Error,
      "without centroids the 3 components must be the 4 clusters' score weights",
    );
  },
});

Deno.test({
  name:
    "cuda 2:4 product equals the dense product at awkward token counts; a weight that is not 2:4 fails",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cuda();
    const n = 64, k = 128, w = random24(rng, n, k);
    using wb = toDeviceBf16(w.data as Float32Array);
    const id = new Int32Array(1);
    check(lib, lib.lk_cuda_sp24_create(wb.handle, n, k, id, 1));
    try {
      // 300 and 520 tokens: plans tuned by cusparseLtMatmulSearch, then back to the default
      for (const m of [1, 3, 17, 129, 300, 520]) {
        setSp24Search(m >= 300 && m < 500);
        const x = randn(rng, m, k);
        using xb = toDeviceBf16(x.data as Float32Array), yb = DeviceBuffer.alloc("bf16", m * n);
        check(lib, lib.lk_cuda_sp24_matmul(id[0]!, xb.handle, m, yb.handle));
        const got = bf16ToHost(yb);
        const want = matmul(x, w, { transB: true, backend: "cpu" });
        const err = relativeL2Error(got, want.data);
        assert(err < 2e-2, `seed ${seed} m=${m}: relative error ${err}`);
      }
    } finally {
      setSp24Search(false);
      lib.lk_cuda_sp24_free(id[0]!);
    }
    assertThrows(() => check(lib, lib.lk_cuda_sp24_set_search(2)), RangeError, "expected 0 or 1");
    const dense = randn(rng, n, k);
    using db = toDeviceBf16(dense.data as Float32Array);
    assertThrows(
      () => check(lib, lib.lk_cuda_sp24_create(db.handle, n, k, id, 1)),
      Error,
      "not 2:4 sparse",
    );
    assertThrows(
      () => check(lib, lib.lk_cuda_sp24_create(db.handle, n, 100, id, 1)),
      Error,
      "multiples of 32",
    );
  },
});

Deno.test({
  name:
    "cuda 2:4 tuning (emulator only): one search per problem, its choice reused by the next weight of the same shape",
  ignore: ignore || !cudaEmulated(),
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cuda();
    const emu = Deno.env.get("LMKIT_CUDA_EMU") === "1" ? "emu" : Deno.env.get("LMKIT_CUDA_EMU");
    // the mock cuSPARSELt the library loaded (the same file, so the same instance) counts searches
    const lt = Deno.dlopen(
      new URL(`../../ffi/build/${emu}/libcusparseLt.so.0`, import.meta.url).pathname,
      {
        emu_lt_searches: { parameters: [], result: "i32" },
        emu_lt_last_config: { parameters: [], result: "i32" }, // the mock's search picks config 2
      },
    );
    // shapes no other test uses: the choices are kept for the whole process
    const k = 160, ws = [random24(rng, 96, k), random24(rng, 96, k), random24(rng, 128, k)];
    const ids = ws.map((w) => {
      using wb = toDeviceBf16(w.data as Float32Array);
      const id = new Int32Array(1);
      check(lib, lib.lk_cuda_sp24_create(wb.handle, w.rows, k, id, 1));
      return id[0]!;
    });
    const product = (i: number, m: number) => {
      const x = randn(rng, m, k), w = ws[i]!;
      using xb = toDeviceBf16(x.data as Float32Array), yb = DeviceBuffer.alloc("bf16", m * w.rows);
      check(lib, lib.lk_cuda_sp24_matmul(ids[i]!, xb.handle, m, yb.handle));
      const err = relativeL2Error(bf16ToHost(yb), matmul(x, w, { transB: true }).data);
      assert(err < 2e-2, `seed ${seed} weight ${i} m=${m}: relative error ${err}`);
    };
    const searches = () => lt.symbols.emu_lt_searches();
    try {
      setSp24Search(true);
      const s0 = searches();
      product(0, 40); // 48 padded tokens: searched
      assertEquals(searches() - s0, 1);
      product(1, 37); // the same problem (48 padded) on another weight: the choice reused
      assertEquals(lt.symbols.emu_lt_last_config(), 2);
      product(1, 40); // its plan exists already
      assertEquals(searches() - s0, 1);
      product(0, 70); // 80 padded tokens: a new problem
      product(2, 40); // another shape
      assertEquals(searches() - s0, 3);
      setSp24Search(false);
      product(2, 90); // untuned plans are not searched
      assertEquals(searches() - s0, 3);
      assertEquals(lt.symbols.emu_lt_last_config(), 0);
    } finally {
      setSp24Search(false);
      for (const id of ids) lib.lk_cuda_sp24_free(id);
      lt.close();
    }
  },
});

Deno.test({
  name:
    "cuda 2:4 product (emulator only): where cuSPARSELt refuses opB = T, the column-major X layout gives the same product",
  ignore: ignore || !cudaEmulated(),
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cuda();
    const n = 32, k = 64, w = random24(rng, n, k), x = randn(rng, 17, k);
    const want = matmul(x, w, { transB: true, backend: "cpu" });
    using wb = toDeviceBf16(w.data as Float32Array), xb = toDeviceBf16(x.data as Float32Array);
    using yb = DeviceBuffer.alloc("bf16", 17 * n);
    const id = new Int32Array(1);
    Deno.env.set("LMKIT_EMU_LT_REFUSE_OPB_T", "1"); // read by the mock cuSPARSELt's plan set-up
    try {
      check(lib, lib.lk_cuda_sp24_create(wb.handle, n, k, id, 1));
      check(lib, lib.lk_cuda_sp24_matmul(id[0]!, xb.handle, 17, yb.handle));
      lib.lk_cuda_sp24_free(id[0]!);
    } finally {
      Deno.env.delete("LMKIT_EMU_LT_REFUSE_OPB_T");
    }
    const err = relativeL2Error(bf16ToHost(yb), want.data);
    assert(err < 2e-2, `seed ${seed}: relative error ${err}`);
  },
});

Deno.test({
  name:
    "cuda bitmap unpacking equals the host's bit for bit at awkward shapes; inconsistent bitmaps fail",
  ignore,
  fn() {
    const seed = freshSeed(), rng = new Rng(seed), lib = cuda();
    for (const [rows, cols] of [[1, 1], [3, 7], [33, 9], [5, 300], [17, 2049], [64, 256]]) {
      const w = randn(rng, rows!, cols!);
      const keep = rng.uniform();
      for (let i = 0; i < w.data.length; i++) if (rng.uniform() > keep) w.data[i] = 0;
      const bm = bitmapFromDense(w);
      using bits = DeviceBuffer.from(bm.bits), rp = DeviceBuffer.from(bm.rowPtr);
      using val = toDeviceBf16(bm.val), out = DeviceBuffer.alloc("bf16", rows! * cols!);
      check(
        lib,
        lib.lk_cuda_bitmap_dense_bf16(bits.handle, rp.handle, val.handle, rows!, cols!, out.handle),
      );
      using want = toDeviceBf16(bitmapToDense(bm).data as Float32Array);
      const got = out.download(new Uint16Array(rows! * cols!));
      assertEquals(
        got,
        want.download(new Uint16Array(rows! * cols!)),
        `seed ${seed} ${rows}×${cols}`,
      );
    }
    // a row offset one short, and a bit past the last column: one sentence each, naming the row
    const bm = bitmapFromDense(randn(rng, 4, 12));
    const rowPtr = Int32Array.from(bm.rowPtr);
    rowPtr[2]! -= 1;
    using bits = DeviceBuffer.from(bm.bits), rp = DeviceBuffer.from(rowPtr);
    using val = toDeviceBf16(bm.val), out = DeviceBuffer.alloc("bf16", 48);
    assertThrows(
      () =>
        check(
          lib,
          lib.lk_cuda_bitmap_dense_bf16(bits.handle, rp.handle, val.handle, 4, 12, out.handle),
        ),
      RangeError,
      "row 1's set bits do not match its rowptr span",
    );
    const past = Uint8Array.from(bm.bits);
    past[2 * 2 + 1]! |= 0x80; // row 2, column 15 of 12
    using pb = DeviceBuffer.from(past), good = DeviceBuffer.from(bm.rowPtr);
    assertThrows(
      () =>
        check(
          lib,
          lib.lk_cuda_bitmap_dense_bf16(pb.handle, good.handle, val.handle, 4, 12, out.handle),
        ),
      RangeError,
      "row 2's set bits",
    );
  },
});
