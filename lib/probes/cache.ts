/**
 * Hidden states cached on disk: one safetensors file per dataset × variant, named by a key that
 * hashes the model's weights, the prompt template and the items, so a changed model, template or
 * item list is never served stale states.
 *
 * @module
 */
import { FormatError } from "../core/errors.ts";
import { SafetensorsFile, writeSafetensors } from "../io/safetensors.ts";
import type { ContrastStates } from "./collect.ts";

const hex = (b: ArrayBuffer) =>
  Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");

/** SHA-256 (hex) of a string. */
export async function sha256Text(text: string): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/**
 * A hash of a checkpoint's weights: SHA-256 over the SHA-256 of each 4 MiB block of every
 * `*.safetensors` file in `dir` (sorted by name), streamed, so large checkpoints are not read
 * into memory at once.
 *
 * @example
 * ```ts
 * import { weightsHash } from "./cache.ts";
 * const h = await weightsHash("data/models/tinyllama-bytes");
 * if (!/^[0-9a-f]{64}$/.test(h)) throw new Error(h);
 * ```
 */
export async function weightsHash(dir: string): Promise<string> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.endsWith(".safetensors")) files.push(e.name);
  }
  if (files.length === 0) throw new FormatError(`'${dir}' has no .safetensors file to hash`);
  files.sort();
  const digests: Uint8Array[] = [];
  const block = new Uint8Array(4 << 20);
  for (const name of files) {
    digests.push(new TextEncoder().encode(name));
    using f = await Deno.open(`${dir}/${name}`, { read: true });
    for (;;) {
      let got = 0;
      while (got < block.length) {
        const r = await f.read(block.subarray(got));
        if (r === null) break;
        got += r;
      }
      if (got === 0) break;
      digests.push(new Uint8Array(await crypto.subtle.digest("SHA-256", block.subarray(0, got))));
      if (got < block.length) break;
    }
  }
  const all = new Uint8Array(digests.reduce((s, d) => s + d.length, 0));
  let o = 0;
  for (const d of digests) all.set(d, (o += d.length) - d.length);
  return hex(await crypto.subtle.digest("SHA-256", all));
}

/** Writes `states` to `path` (all-or-nothing) with the key in its metadata. */
export async function saveStates(path: string, states: ContrastStates, key: string): Promise<void> {
  const { layers: L, count: N, dim: D } = states;
  const stack = (side: Float32Array[]) => {
    const out = new Float32Array(L * N * D);
    side.forEach((a, l) => out.set(a, l * N * D));
    return out;
  };
  await writeSafetensors(path, {
    neg: { dtype: "F32", shape: [L, N, D], data: stack(states.neg) },
    pos: { dtype: "F32", shape: [L, N, D], data: stack(states.pos) },
    lm_diff: { dtype: "F32", shape: [N], data: Float32Array.from(states.lmDiff) },
  }, { key, format: "lmkit-contrast-states-v1" });
}

/**
 * Reads states written by {@linkcode saveStates}; null when the file is absent or holds another
 * key. A file with the right key but wrong tensors fails with a FormatError naming it.
 */
export async function loadStates(path: string, key: string): Promise<ContrastStates | null> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    if (f.metadata.key !== key) return null;
    const shape = f.tensors.neg?.shape;
    const [L, N, D] = shape ?? [];
    const ok = shape?.length === 3 && f.tensors.pos?.shape.join() === shape.join() &&
      f.tensors.lm_diff?.shape.join() === String(N);
    if (!ok || L === undefined || N === undefined || D === undefined) {
      throw new FormatError(
        `Cached states '${path}' do not hold neg/pos [L, N, D] and lm_diff [N] tensors`,
      );
    }
    const split = (a: Float32Array) =>
      Array.from({ length: L }, (_, l) => a.slice(l * N * D, (l + 1) * N * D));
    const neg = split((await f.readFloat32("neg")).data as Float32Array);
    const pos = split((await f.readFloat32("pos")).data as Float32Array);
    const lmDiff = Float64Array.from((await f.readFloat32("lm_diff")).data as Float32Array);
    return { layers: L, count: N, dim: D, neg, pos, lmDiff };
  } finally {
    f.close();
  }
}

/**
 * States from the cache at `path` when it holds `key`, else computed by `compute` and cached.
 *
 * @returns The states and whether they came from the cache.
 */
export async function cachedStates(
  path: string,
  key: string,
  compute: () => ContrastStates,
): Promise<{ states: ContrastStates; cached: boolean }> {
  const hit = await loadStates(path, key);
  if (hit) return { states: hit, cached: true };
  const states = compute();
  await saveStates(path, states, key);
  return { states, cached: false };
}
