// An independent statement of the safetensors rules (huggingface/safetensors' format description),
// for the fuzz harness to count invalid files a reader accepts and valid ones it rejects. Written
// apart from lib/io/safetensors.ts on purpose: duplicate names are found by counting the header's
// top-level keys in the text, not by a key scan.

const ITEM: Record<string, number> = {
  F32: 4,
  F16: 2,
  BF16: 2,
  I8: 1,
  U8: 1,
  I32: 4,
  I64: 8,
  BOOL: 1,
};

/** The number of `"key":` pairs at the top level of a JSON object text (strings skipped). */
function topLevelPairs(text: string): number {
  let depth = 0, pairs = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === "\\") i++;
    } else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") depth--;
    else if (c === ":" && depth === 1) pairs++;
  }
  return pairs;
}

const natural = (x: unknown) => typeof x === "number" && Number.isSafeInteger(x) && x >= 0;

/** Whether `b` is a safetensors file whose tensors all have a dtype lmkit reads. */
export function safetensorsValid(b: Uint8Array): boolean {
  if (b.length < 8) return false;
  const n = new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
  if (n > 100_000_000n || n > BigInt(b.length - 8)) return false;
  let text: string, header: unknown;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(b.subarray(8, 8 + Number(n)));
    header = JSON.parse(text);
  } catch {
    return false;
  }
  // "The header data MUST begin with a { character"; it may be padded with spaces after
  if (text[0] !== "{") return false;
  if (typeof header !== "object" || header === null || Array.isArray(header)) return false;
  const entries = Object.entries(header);
  if (topLevelPairs(text) !== entries.length) return false;
  const data = b.length - 8 - Number(n);
  const spans: [number, number][] = [];
  for (const [name, v] of entries) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    if (name === "__metadata__") {
      if (!Object.values(v).every((s) => typeof s === "string")) return false;
      continue;
    }
    const { dtype, shape, data_offsets: off } = v as Record<string, unknown>;
    if (typeof dtype !== "string" || !(dtype in ITEM) || !Object.hasOwn(ITEM, dtype)) return false;
    if (!Array.isArray(shape) || !shape.every(natural)) return false;
    if (!Array.isArray(off) || off.length !== 2 || !off.every(natural)) return false;
    const [s, e] = off as [number, number];
    let bytes = ITEM[dtype]!;
    for (const d of shape as number[]) bytes *= d;
    if (e < s || e - s !== bytes) return false;
    spans.push([s, e]);
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let at = 0;
  for (const [s, e] of spans) {
    if (s !== at) return false;
    at = e;
  }
  return at === data;
}
