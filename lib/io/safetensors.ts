/**
 * safetensors files: lazy reading (header first, each tensor by its offsets), writing, and the
 * sharded layout of HF checkpoints (`model.safetensors.index.json`).
 *
 * @module
 */
import { FormatError, quoteValue } from "../core/errors.ts";
import { writeFileAtomic } from "./output.ts";

/** Element types of the safetensors format that lmkit reads and writes. */
export type SafetensorsDType = "F32" | "F16" | "BF16" | "I8" | "U8" | "I32" | "I64" | "BOOL";

/** Typed-array storage per dtype (F16/BF16 as raw Uint16 bits, BOOL as Uint8 0/1). */
export type TensorData =
  | Float32Array
  | Uint16Array
  | Int8Array
  | Uint8Array
  | Int32Array
  | BigInt64Array;

/** A tensor: dtype, shape (row-major) and elements. */
export interface Tensor {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Shape, outermost first. */
  shape: number[];
  /** Elements in row-major order. */
  data: TensorData;
}

/** Where a tensor sits in its file. */
export interface TensorInfo {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Shape, outermost first. */
  shape: number[];
  /** Byte offsets [begin, end) relative to the start of the data section. */
  offsets: [number, number];
}

const SIZE: Record<SafetensorsDType, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I8: 1,
  U8: 1,
  I32: 4,
  I64: 8,
  BOOL: 1,
};

function makeArray(dtype: SafetensorsDType, buf: ArrayBuffer): TensorData {
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F16":
    case "BF16":
      return new Uint16Array(buf);
    case "I8":
      return new Int8Array(buf);
    case "U8":
    case "BOOL":
      return new Uint8Array(buf);
    case "I32":
      return new Int32Array(buf);
    case "I64":
      return new BigInt64Array(buf);
  }
}

/** IEEE half-precision bits → number. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

/** The float element types (read as f32 by {@linkcode toFloat32}, written by {@linkcode fromFloat32}). */
export type FloatDType = "F32" | "F16" | "BF16";

/** Whether `dtype` is one of the float element types. */
export function isFloatDType(dtype: string): dtype is FloatDType {
  return dtype === "F32" || dtype === "F16" || dtype === "BF16";
}

const f32Box = new Float32Array(1), u32Box = new Uint32Array(f32Box.buffer);

/**
 * number → IEEE half-precision bits, rounded to nearest (ties to even); beyond the largest half
 * (65504) to ±Infinity, below half the smallest subnormal (2⁻²⁵) to ±0.
 *
 * @example
 * ```ts
 * import { f16ToF32, f32ToF16 } from "./safetensors.ts";
 * if (f16ToF32(f32ToF16(0.1)) !== 0.0999755859375) throw new Error("0.1 rounds to 0x2e66");
 * ```
 */
export function f32ToF16(x: number): number {
  f32Box[0] = x;
  const b = u32Box[0] as number, sign = (b >>> 16) & 0x8000, exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // the half's biased exponent
  if (e >= 31) return sign | 0x7c00;
  // significand with its leading one, and how far it shifts down into the half's 10 bits
  const sig = exp ? mant | 0x800000 : mant, shift = e > 0 ? 13 : 14 - e;
  if (shift > 24) return sign;
  const rest = sig & ((1 << shift) - 1), half = 1 << (shift - 1);
  let h = e > 0 ? (e << 10) | (mant >>> 13) : sig >>> shift;
  if (rest > half || (rest === half && (h & 1))) h++; // a carry moves into the exponent, as it should
  return sign | h;
}

/** number → bfloat16 bits, rounded to nearest (ties to even); NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32Box[0] = x;
  const b = u32Box[0] as number;
  if ((b & 0x7fffffff) > 0x7f800000) return (b >>> 16) | 0x40;
  return (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
}

/** Stores f32 values as F32 (as is), F16 or BF16 (rounded to nearest, ties to even). */
export function fromFloat32(data: Float32Array, dtype: FloatDType): Float32Array | Uint16Array {
  if (dtype === "F32") return data;
  const out = new Uint16Array(data.length), f = dtype === "F16" ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < data.length; i++) out[i] = f(data[i] as number);
  return out;
}

/** Converts F32, F16 or BF16 storage to a Float32Array (F32 is returned as is). */
export function toFloat32(t: Tensor, where = "tensor"): Float32Array {
  const d = t.data;
  switch (t.dtype) {
    case "F32":
      return d as Float32Array;
    case "BF16": {
      const u = new Uint32Array(d.length);
      for (let i = 0; i < d.length; i++) u[i] = (d[i] as number) << 16;
      return new Float32Array(u.buffer);
    }
    case "F16": {
      const out = new Float32Array(d.length);
      for (let i = 0; i < d.length; i++) out[i] = f16ToF32(d[i] as number);
      return out;
    }
    default:
      throw new FormatError(
        `Cannot read ${where} of dtype ${t.dtype} as float: expected F32, F16 or BF16`,
      );
  }
}

/**
 * One open safetensors file. Opening reads the header only; {@linkcode SafetensorsFile.read}
 * reads one tensor's bytes by its offsets.
 *
 * @example Round trip
 * ```ts
 * import { SafetensorsFile, writeSafetensors } from "./safetensors.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const path = await Deno.makeTempFile({ suffix: ".safetensors" });
 * await writeSafetensors(path, { w: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) } });
 * using f = await SafetensorsFile.open(path);
 * assertEquals((await f.readFloat32("w")).data, new Float32Array([1, 2, 3, 4]));
 * await Deno.remove(path);
 * ```
 */
export class SafetensorsFile {
  /** The file's path. */
  readonly path: string;
  /** The `__metadata__` string map (empty when absent). */
  readonly metadata: Record<string, string>;
  /** Every tensor's dtype, shape and offsets. */
  readonly tensors: Record<string, TensorInfo>;
  readonly #file: Deno.FsFile;
  readonly #dataStart: number;

  private constructor(
    path: string,
    file: Deno.FsFile,
    dataStart: number,
    tensors: Record<string, TensorInfo>,
    metadata: Record<string, string>,
  ) {
    this.path = path;
    this.#file = file;
    this.#dataStart = dataStart;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  /** Opens `path` and validates its header against the file size. */
  static async open(path: string): Promise<SafetensorsFile> {
    const file = await Deno.open(path, { read: true });
    try {
      const size = (await file.stat()).size;
      const bad = (what: string) =>
        new FormatError(`Cannot read safetensors header of '${path}': ${what}`);
      if (size < 8) throw bad(`file has ${size} bytes, fewer than the 8-byte header length`);
      const lenBytes = await readExact(file, 0, 8, path);
      const n = Number(new DataView(lenBytes.buffer).getBigUint64(0, true));
      if (n > size - 8) throw bad(`header length ${n} exceeds file size ${size}`);
      if (n > MAX_HEADER) throw bad(`header length ${n} exceeds the format's limit of 100 MB`);
      let text: string, header: unknown;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(await readExact(file, 8, n, path));
      } catch {
        throw bad("header is not valid UTF-8");
      }
      if (!text.startsWith("{")) throw bad("header does not begin with '{'");
      try {
        header = JSON.parse(text);
      } catch (e) {
        throw bad(`header is not valid JSON (${(e as Error).message})`);
      }
      if (typeof header !== "object" || header === null || Array.isArray(header)) {
        throw bad("header is not a JSON object");
      }
      const dup = duplicateKey(text);
      if (dup !== undefined) throw bad(`the name '${dup}' appears twice`);
      const dataSize = size - 8 - n;
      const tensors: Record<string, TensorInfo> = Object.create(null); // see SafetensorsIndex
      let metadata: Record<string, string> = {};
      for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
        if (name === "__metadata__") {
          if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
            throw bad("__metadata__ is not an object");
          }
          for (const [k, v] of Object.entries(raw)) {
            if (typeof v !== "string") {
              throw bad(`__metadata__ '${k}' is ${quoteValue(v)}: expected a string`);
            }
          }
          metadata = raw as Record<string, string>;
          continue;
        }
        tensors[name] = parseInfo(path, name, raw, dataSize);
      }
      // the data section is the tensors back to back: no overlap, no hole, nothing after them
      const spans = Object.entries(tensors).sort((a, b) =>
        a[1].offsets[0] - b[1].offsets[0] || a[1].offsets[1] - b[1].offsets[1]
      );
      let at = 0;
      for (const [name, t] of spans) {
        const [b, e] = t.offsets;
        if (b < at) throw bad(`tensor '${name}' at [${b}, ${e}) overlaps the one before it`);
        if (b > at) throw bad(`bytes [${at}, ${b}) of the data section belong to no tensor`);
        at = e;
      }
      if (at !== dataSize) {
        throw bad(`${dataSize - at} bytes after the last tensor belong to no tensor`);
      }
      return new SafetensorsFile(path, file, 8 + n, tensors, metadata);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Tensor names in header order. */
  names(): string[] {
    return Object.keys(this.tensors);
  }

  /** Where `name` is; a FormatError when the file has no such tensor. */
  info(name: string): TensorInfo {
    const t = Object.hasOwn(this.tensors, name) ? this.tensors[name] : undefined;
    if (!t) throw new FormatError(`Tensor '${name}' is not in '${this.path}'`);
    return t;
  }

  /** Reads one tensor in its stored dtype. */
  async read(name: string): Promise<Tensor> {
    const { dtype, shape, offsets } = this.info(name);
    const bytes = await readExact(
      this.#file,
      this.#dataStart + offsets[0],
      offsets[1] - offsets[0],
      this.path,
    );
    return { dtype, shape, data: makeArray(dtype, bytes.buffer as ArrayBuffer) };
  }

  /** Reads one float tensor (F32, F16 or BF16) as f32. */
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    const t = await this.read(name);
    return { shape: t.shape, data: toFloat32(t, `tensor '${name}' of '${this.path}'`) };
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  /** For `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** The safetensors format's limit on the header's length. */
const MAX_HEADER = 100_000_000;

/**
 * The first name that appears twice among the keys of a JSON object's top level (JSON.parse keeps
 * the last silently), or undefined.
 */
function duplicateKey(text: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      if (depth === 1) {
        let k = j + 1;
        while (k < text.length && /\s/.test(text[k]!)) k++;
        if (text[k] === ":") {
          const key = JSON.parse(text.slice(i, j + 1)) as string;
          if (seen.has(key)) return key;
          seen.add(key);
        }
      }
      i = j;
    } else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
  }
  return undefined;
}

function parseInfo(path: string, name: string, raw: unknown, dataSize: number): TensorInfo {
  const bad = (what: string) => new FormatError(`Tensor '${name}' in '${path}': ${what}`);
  const r = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
  if (typeof r !== "object" || r === null) throw bad("entry is not an object");
  if (typeof r.dtype !== "string" || !Object.hasOwn(SIZE, r.dtype)) {
    throw bad(
      `unknown dtype ${quoteValue(r.dtype)}: expected one of ${Object.keys(SIZE).join(", ")}`,
    );
  }
  const dtype = r.dtype as SafetensorsDType;
  const shape = r.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw bad(`shape ${quoteValue(shape)} is not a list of integers ≥ 0`);
  }
  const off = r.data_offsets;
  if (
    !Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isInteger(o) && o >= 0) ||
    off[0] > off[1]
  ) {
    throw bad(`data_offsets ${quoteValue(off)} is not [begin, end] with begin ≤ end`);
  }
  const numel = shape.reduce((a: number, b: number) => a * b, 1);
  if (off[1] - off[0] !== numel * SIZE[dtype]) {
    throw bad(
      `data_offsets span ${off[1] - off[0]} bytes, expected ${
        numel * SIZE[dtype]
      } for ${dtype}[${shape}]`,
    );
  }
  if (off[1] > dataSize) {
    throw bad(`data_offsets end ${off[1]} exceeds the data section (${dataSize} bytes)`);
  }
  return { dtype, shape: shape as number[], offsets: [off[0], off[1]] };
}

async function readExact(
  file: Deno.FsFile,
  pos: number,
  n: number,
  path: string,
): Promise<Uint8Array> {
  const buf = new Uint8Array(n);
  await file.seek(pos, Deno.SeekMode.Start);
  let got = 0;
  while (got < n) {
    const r = await file.read(buf.subarray(got));
    if (r === null) {
      throw new FormatError(`Cannot read '${path}': it ends at byte ${pos + got}, before its data`);
    }
    got += r;
  }
  return buf;
}

/**
 * Writes tensors (and optional string metadata) as one safetensors file, all-or-nothing (a
 * temporary file renamed into place).
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (!(t.dtype in SIZE)) {
      throw new RangeError(`Cannot write tensor '${name}': unknown dtype '${t.dtype}'`);
    }
    if (numel !== t.data.length || t.data.BYTES_PER_ELEMENT !== SIZE[t.dtype]) {
      throw new RangeError(
        `Cannot write tensor '${name}': ${t.data.length} elements of ${t.data.BYTES_PER_ELEMENT} bytes do not fit ${t.dtype}[${t.shape}]`,
      );
    }
    header[name] = {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  const hdr = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - hdr.length % 8) % 8; // the data section starts 8-byte aligned
  const head = new Uint8Array(8 + hdr.length + pad);
  new DataView(head.buffer).setBigUint64(0, BigInt(hdr.length + pad), true);
  head.set(hdr, 8);
  head.fill(0x20, 8 + hdr.length);
  // tensor by tensor into a temporary file (no second copy of the weights in memory), renamed
  // into place once complete
  await writeFileAtomic(path, async (tmp) => {
    using file = await Deno.open(tmp, { write: true, create: true, truncate: true });
    await writeAll(file, head);
    for (const t of Object.values(tensors)) {
      await writeAll(file, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  });
}

async function writeAll(file: Deno.FsFile, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) {
    done += await file.write(bytes.subarray(done, done + (1 << 26)));
  }
}

/**
 * A sharded checkpoint (`model.safetensors.index.json` + shards), read through the same calls as
 * one file. Shards are opened on first use.
 */
export class SafetensorsIndex {
  /** The index file's path. */
  readonly path: string;
  /** Tensor name → shard file name. */
  readonly weightMap: Record<string, string>;
  readonly #dir: string;
  readonly #open = new Map<string, SafetensorsFile>();

  private constructor(path: string, weightMap: Record<string, string>) {
    this.path = path;
    this.weightMap = weightMap;
    this.#dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  }

  /** Reads and validates the index JSON. */
  static async open(path: string): Promise<SafetensorsIndex> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await Deno.readTextFile(path));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) throw e;
      throw new FormatError(
        `Cannot read index '${path}': not valid JSON (${(e as Error).message})`,
      );
    }
    const map = (parsed as { weight_map?: unknown })?.weight_map;
    if (typeof map !== "object" || map === null || Array.isArray(map)) {
      throw new FormatError(`Cannot read index '${path}': missing the "weight_map" object`);
    }
    for (const [k, v] of Object.entries(map)) {
      if (typeof v !== "string" || /[/\\\0]/.test(v) || v === "" || v === "." || v === "..") {
        throw new FormatError(
          `Index '${path}' maps '${k}' to ${quoteValue(v)}: expected a shard file name`,
        );
      }
    }
    // a null-prototype copy: names such as 'constructor' or '__proto__' are tensors, not
    // Object.prototype's members
    const weightMap: Record<string, string> = Object.create(null);
    for (const [k, v] of Object.entries(map)) weightMap[k] = v as string;
    return new SafetensorsIndex(path, weightMap);
  }

  /** Tensor names. */
  names(): string[] {
    return Object.keys(this.weightMap);
  }

  async #shard(name: string): Promise<SafetensorsFile> {
    const file = this.weightMap[name];
    if (!file) throw new FormatError(`Tensor '${name}' is not in the index '${this.path}'`);
    let f = this.#open.get(file);
    if (!f) {
      try {
        f = await SafetensorsFile.open(`${this.#dir}/${file}`);
      } catch (e) {
        if (e instanceof FormatError || e instanceof Deno.errors.NotCapable) throw e;
        throw new FormatError(
          `Index '${this.path}' maps '${name}' to '${file}', which ${
            e instanceof Deno.errors.NotFound
              ? `is not in '${this.#dir}'`
              : `cannot be opened (${(e as Error).message})`
          }`,
        );
      }
      this.#open.set(file, f);
    }
    if (!Object.hasOwn(f.tensors, name)) {
      throw new FormatError(
        `Index '${this.path}' maps '${name}' to '${file}', which has no such tensor`,
      );
    }
    return f;
  }

  /** Where `name` is. */
  async info(name: string): Promise<TensorInfo> {
    return (await this.#shard(name)).info(name);
  }

  /** Reads one tensor in its stored dtype. */
  async read(name: string): Promise<Tensor> {
    return (await this.#shard(name)).read(name);
  }

  /** Reads one float tensor as f32. */
  async readFloat32(name: string): Promise<{ shape: number[]; data: Float32Array }> {
    return (await this.#shard(name)).readFloat32(name);
  }

  /** Closes every opened shard. */
  close(): void {
    for (const f of this.#open.values()) f.close();
    this.#open.clear();
  }

  /** For `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Opens an HF checkpoint folder: the sharded index when present, else `model.safetensors`. */
export async function openCheckpoint(dir: string): Promise<SafetensorsFile | SafetensorsIndex> {
  try {
    return await SafetensorsIndex.open(`${dir}/model.safetensors.index.json`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  try {
    return await SafetensorsFile.open(`${dir}/model.safetensors`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new FormatError(
        `Checkpoint folder '${dir}' has neither model.safetensors nor model.safetensors.index.json`,
      );
    }
    throw e;
  }
}
