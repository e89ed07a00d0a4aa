// The CUDA library's argument and handle checks, run wherever the library is built, with or
// without a GPU: every entry point checks shapes, options and handles before it touches the
// device, so these refusals are the same on a machine that cannot run a kernel. They cover the
// entry points that only a GPU machine can run to the end (SparseGPT's sweep, bf16 products,
// 2:4 weights, the routed layer).
import { assertThrows } from "@std/assert";
import { check, cudaLibraryWithoutDevice } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";

const lib = cudaLibraryWithoutDevice();
// handles and ids far above any that other tests create, so that on a GPU machine (one process,
// one handle table) none of them is live

Deno.test({
  name: "CUDA entry points refuse bad shapes, options and handles before any device work",
  ignore: lib === null,
  fn() {
    const l = lib!;
    const refuses = (status: number, cls: typeof RangeError | typeof ShapeError, msg: string) =>
      assertThrows(() => check(l, status), cls, msg);
    // SparseGPT's sweep: pattern, block, sparsity, then the handles
    refuses(
      l.lk_cuda_sparsegpt_f64(1, 2, 4, 8, 0, 2, 4, 3, 6, 4),
      RangeError,
      "lk_cuda_sparsegpt_f64: block=6 is not a multiple of M=4 (an N:M group must lie in one block)",
    );
    refuses(
      l.lk_cuda_sparsegpt_f64(1, 2, 4, 8, 0.5, 0, 0, 3, 129, 4),
      RangeError,
      "block=129, expected 1..128 on cuda",
    );
    refuses(
      l.lk_cuda_sparsegpt_f64(1, 2, 4, 8, 1.5, 0, 0, 3, 128, 4),
      RangeError,
      "sparsity 1.5 is outside (0, 1)",
    );
    refuses(
      l.lk_cuda_sparsegpt_f64(1, 2, 4, 10, 0, 2, 4, 3, 128, 4),
      ShapeError,
      "N:M 2:4 needs N < M and M dividing cols=10",
    );
    refuses(
      l.lk_cuda_sparsegpt_f64(900987, 2, 4, 8, 0.5, 0, 0, 3, 128, 4),
      RangeError,
      "900987",
    );
    // bf16 products and conversion
    refuses(
      l.lk_cuda_matmul_bf16(1, 2, 3, -1, 4, 4, 0),
      ShapeError,
      "m=-1 k=4 n=4, expected m, n >= 0 and k >= 1",
    );
    refuses(
      l.lk_cuda_matmul_bf16(1, 2, 3, 4, 4, 4, 2),
      RangeError,
      "trans_b is 2, expected 0 or 1",
    );
    refuses(l.lk_cuda_convert(900654, 900655), RangeError, "is not a live device buffer");
    // 2:4 weights: cuSPARSELt's tile sizes, unknown ids
    const id = new Int32Array(1);
    refuses(
      l.lk_cuda_sp24_create(1, 30, 64, id, 1),
      ShapeError,
      "W is 30×64, expected both sizes multiples of 32 (cuSPARSELt tiles)",
    );
    refuses(l.lk_cuda_sp24_create(1, 32, 64, id, 0), ShapeError, "id_out holds 0 elements");
    refuses(l.lk_cuda_sp24_matmul(900077, 1, 16, 2), RangeError, "900077 is not a live 2:4 weight");
    refuses(l.lk_cuda_sp24_free(900078), RangeError, "900078 is not a live 2:4 weight");
    // bitmap weights
    refuses(
      l.lk_cuda_bitmap_dense_bf16(1, 2, 3, 4, 0, 5),
      ShapeError,
      "rows=4 cols=0, expected rows >= 0, cols >= 1",
    );
    refuses(
      l.lk_cuda_bitmap_dense_bf16(900311, 2, 3, 4, 9, 5),
      RangeError,
      "w bits is handle 900311, which is not a live device buffer",
    );
    // the routed layer
    const experts = new Int32Array([1, 2]);
    const routed = (e: number, form: number, len: number, m = 8) =>
      l.lk_cuda_routed_bf16(900001, m, 64, 2, 2, 3, 4, e, experts, len, form, 32, 5, 6);
    refuses(routed(2, 3, 2), RangeError, "form=3, expected 0 (dense), 1 (2:4) or 2 (bitmap)");
    refuses(routed(3, 0, 2), ShapeError, "2 expert handles given for 3 clusters, expected 3");
    refuses(routed(2, 2, 2), ShapeError, "2 expert handles given for 2 clusters, expected 6");
    refuses(routed(2, 0, 2, -1), ShapeError, "m=-1 d=64 r=2 e=2 n=32, expected m >= 0");
    refuses(routed(2, 0, 2), RangeError, "is not a live device buffer");
  },
});
