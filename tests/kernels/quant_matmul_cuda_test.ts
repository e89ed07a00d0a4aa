// The cuda entry point of the weight-quantized product (ffi/cuda/quant.cu) refuses bad shapes,
// unknown handles and out-of-range group indices before running the product, leaving Y as it was;
// its results against ts are in quant_matmul_test.ts (run on the CUDA emulator by `deno task test`).
import { assertEquals, assertThrows } from "@std/assert";
import { check, cudaLibraryWithoutDevice, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { Matrix } from "../../lib/core/matrix.ts";
import { quantMatmul } from "../../lib/kernels/quant_matmul.ts";
import { NATIVE } from "../_util.ts";

const lib = cudaLibraryWithoutDevice();

Deno.test({
  name: "cuda quant matmul refuses bad shapes and unknown handles before any device work",
  ignore: lib === null,
  fn() {
    const l = lib!, H = 900501;
    const call = (t: number, k: number, n: number, g: number, nib: number) =>
      l.lk_cuda_quant_matmul_f32(H, H, H, H, H, H, t, k, n, g, nib);
    assertThrows(() => check(l, call(-1, 4, 2, 1, 1)), ShapeError, "tokens=-1");
    assertThrows(() => check(l, call(1, 0, 2, 1, 1)), ShapeError, "cols=0");
    assertThrows(() => check(l, call(1, 4, 2, 0, 1)), ShapeError, "groups=0");
    assertThrows(() => check(l, call(1, 4, 2, 5, 1)), ShapeError, "5 groups for 4 columns");
    assertThrows(() => check(l, call(1, 4, 2, 1, 2)), RangeError, "nibble=2");
    assertThrows(() => check(l, call(1, 4, 2, 1, 1)), RangeError, `x is handle ${H}`);
  },
});

Deno.test({
  name: "cuda quant matmul names a group index out of range and leaves Y untouched",
  ignore: NATIVE.find((n) => n.backend === "cuda")!.ignore,
  fn() {
    const l = lib!;
    using x = DeviceBuffer.from(new Float32Array(6).fill(1));
    using packed = DeviceBuffer.from(new Uint8Array(4).fill(0x11));
    using s = DeviceBuffer.from(new Float32Array(4).fill(1));
    using z = DeviceBuffer.from(new Float32Array(4));
    using g = DeviceBuffer.from(Int32Array.of(0, 1, 2));
    using y = DeviceBuffer.from(new Float32Array(4).fill(7));
    const st = l.lk_cuda_quant_matmul_f32(
      x.handle,
      packed.handle,
      s.handle,
      z.handle,
      g.handle,
      y.handle,
      2,
      3,
      2,
      2,
      1,
    );
    assertThrows(() => check(l, st), RangeError, "g_idx[2] = 2, expected 0 to 1");
    assertEquals(Array.from(y.download(new Float32Array(4))), [7, 7, 7, 7]);
    // and the same weight with good indices gives the ts result
    const w = {
      rows: 2,
      cols: 3,
      nibble: true,
      groups: 2,
      packed: Uint8Array.of(0x21, 0x03, 0x54, 0x06),
      scales: Float32Array.of(1, 2, 0.5, 1),
      zeros: Float32Array.of(1, 0, 2, 3),
      gIdx: Int32Array.of(0, 1, 0),
    };
    const xm = Matrix.from([[1, -2, 3], [0.5, 1, 2]]);
    assertEquals(
      Array.from(quantMatmul(xm, w, { backend: "cuda" }).data),
      Array.from(quantMatmul(xm, w, { backend: "ts" }).data),
    );
  },
});
