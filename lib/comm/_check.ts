// Argument checks shared by the communicator backends (private).
import { quoteValue } from "../core/errors.ts";

function kind(v: unknown): string {
  return v === null
    ? "null"
    : typeof v === "object"
    ? v.constructor?.name ?? "an object"
    : typeof v;
}

/** Throws a TypeError unless `v` is a Float32Array or Float64Array. */
export function checkFloats(call: string, what: string, v: unknown): Float32Array | Float64Array {
  if (v instanceof Float32Array || v instanceof Float64Array) return v;
  throw new TypeError(`${call}: ${what} is ${kind(v)}, expected a Float32Array or Float64Array`);
}

/** Throws a TypeError unless `v` is a Float32Array (or undefined when `optional`). */
export function checkF32(call: string, what: string, v: unknown): Float32Array {
  if (v instanceof Float32Array) return v;
  throw new TypeError(`${call}: ${what} is ${kind(v)}, expected a Float32Array`);
}

/** Throws a TypeError unless `v` is a Uint8Array. */
export function checkBytes(call: string, what: string, v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new TypeError(`${call}: ${what} is ${kind(v)}, expected a Uint8Array`);
}

/** Throws a TypeError unless `v` is an array of Uint8Arrays. */
export function checkByteList(call: string, v: unknown): readonly Uint8Array[] {
  if (!Array.isArray(v)) {
    throw new TypeError(`${call}: send is ${kind(v)}, expected an array of Uint8Arrays`);
  }
  v.forEach((b, j) => checkBytes(call, `send[${j}]`, b));
  return v;
}

/** Throws a RangeError unless `root` is a rank of a world of `size`. */
export function checkRoot(call: string, root: unknown, size: number): number {
  if (typeof root === "number" && Number.isInteger(root) && root >= 0 && root < size) return root;
  throw new RangeError(`${call}: root ${quoteValue(root)} is not a rank of 0 … ${size - 1}`);
}

/** Splits `buf` into consecutive views of the given lengths. */
export function split(buf: Uint8Array, counts: ArrayLike<number>): Uint8Array[] {
  const out: Uint8Array[] = [];
  let off = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i]!;
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

/**
 * The blocks of `parts` as one buffer: a view when they already lie one after another in one
 * buffer, else a packed copy.
 */
export function packed(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const first = parts[0];
  if (first) {
    let end = first.byteOffset, contiguous = true;
    for (const p of parts) {
      if (p.buffer !== first.buffer || p.byteOffset !== end) {
        contiguous = false;
        break;
      }
      end += p.length;
    }
    if (contiguous) return new Uint8Array(first.buffer, first.byteOffset, total);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}
