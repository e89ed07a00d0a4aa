import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { decodeNpy, encodeNpy, type NpyArray, readNpy, writeNpy } from "../../lib/io/npy.ts";
import { FormatError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

Deno.test("npy round-trips every dtype and awkward shapes", async () => {
  const rng = new Rng(freshSeed());
  const arrays: NpyArray[] = [
    { descr: "<f4", shape: [3, 17], data: rng.normalArray(51) },
    { descr: "<f8", shape: [129], data: Float64Array.from({ length: 129 }, () => rng.normal()) },
    {
      descr: "<i4",
      shape: [2, 1, 3],
      data: Int32Array.from([1, -2, 3, 2 ** 31 - 1, -(2 ** 31), 0]),
    },
    { descr: "|i1", shape: [2], data: new Int8Array([-128, 127]) },
    { descr: "|u1", shape: [0], data: new Uint8Array(0) },
    { descr: "|b1", shape: [3], data: new Uint8Array([1, 0, 1]) },
    { descr: "<f8", shape: [], data: new Float64Array([3.5]) },
  ];
  const dir = await Deno.makeTempDir();
  for (const a of arrays) {
    const bytes = encodeNpy(a);
    assertEquals(
      (10 + new DataView(bytes.buffer).getUint16(8, true)) % 64,
      0,
      "header aligned to 64",
    );
    assertEquals(decodeNpy(bytes), a);
    await writeNpy(`${dir}/a.npy`, a);
    assertEquals(await readNpy(`${dir}/a.npy`), a);
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("npy written by NumPy (format 1.0 and 2.0, '<i1' alias) decodes", () => {
  const make = (major: number, header: string, data: number[]) => {
    const h = new TextEncoder().encode(header);
    const pre = major === 1 ? 10 : 12;
    const out = new Uint8Array(pre + h.length + data.length);
    out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
    if (major === 1) new DataView(out.buffer).setUint16(8, h.length, true);
    else new DataView(out.buffer).setUint32(8, h.length, true);
    out.set(h, pre);
    out.set(data, pre + h.length);
    return out;
  };
  const a = decodeNpy(
    make(2, "{'descr': '<i1', 'fortran_order': False, 'shape': (2,), }\n", [255, 1]),
  );
  assertEquals(a, { descr: "|i1", shape: [2], data: new Int8Array([-1, 1]) });
  const b = decodeNpy(
    make(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (1, 2), }\n", [1, 0]),
  );
  assertEquals(b.shape, [1, 2]);
});

Deno.test("malformed npy fails with a FormatError naming the source", async () => {
  const good = encodeNpy({ descr: "<f4", shape: [4], data: new Float32Array(4) });
  const swap = (from: string, to: string) => { // same-length ASCII replacement in the header
    const b = good.slice(), f = new TextEncoder().encode(from);
    const at = b.findIndex((_, i) => f.every((c, j) => b[i + j] === c));
    b.set(new TextEncoder().encode(to), at);
    return b;
  };
  const variants: [Uint8Array, string][] = [
    [good.slice(0, 6), "missing the \\x93NUMPY magic"],
    [good.slice(0, good.length - 4), "data holds 12 bytes, expected 16"],
    [swap("<f4", ">f4"), "dtype '>f4' is not one of"],
    [swap("False", "True "), "Fortran order"],
    [
      (() => {
        const b = good.slice();
        new DataView(b.buffer).setUint16(8, 60000, true);
        return b;
      })(),
      "header length 60000 exceeds file size",
    ],
  ];
  for (const [bytes, msg] of variants) {
    assertThrows(() => decodeNpy(bytes, "x.npy"), FormatError, msg);
    assertThrows(() => decodeNpy(bytes, "x.npy"), FormatError, "'x.npy'");
  }
  await assertRejects(() => readNpy("/nonexistent/a.npy"), Deno.errors.NotFound);
  assertThrows(
    () => encodeNpy({ descr: "<f4", shape: [3], data: new Float32Array(2) }),
    RangeError,
  );
});

Deno.test("npy: a descr naming an Object.prototype member is a FormatError", () => {
  // '__proto__' reached Object.prototype through the alias table: a bare TypeError
  for (const d of ["__proto__", "constructor", "toString"]) {
    const header = `{'descr': '${d}', 'fortran_order': False, 'shape': (2,), }`;
    const h = header + " ".repeat(64 - ((10 + header.length + 1) % 64)) + "\n";
    const bytes = new Uint8Array(10 + h.length + 8);
    bytes.set([0x93, 78, 85, 77, 80, 89, 1, 0, h.length & 255, h.length >> 8]);
    bytes.set(new TextEncoder().encode(h), 10);
    assertThrows(() => decodeNpy(bytes, "x.npy"), FormatError, `dtype '${d}' is not one of`);
  }
});
