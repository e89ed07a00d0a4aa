/**
 * Partial aggregates of {@linkcode ToxicityStats} that merge exactly: order-independent float
 * sums (the exact sum kept as non-overlapping partials, Shewchuk's algorithm as in Python's
 * `math.fsum`, read out correctly rounded) and a compact binary form of a partial (a JSON header
 * and raw f64/u8 sections) to move between ranks.
 *
 * Every sum of sentiments in the statistics is kept exactly and rounded once when a table is
 * made, so a table does not depend on how the comments were split between ranks or in which
 * order the parts were added: a run on 1 rank and one on N ranks write the same bytes.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import type { StatsPartial } from "./stats.ts";

/**
 * Adds `x` to the exact sum held in `partials` (non-overlapping, increasing magnitude; modified
 * in place). Exact for finite values whose sum stays finite.
 *
 * @example
 * ```ts
 * import { exactAdd, exactValue } from "./partial.ts";
 * const p: number[] = [];
 * for (const x of [1e16, 1, -1e16, 0.1]) exactAdd(p, x);
 * if (exactValue(p) !== 1.1) throw new Error("not exact");
 * ```
 */
export function exactAdd(partials: number[], x: number): void {
  if (x === 0) return;
  let i = 0;
  for (let j = 0; j < partials.length; j++) {
    let y = partials[j]!;
    if (Math.abs(x) < Math.abs(y)) {
      const t = x;
      x = y;
      y = t;
    }
    const hi = x + y;
    const lo = y - (hi - x);
    if (lo !== 0) partials[i++] = lo;
    x = hi;
  }
  partials.length = i;
  partials.push(x);
}

/** Adds the exact sum `from` into `into` (exactly). */
export function exactMerge(into: number[], from: Iterable<number>): void {
  for (const x of from) exactAdd(into, x);
}

/**
 * The exact sum held in `partials`, rounded once to the nearest double (ties to even), as
 * CPython's `math.fsum` reads it out: the same value for every order of the same terms.
 */
export function exactValue(partials: readonly number[]): number {
  let n = partials.length;
  if (n === 0) return 0;
  let hi = partials[--n]!, lo = 0;
  while (n > 0) {
    const x = hi, y = partials[--n]!;
    hi = x + y;
    lo = y - (hi - x);
    if (lo !== 0) break;
  }
  // half-way case: the rest below lo pushes the sum past the tie
  if (n > 0 && ((lo < 0 && partials[n - 1]! < 0) || (lo > 0 && partials[n - 1]! > 0))) {
    const y = lo * 2, x = hi + y;
    if (y === x - hi) hi = x;
  }
  return hi;
}

const MAGIC = 0x50544b4c; // "LKTP", little-endian
const VERSION = 1;

/**
 * The bytes of a partial and `meta` (any JSON value): a 16-byte head (magic, version, header
 * length, f64 count), the JSON header padded to 8 bytes, the cells and id indices (f64), then
 * the toxic flags and language indices of the reply-tree records (u8).
 */
export function encodePartial(p: StatsPartial, meta: unknown = null): Uint8Array {
  const header = new TextEncoder().encode(JSON.stringify({
    languages: p.languages,
    counted: p.counted,
    skipped: p.skipped,
    communities: p.communities,
    ids: p.ids,
    parents: p.parents,
    cells: p.cells.length,
    idIndex: p.idIndex.length,
    records: p.toxic.length,
    meta,
  }));
  const hlen = Math.ceil(header.length / 8) * 8;
  const f64 = p.cells.length + p.idIndex.length;
  const out = new Uint8Array(16 + hlen + 8 * f64 + 2 * p.toxic.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, VERSION, true);
  dv.setUint32(8, header.length, true);
  dv.setUint32(12, f64, true);
  out.set(header, 16);
  let o = 16 + hlen;
  for (const a of [p.cells, p.idIndex]) {
    out.set(new Uint8Array(a.buffer, a.byteOffset, a.byteLength), o);
    o += a.byteLength;
  }
  out.set(p.toxic, o);
  out.set(p.language, o + p.toxic.length);
  return out;
}

/** The partial and meta of {@linkcode encodePartial}'s bytes; `from` names the sender in errors. */
export function decodePartial(
  bytes: Uint8Array,
  from: string,
): { partial: StatsPartial; meta: unknown } {
  const bad = (why: string) => new FormatError(`Partial statistics from ${from}: ${why}`);
  if (bytes.length < 16) throw bad(`${bytes.length} bytes, too short`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC || dv.getUint32(4, true) !== VERSION) {
    throw bad("not lmkit toxicity partial statistics of version 1");
  }
  const hlen = dv.getUint32(8, true), f64 = dv.getUint32(12, true);
  const start = 16 + Math.ceil(hlen / 8) * 8;
  if (start + 8 * f64 > bytes.length) throw bad("truncated");
  const h = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen)));
  if (h.cells + h.idIndex !== f64 || start + 8 * f64 + 2 * h.records !== bytes.length) {
    throw bad("section sizes do not add up");
  }
  // copied out: the received bytes need not be 8-byte aligned
  const floats = new Float64Array(bytes.slice(start, start + 8 * f64).buffer);
  const u8 = start + 8 * f64;
  return {
    partial: {
      languages: h.languages,
      counted: h.counted,
      skipped: h.skipped,
      communities: h.communities,
      cells: floats.subarray(0, h.cells),
      ids: h.ids,
      idIndex: floats.subarray(h.cells),
      parents: h.parents,
      toxic: bytes.slice(u8, u8 + h.records),
      language: bytes.slice(u8 + h.records, u8 + 2 * h.records),
    },
    meta: h.meta,
  };
}
