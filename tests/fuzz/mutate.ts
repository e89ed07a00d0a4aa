// Seeded mutations of valid seed files for the fuzz harness (tests/fuzz/fuzz.ts): byte-level edits
// for any file, plus structure-aware edits for JSON, JSON lines, safetensors, npy and gzip, so
// that a mutant is usually well-formed enough to reach the reader's deeper checks.
import type { Rng } from "../../lib/core/rng.ts";

/** How a seed file is mutated. */
export type SeedKind = "text" | "json" | "jsonl" | "safetensors" | "npy" | "gz" | "zst" | "bytes";

const enc = new TextEncoder(), dec = new TextDecoder("utf-8", { fatal: false });

const BYTES = [
  0x00,
  0x01,
  0x7f,
  0x80,
  0xff,
  0x22,
  0x27,
  0x2c,
  0x0a,
  0x0d,
  0x09,
  0x7b,
  0x7d,
  0x5b,
  0x5d,
  0x3a,
  0x5c,
  0xc3,
  0xe2,
  0xef,
];

// raw text spliced into files or in place of JSON values
const DEEP = 50_000;
const TOKENS = [
  "1e999",
  "-1e999",
  "-1",
  "0",
  "-0",
  "1.5",
  "NaN",
  "Infinity",
  "99999999999999999999",
  "4294967296",
  "2147483648",
  "9007199254740993",
  "1e-320",
  "null",
  "true",
  '""',
  "[]",
  "{}",
  '"__proto__"',
  '"constructor"',
  '"toString"',
  "\u0000",
  "\ufeff",
  "\\u0000",
  '"\\ud800"',
  '"',
  "\n",
  "\r\n",
  ",",
  "\t",
  "'",
  "\\",
  ";",
  "1970-01-01T00:00:00Z",
  "+275760-09-13T00:00:01Z",
];
const deepArray = () => "[".repeat(DEEP) + "]".repeat(DEEP);
const deepObject = () => '{"a":'.repeat(DEEP) + "1" + "}".repeat(DEEP);

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A raw text token: one of TOKENS, rarely a deep nesting or a long run. */
function token(rng: Rng): string {
  const r = rng.int(40);
  if (r === 0) return deepArray();
  if (r === 1) return deepObject();
  if (r === 2) return "x".repeat(1 + rng.int(1 << 20)); // a long line
  return pick(rng, TOKENS);
}

// ---- byte level

function chunk(rng: Rng, n: number): [number, number] {
  const a = rng.int(n + 1);
  const len = rng.int(3) === 0 ? rng.int(n - a + 1) : rng.int(Math.min(16, n - a) + 1);
  return [a, a + len];
}

/** One random byte-level edit. */
export function mutateBytes(b: Uint8Array, rng: Rng): Uint8Array {
  const n = b.length;
  switch (rng.int(9)) {
    case 0: { // flip bits
      const out = b.slice();
      for (let k = 1 + rng.int(8); k > 0 && n > 0; k--) out[rng.int(n)]! ^= 1 << rng.int(8);
      return out;
    }
    case 1: { // interesting bytes
      const out = b.slice();
      for (let k = 1 + rng.int(4); k > 0 && n > 0; k--) out[rng.int(n)] = pick(rng, BYTES);
      return out;
    }
    case 2: { // delete a chunk
      const [s, e] = chunk(rng, n);
      return concat(b.subarray(0, s), b.subarray(e));
    }
    case 3: { // duplicate a chunk elsewhere
      const [s, e] = chunk(rng, n);
      const at = rng.int(n + 1);
      return concat(b.subarray(0, at), b.subarray(s, e), b.subarray(at));
    }
    case 4: // truncate
      return b.slice(0, rng.int(n + 1));
    case 5: { // insert a token
      const at = rng.int(n + 1);
      return concat(b.subarray(0, at), enc.encode(token(rng)), b.subarray(at));
    }
    case 6: { // overwrite a number with a token
      const text = dec.decode(b);
      const nums = [...text.matchAll(/-?\d+(\.\d+)?(e-?\d+)?/g)];
      if (nums.length === 0) return mutateBytes(b, rng);
      const m = pick(rng, nums);
      return enc.encode(text.slice(0, m.index) + token(rng) + text.slice(m.index + m[0].length));
    }
    case 7: { // swap two chunks
      const [s1, e1] = chunk(rng, n);
      const [s2, e2] = chunk(rng, n);
      if (e1 > s2) return mutateBytes(b, rng);
      return concat(
        b.subarray(0, s1),
        b.subarray(s2, e2),
        b.subarray(e1, s2),
        b.subarray(s1, e1),
        b.subarray(e2),
      );
    }
    default: { // append junk
      const junk = new Uint8Array(1 + rng.int(64));
      for (let i = 0; i < junk.length; i++) junk[i] = rng.int(256);
      return concat(b, junk);
    }
  }
}

// ---- text lines

function mutateLines(text: string, rng: Rng): string {
  const lines = text.split("\n");
  const i = rng.int(lines.length), j = rng.int(lines.length);
  switch (rng.int(6)) {
    case 0: // duplicate a line
      lines.splice(j, 0, lines[i]!);
      break;
    case 1: // drop a line (the header too)
      lines.splice(i, 1);
      break;
    case 2: // swap two lines
      [lines[i], lines[j]] = [lines[j]!, lines[i]!];
      break;
    case 3: { // drop or add a field separator
      const l = lines[i]!;
      const at = l.search(/[,\t]/);
      lines[i] = at >= 0 && rng.int(2)
        ? l.slice(0, at) + l.slice(at + 1)
        : l + pick(rng, [",", "\t"]);
      break;
    }
    case 4: // no newline at all
      return lines.join(pick(rng, ["", "\r", " "]));
    default: // a field replaced by a token
      lines[i] = lines[i]!.replace(/[^,\t]*/, token(rng));
  }
  return lines.join("\n");
}

// ---- JSON structure

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
const RAW = "\u0001raw";

/** Every path into `v` (at most 4,000), the root included. */
function paths(v: Json, at: (string | number)[] = [], out: (string | number)[][] = []) {
  if (out.length >= 4000 || at.length > 100) return out;
  out.push(at);
  if (Array.isArray(v)) v.slice(0, 64).forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === "object") {
    for (const k of Object.keys(v).slice(0, 64)) paths(v[k]!, [...at, k], out);
  }
  return out;
}

function replacement(old: Json, rng: Rng, raws: string[]): Json {
  switch (rng.int(10)) {
    case 0:
    case 1: {
      raws.push(token(rng));
      return `${RAW}${raws.length - 1}`;
    }
    case 2:
      return pick(rng, [null, true, false, "", "x", [], {}]);
    case 3:
      return pick(rng, [-1, 0, 1, 0.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53 + 2, 1e300, -(2 ** 31)]);
    case 4:
      return typeof old === "number" ? String(old) : typeof old === "string" ? Number(old) || 7 : 3;
    case 5:
      return Array.isArray(old) ? [...old, ...old] : [old];
    case 6:
      return Array.isArray(old)
        ? old.slice(0, rng.int(old.length + 1))
        : { [JSON.stringify(old)?.slice(0, 20) ?? "k"]: old };
    case 7:
      return typeof old === "string" ? old + pick(rng, ["\u0000", "/", "..", "\ud800", "é"]) : old;
    case 8: {
      const o: { [k: string]: Json } = JSON.parse('{"__proto__": {"x": 1}}');
      o[pick(rng, ["constructor", "toString", "hasOwnProperty", "0"])] = old;
      return o;
    }
    default:
      return Array.isArray(old) ? old.map((x, i) => (i === 0 ? -1 : x)) : null;
  }
}

/** The JSON text `text` with one value (or key) replaced; falls back to byte edits. */
export function mutateJsonText(text: string, rng: Rng): string {
  let v: Json;
  try {
    v = JSON.parse(text);
  } catch {
    return dec.decode(mutateBytes(enc.encode(text), rng));
  }
  const ps = paths(v);
  const raws: string[] = [];
  for (let k = 1 + (rng.int(4) === 0 ? rng.int(3) : 0); k > 0; k--) {
    const p = pick(rng, ps);
    if (p.length === 0) {
      v = replacement(v, rng, raws);
      continue;
    }
    // an earlier edit of this case may have replaced a node on the path: walk it with care
    let parent: Json = v;
    for (const key of p.slice(0, -1)) {
      parent = parent !== null && typeof parent === "object"
        ? (parent as Record<string, Json>)[key] ?? null
        : null;
    }
    const last = p[p.length - 1]!;
    if (parent === null || typeof parent !== "object") continue;
    const obj = parent as Record<string | number, Json>;
    if (!Array.isArray(parent) && rng.int(6) === 0) {
      // rename or delete the key
      const val = obj[last]!;
      delete obj[last];
      if (rng.int(2)) obj[pick(rng, ["__proto__", "constructor", "", String(last) + " "])] = val;
    } else obj[last] = replacement(obj[last] ?? null, rng, raws);
  }
  let out: string;
  try {
    out = JSON.stringify(v, null, rng.int(2) ? 1 : undefined) ?? "null";
  } catch { // a nesting deeper than the stack (an earlier edit of this case)
    return dec.decode(mutateBytes(enc.encode(text), rng));
  }
  // JSON.stringify writes the sentinel's control character as \u0001
  out = out.replace(/"\\u0001raw(\d+)"/g, (_, i) => raws[Number(i)]!);
  return out;
}

// ---- formats

function u64(b: Uint8Array): number {
  const dv = new DataView(b.buffer, b.byteOffset, 8);
  return Number(dv.getBigUint64(0, true));
}

function withHeader(header: Uint8Array, rest: Uint8Array): Uint8Array {
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(header.length), true);
  return concat(len, header, rest);
}

function mutateSafetensors(b: Uint8Array, rng: Rng): Uint8Array {
  if (b.length < 8) return mutateBytes(b, rng);
  const n = u64(b);
  if (n > b.length - 8) return mutateBytes(b, rng);
  const header = b.subarray(8, 8 + n), data = b.subarray(8 + n);
  switch (rng.int(6)) {
    case 0:
    case 1:
    case 2: // a structured edit of the header, with the length fixed up
      return withHeader(enc.encode(mutateJsonText(dec.decode(header), rng)), data);
    case 3: { // the length field
      const out = b.slice();
      new DataView(out.buffer).setBigUint64(
        0,
        BigInt(pick(rng, [0, 1, n - 1, n + 1, b.length, 2 ** 32, 2 ** 40, 2 ** 53])) +
          (rng.int(4) === 0 ? 2n ** 63n : 0n),
        true,
      );
      return out;
    }
    case 4: // the data section shortened or lengthened
      return rng.int(2)
        ? b.slice(0, 8 + n + rng.int(data.length + 1))
        : concat(b, new Uint8Array(1 + rng.int(32)));
    default:
      return mutateBytes(b, rng);
  }
}

function mutateNpy(b: Uint8Array, rng: Rng): Uint8Array {
  // magic (6) + version (2) + header length (2, v1) + header dict text
  if (b.length < 10 || rng.int(3) === 0) return mutateBytes(b, rng);
  const hl = b[8]! | (b[9]! << 8);
  const header = dec.decode(b.subarray(10, 10 + hl));
  const edits: [RegExp, () => string][] = [
    [
      /'descr': '[^']*'/,
      () => `'descr': '${pick(rng, ["<f2", ">f4", "<c8", "|O", "__proto__", "<i8", "|S3", ""])}'`,
    ],
    [
      /\((\d+, ?)*\d*,?\)/,
      () =>
        pick(rng, [
          "()",
          "(-1,)",
          "(0,)",
          "(4294967296, 4294967296)",
          "(1e3,)",
          "(2, 3, 4, 5)",
          "(a,)",
        ]),
    ],
    [/'fortran_order': \w+/, () => `'fortran_order': ${pick(rng, ["True", "1", "'no'"])}`],
    [/\{/, () => pick(rng, ["{'__proto__': 1, ", "{{", "{'descr': '<f4', "])],
  ];
  const [re, f] = pick(rng, edits);
  const h = enc.encode(header.replace(re, f));
  const len = new Uint8Array([h.length & 0xff, (h.length >> 8) & 0xff]);
  return concat(b.subarray(0, 8), len, h, b.subarray(10 + hl));
}

/** `b` gzip-compressed (one member). */
export async function gzipBytes(b: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([b as BlobPart]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

async function gunzipBytes(b: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([b as BlobPart]).stream().pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

function mutateText(b: Uint8Array, rng: Rng, kind: "text" | "json" | "jsonl"): Uint8Array {
  const r = rng.int(10);
  if (r < 4) return mutateBytes(b, rng);
  const text = dec.decode(b);
  if (kind === "json") return enc.encode(mutateJsonText(text, rng));
  if (kind === "jsonl" && r < 8) {
    const lines = text.split("\n");
    const i = rng.int(Math.max(1, lines.length - 1));
    lines[i] = mutateJsonText(lines[i]!, rng).replace(/\n/g, " ");
    return enc.encode(lines.join("\n"));
  }
  return enc.encode(mutateLines(text, rng));
}

/** The `i`-th mutant of `seed`: 1–3 stacked edits, the same for the same (rng state, seed). */
export async function mutate(seed: Uint8Array, kind: SeedKind, rng: Rng): Promise<Uint8Array> {
  let b = seed;
  for (let k = 1 + (rng.int(3) === 0 ? rng.int(3) : 0); k > 0; k--) {
    switch (kind) {
      case "text":
      case "json":
      case "jsonl":
        b = mutateText(b, rng, kind);
        break;
      case "safetensors":
        b = mutateSafetensors(b, rng);
        break;
      case "npy":
        b = mutateNpy(b, rng);
        break;
      case "gz": {
        const r = rng.int(4);
        if (r === 0) b = mutateBytes(b, rng);
        else if (r === 1) {
          b = concat(b, await gzipBytes(mutateText(enc.encode("x\n"), rng, "text")));
        } else {
          let plain: Uint8Array;
          try {
            plain = await gunzipBytes(b);
          } catch {
            b = mutateBytes(b, rng);
            break;
          }
          b = await gzipBytes(mutateText(plain, rng, "jsonl"));
        }
        break;
      }
      default:
        b = mutateBytes(b, rng);
    }
  }
  return b;
}
