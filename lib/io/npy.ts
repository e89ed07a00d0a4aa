/**
 * NumPy `.npy` files (format 1.0–3.0 read, 1.0 written), C order, little-endian: f32, f64, i32,
 * i8, u8, bool.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { writeFileAtomic } from "./output.ts";

/** Element storage of an npy array (bool as Uint8Array 0/1). */
export type NpyData = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array;

/** A dense array: shape (row-major) and elements. */
export interface NpyArray {
  /** NumPy dtype string, e.g. "<f4" or "|b1". */
  descr: NpyDescr;
  /** Shape, outermost first (empty for a scalar). */
  shape: number[];
  /** Elements in C order. */
  data: NpyData;
}

/** The dtype strings lmkit reads and writes. */
export type NpyDescr = "<f4" | "<f8" | "<i4" | "|i1" | "|u1" | "|b1";

const CTOR = {
  "<f4": Float32Array,
  "<f8": Float64Array,
  "<i4": Int32Array,
  "|i1": Int8Array,
  "|u1": Uint8Array,
  "|b1": Uint8Array,
} as const;
const ALIAS: Record<string, NpyDescr> = {
  "<i1": "|i1",
  "<u1": "|u1",
  "<b1": "|b1",
  "i1": "|i1",
  "u1": "|u1",
  "b1": "|b1",
};

/**
 * Parses `.npy` bytes; `where` names the source in error messages.
 *
 * @example Round trip
 * ```ts
 * import { decodeNpy, encodeNpy } from "./npy.ts";
 * import { assertEquals } from "@std/assert";
 * const a = { descr: "<f4" as const, shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) };
 * assertEquals(decodeNpy(encodeNpy(a)), a);
 * ```
 */
export function decodeNpy(bytes: Uint8Array, where = "npy data"): NpyArray {
  const bad = (what: string) => new FormatError(`Cannot read '${where}' as .npy: ${what}`);
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || !magic.every((b, i) => bytes[i] === b)) {
    throw bad("missing the \\x93NUMPY magic");
  }
  const major = bytes[6] as number;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let hlen: number, start: number;
  if (major === 1) {
    hlen = dv.getUint16(8, true);
    start = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw bad("truncated header");
    hlen = dv.getUint32(8, true);
    start = 12;
  } else throw bad(`format version ${major} is not 1, 2 or 3`);
  if (start + hlen > bytes.length) {
    throw bad(`header length ${hlen} exceeds file size ${bytes.length}`);
  }
  const header = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(
    bytes.subarray(start, start + hlen),
  );
  const descrM = header.match(/'descr'\s*:\s*'([^']*)'/);
  const fortM = header.match(/'fortran_order'\s*:\s*(True|False)/);
  const shapeM = header.match(/'shape'\s*:\s*\(([^)]*)\)/);
  if (!descrM || !fortM || !shapeM) {
    throw bad(`header ${JSON.stringify(header.trim())} lacks descr, fortran_order or shape`);
  }
  const raw = descrM[1] as string;
  // own keys only: '__proto__' or 'constructor' must not reach Object.prototype
  const descr = (Object.hasOwn(ALIAS, raw) ? ALIAS[raw] : raw) as NpyDescr;
  if (!Object.hasOwn(CTOR, descr)) {
    throw bad(`dtype '${raw}' is not one of ${Object.keys(CTOR).join(", ")}`);
  }
  if (fortM[1] === "True") throw bad("Fortran order is not supported; save with C order");
  const shape = (shapeM[1] as string).split(",").map((s) => s.trim()).filter((s) => s !== "").map(
    Number,
  );
  if (!shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw bad(`shape (${shapeM[1]}) is not a tuple of integers`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  const Ctor = CTOR[descr];
  const nbytes = numel * Ctor.BYTES_PER_ELEMENT;
  const dataStart = start + hlen;
  if (bytes.length - dataStart < nbytes) {
    throw bad(
      `data holds ${bytes.length - dataStart} bytes, expected ${nbytes} for ${descr}(${shape})`,
    );
  }
  const copy = bytes.slice(dataStart, dataStart + nbytes);
  return { descr, shape, data: new Ctor(copy.buffer) };
}

/** Encodes an array as `.npy` (format 1.0, C order). */
export function encodeNpy(a: NpyArray): Uint8Array {
  const Ctor = CTOR[a.descr];
  const numel = a.shape.reduce((x, y) => x * y, 1);
  if (!Ctor || !(a.data instanceof Ctor) || a.data.length !== numel) {
    throw new RangeError(
      `Cannot encode ${a.data.length} elements as ${a.descr}(${a.shape}): storage or shape mismatch`,
    );
  }
  const shape = a.shape.length === 1 ? `(${a.shape[0]},)` : `(${a.shape.join(", ")})`;
  let header = `{'descr': '${a.descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - total % 64) % 64) + "\n";
  const out = new Uint8Array(10 + header.length + a.data.byteLength);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength), 10 + header.length);
  return out;
}

/** Reads a `.npy` file. */
export async function readNpy(path: string): Promise<NpyArray> {
  return decodeNpy(await Deno.readFile(path), path);
}

/** Writes a `.npy` file (temporary name, then rename). */
export async function writeNpy(path: string, a: NpyArray): Promise<void> {
  await writeFileAtomic(path, (tmp) => Deno.writeFile(tmp, encodeNpy(a)));
}
