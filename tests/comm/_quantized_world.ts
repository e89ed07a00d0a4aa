// One rank of a quantized-collectives test world, started by tests/comm/quantized_test.ts as
//   mpirun -np N deno run --allow-ffi=ffi/build --allow-env tests/comm/_quantized_world.ts --seed S
// Every rank derives every rank's data from the seed and simulates each collective in one
// process (the ts quantizer with the same seeds, sums in rank order): the collective's result
// must equal the simulation bit for bit, its byte count the formula, and every rank's result
// every other's. Prints `rank R: ok …` lines, or `rank R: FAIL …` and exits 1.
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import {
  dequantizeBuckets,
  dequantizeBucketsAdd,
  quantizeBuckets,
  quantizedBytes,
} from "../../lib/comm/quantize.ts";
import {
  collectiveSeed,
  QuantizedCollectives,
  type QuantizedOptions,
  type QuantizedResult,
  type WireBytes,
} from "../../lib/comm/quantized.ts";
import { NumericalError } from "../../lib/core/errors.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { seed: { type: "string", default: "1" } },
});
const seed = Number(values.seed);
const comm = createCommunicator("mpi", { timeoutSeconds: 60 });
const { rank, size } = comm;
const say = (s: string) => console.log(`rank ${rank}: ${s}`);

function mix(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h ^= h >>> 12;
  }
  return h >>> 0 || 1;
}

/** n values k/8, |k| ≤ 1000, of rank r in call `tag` (uncompressed sums exact in any order). */
function data(tag: number, r: number, n: number): Float32Array {
  const out = new Float32Array(n);
  let s = mix(seed, tag, r, n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (((s >>> 0) % 2001) - 1000) / 8;
  }
  return out;
}

function same(what: string, got: Float32Array, want: Float32Array): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: ${got.length} elements, expected ${want.length}`);
  }
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i])) {
      throw new Error(`${what}: [${i}] is ${got[i]}, expected ${want[i]}`);
    }
  }
}

function sameBytes(what: string, got: WireBytes, want: WireBytes): void {
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`${what}: bytes ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  }
}

/** Every rank holds the same `x` (checked through an all-gather of the bytes). */
function identical(what: string, x: Float32Array): void {
  const all = comm.allGatherSync(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  const mine = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
  for (let r = 0; r < size; r++) {
    const theirs = all.subarray(r * mine.length, (r + 1) * mine.length);
    if (theirs.some((v, i) => v !== mine[i])) {
      throw new Error(`${what}: rank ${r}'s result differs`);
    }
  }
}

// ---- the single-process simulations (ts quantizer) ----

interface Sim {
  o: QuantizedOptions;
  base: number;
}

function qd(s: Sim, x: Float32Array, sd: number): Uint8Array {
  return quantizeBuckets(x, { ...s.o, seed: sd, backend: "ts" });
}

function simGather(s: Sim, call: number, shards: Float32Array[]): Float32Array {
  const n = shards[0]!.length, out = new Float32Array(size * n);
  shards.forEach((x, r) => {
    const msg = qd(s, x, collectiveSeed(s.base, call, "gather", r));
    dequantizeBuckets(msg, n, { ...s.o, backend: "ts" }, out.subarray(r * n, (r + 1) * n));
  });
  return out;
}

/** The owner's sum of chunk `owner` of every rank's chunks (chunk(r) of rank r's send). */
function simReduce(s: Sim, call: number, owner: number, chunkOf: (r: number) => Float32Array) {
  const out = new Float32Array(chunkOf(owner).length);
  for (let r = 0; r < size; r++) {
    const c = chunkOf(r);
    if (r === owner) { for (let i = 0; i < out.length; i++) out[i]! += c[i]!; }
    else {
      const msg = qd(s, c, collectiveSeed(s.base, call, "scatter", r, owner));
      dequantizeBucketsAdd(msg, out, { ...s.o, backend: "ts" });
    }
  }
  return out;
}

// ---- the checks ----

const OPTIONS: QuantizedOptions[] = [
  { bits: 4, minElements: 0, seed: seed % 1000 },
  { bits: 3, bucketSize: 7, meta: "f16", rounding: "nearest", minElements: 0, seed: 5 },
  { bits: 8, bucketSize: 64, minElements: 600, seed: 77 },
];
const SIZES = [0, 1, 7, 1025, 30011];
let count = 0;

async function run(o: QuantizedOptions, oi: number, mode: "sync" | "async"): Promise<void> {
  const q = new QuantizedCollectives(comm, o), s: Sim = { o, base: o.seed ?? 0 };
  const spec = {
    bits: o.bits,
    ...(o.bucketSize ? { bucketSize: o.bucketSize } : {}),
    ...(o.meta ? { meta: o.meta } : {}),
  };
  const mb = (n: number) => quantizedBytes(n, spec);
  const min = o.minElements ?? 1024;
  const go = (sync: () => QuantizedResult, async: () => Promise<QuantizedResult>) =>
    mode === "sync" ? Promise.resolve(sync()) : async();
  for (const [si, n] of SIZES.entries()) {
    const at = (what: string) => `${what} options ${oi} ${mode} n=${n}`;
    const tag = 100 * oi + 10 * si + (mode === "sync" ? 0 : 5);
    // all-gather of shards of n
    {
      const shards = Array.from({ length: size }, (_, r) => data(tag, r, n));
      const call = q.calls;
      const r = await go(() => q.allGatherSync(shards[rank]!), () => q.allGather(shards[rank]!));
      const compressed = size * n >= min, per = compressed ? mb(n) : 4 * n;
      same(at("allGather"), r.out, compressed ? simGather(s, call, shards) : concatF(shards));
      sameBytes(at("allGather"), r.bytes, {
        compressed,
        sent: (size - 1) * per,
        received: (size - 1) * per,
        uncompressed: (size - 1) * n * 4,
      });
      identical(at("allGather"), r.out);
      count++;
    }
    // reduce-scatter of size chunks of n
    {
      const sends = Array.from({ length: size }, (_, r) => data(tag + 1, r, size * n));
      const call = q.calls;
      const r = await go(
        () => q.reduceScatterSync(sends[rank]!),
        () => q.reduceScatter(sends[rank]!),
      );
      const compressed = size * n >= min, per = compressed ? mb(n) : 4 * n;
      const chunk = (r: number) => sends[r]!.subarray(rank * n, (rank + 1) * n);
      same(
        at("reduceScatter"),
        r.out,
        compressed ? simReduce(s, call, rank, chunk) : sumOf(size, chunk),
      );
      sameBytes(at("reduceScatter"), r.bytes, {
        compressed,
        sent: (size - 1) * per,
        received: (size - 1) * per,
        uncompressed: (size - 1) * n * 4,
      });
      count++;
    }
    // all-reduce of size·n + 3 elements (chunks of unequal length)
    {
      const total = size * n + (n ? 3 : 0);
      const bufs = Array.from({ length: size }, (_, r) => data(tag + 2, r, total));
      const call = q.calls;
      const mine = bufs[rank]!.slice();
      const r = await go(() => q.allReduceSync(mine), () => q.allReduce(mine));
      const c = Math.ceil(total / size);
      const lo = (j: number) => Math.min(j * c, total),
        hi = (j: number) => Math.min((j + 1) * c, total);
      const lens = Array.from({ length: size }, (_, j) => hi(j) - lo(j));
      const compressed = total >= min;
      let want: Float32Array;
      if (compressed) {
        want = new Float32Array(total);
        for (let j = 0; j < size; j++) {
          const red = simReduce(s, call, j, (r) => bufs[r]!.subarray(lo(j), hi(j)));
          const msg = qd(s, red, collectiveSeed(s.base, call, "gather", j));
          dequantizeBuckets(msg, lens[j]!, { ...o, backend: "ts" }, want.subarray(lo(j), hi(j)));
        }
      } else {
        want = sumOf(size, (r) => bufs[r]!);
      }
      same(at("allReduce"), r.out, want);
      if (r.out !== mine) throw new Error(`${at("allReduce")}: not in place`);
      const per = compressed ? mb : (k: number) => 4 * k;
      const others = (f: (k: number) => number) =>
        lens.reduce((a, k, j) => a + (j === rank ? 0 : f(k)), 0);
      const sent = others(per) + (size - 1) * per(lens[rank]!);
      sameBytes(at("allReduce"), r.bytes, {
        compressed,
        sent,
        received: sent,
        uncompressed: others((k) => 4 * k) + (size - 1) * 4 * lens[rank]!,
      });
      identical(at("allReduce"), r.out);
      count++;
    }
  }
}

function concatF(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

function sumOf(k: number, part: (r: number) => Float32Array): Float32Array {
  const out = new Float32Array(part(0).length);
  for (let r = 0; r < k; r++) for (let i = 0; i < out.length; i++) out[i]! += part(r)[i]!;
  return out;
}

try {
  for (const [oi, o] of OPTIONS.entries()) {
    await run(o, oi, "sync");
    await run(o, oi, "async");
  }
  say(`ok ${count} quantized collectives equal their single-process simulation`);
  // two Promise calls in flight at once, awaited together
  {
    const q = new QuantizedCollectives(comm, { bits: 5, minElements: 0, seed: 9 });
    const a = data(900, rank, 5000), b = data(901, rank, 3000);
    const [ra, rb] = await Promise.all([q.allReduce(a), q.allGather(b)]);
    identical("overlapped allReduce", ra.out);
    identical("overlapped allGather", rb.out);
    const q2 = new QuantizedCollectives(comm, { bits: 5, minElements: 0, seed: 9 });
    const a2 = data(900, rank, 5000);
    q2.allReduceSync(a2);
    same("overlapped allReduce against blocking", ra.out, a2);
    same(
      "overlapped allGather against blocking",
      rb.out,
      q2.allGatherSync(data(901, rank, 3000)).out,
    );
    say("ok overlapped");
  }
  // a NaN on rank 1: it throws naming the index; in the all-reduce every rank throws
  {
    const q = new QuantizedCollectives(comm, { bits: 4, minElements: 0 });
    const x = data(950, rank, 2000);
    if (rank === 1) x[1234] = NaN;
    let msg = "none";
    try {
      q.allReduceSync(x);
    } catch (e) {
      if (!(e instanceof NumericalError)) throw e;
      msg = e.message;
    }
    if (rank === 1 && !/x\[\d+\] is NaN/.test(msg)) throw new Error(`NaN rank: ${msg}`);
    if (msg === "none") throw new Error("a NaN on rank 1 did not fail the all-reduce here");
    const g = data(951, rank, 100);
    if (rank === 1) g[7] = Infinity;
    const out = new Float32Array(size * 100);
    msg = "none";
    try {
      q.allGatherSync(g, out);
    } catch (e) {
      if (!(e instanceof NumericalError)) throw e;
      msg = e.message;
    }
    const want = rank === 1 ? /x\[7\] is Infinity/ : /rank 1's data held NaN or Infinity/;
    if (!want.test(msg)) throw new Error(`all-gather with an Infinity on rank 1: ${msg}`);
    if (!Number.isNaN(out[100 + 7]) || out[0] !== out[0]) {
      throw new Error("rank 1's shard is not NaN");
    }
    say("ok nan");
  }
  comm.close();
} catch (e) {
  say(`FAIL ${(e as Error).stack ?? e}`);
  Deno.exit(1);
}
