// The CUDA library's handle table and argument checks (ignored without a device).
import { assertEquals, assertThrows } from "@std/assert";
import { availableBackends, check, cuda, DeviceBuffer } from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";

const ignore = !availableBackends().cuda.ok;

Deno.test({
  name: "cuda device buffers round-trip every dtype",
  ignore,
  fn() {
    for (
      const host of [
        Float32Array.from([1.5, -2, 3]),
        Float64Array.from([1e-300, 2, -3]),
        Int32Array.from([7, -8]),
        Uint8Array.from([0, 255, 9]),
      ]
    ) {
      using d = DeviceBuffer.from(host);
      const back = d.download(new (host.constructor as Float32ArrayConstructor)(host.length));
      assertEquals(Array.from(back), Array.from(host));
    }
  },
});

Deno.test({
  name: "cuda rejects unknown, freed and mistyped handles and short buffers",
  ignore,
  fn() {
    const lib = cuda();
    assertThrows(
      () => check(lib, lib.lk_cuda_free(987654)),
      RangeError,
      "not a live device buffer",
    );
    const d = DeviceBuffer.alloc("f32", 4);
    d.dispose();
    assertThrows(
      () => check(lib, lib.lk_cuda_free(d.handle)),
      RangeError,
      "not a live device buffer",
    );
    using a = DeviceBuffer.alloc("f32", 6);
    using b = DeviceBuffer.alloc("f64", 6);
    using c = DeviceBuffer.alloc("f32", 3);
    assertThrows(
      () => check(lib, lib.lk_cuda_matmul_f32(a.handle, b.handle, c.handle, 2, 3, 2, 0)),
      ShapeError,
      "b holds f64, expected f32",
    );
    using b32 = DeviceBuffer.alloc("f32", 6);
    assertThrows(
      () => check(lib, lib.lk_cuda_matmul_f32(a.handle, b32.handle, c.handle, 2, 3, 2, 0)),
      ShapeError,
      "buffer c holds 3 elements, expected at least 4",
    );
    assertThrows(() => c.upload(new Float32Array(4)), ShapeError);
  },
});
