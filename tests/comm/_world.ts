// One rank of a test world, started by tests/comm/mpi_test.ts as
//   mpirun -np N deno run --allow-ffi=ffi/build tests/comm/_world.ts SCENARIO --seed S [--timeout T]
// Every rank derives every other rank's data from the seed, so the exact result of each
// collective is known on every rank. Prints `rank R: ok …` lines, or `rank R: FAIL …` and exits 1.
//   collectives  every collective, blocking and non-blocking, on sizes 0, 1, 7 and 1,000,003, with
//                the default chunk limit and with 65,537 (large buffers take the split paths)
//   mismatch     sizes, roots, operations that differ between ranks and an invalid argument on
//                one rank: every rank fails with a clear sentence, and the communicator goes on
//   absent       rank 1 never joins an all-reduce: the others fail after the timeout
//   killed       ranks loop over collectives (--mode sync|async) until the test kills one
import { parseArgs } from "node:util";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { MpiCommunicator } from "../../lib/comm/mpi.ts";

const { values, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    seed: { type: "string", default: "1" },
    timeout: { type: "string", default: "60" },
    mode: { type: "string", default: "async" },
  },
});
const scenario = positionals[0] ?? "collectives";
const seed = Number(values.seed);
const created = createCommunicator("mpi", { timeoutSeconds: Number(values.timeout) });
if (!(created instanceof MpiCommunicator)) throw new Error("expected the mpi communicator");
const comm: MpiCommunicator = created;
const { rank, size } = comm;
const say = (s: string) => console.log(`rank ${rank}: ${s}`);

// ---- seeded data: every rank can compute every other rank's ----

function mix(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193);
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
    h ^= h >>> 12;
  }
  return h >>> 0 || 1;
}

/** n bytes that rank `from` sends to `to` (−1: to everyone) in call `tag`. */
function bytes(tag: number, from: number, to: number, n: number): Uint8Array {
  const out = new Uint8Array(n), words = new Uint32Array(out.buffer, 0, n >>> 2);
  let s = mix(seed, tag, from, to + 1, n);
  for (let i = 0; i < words.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = s;
  }
  for (let i = words.length * 4; i < n; i++) out[i] = mix(s, i) & 255;
  return out;
}

/** n floats k/8 (k an integer in [−1000, 1000]: sums over ranks are exact in any order). */
function f32s(tag: number, r: number, block: number, n: number): Float32Array {
  const out = new Float32Array(n);
  let s = mix(seed, tag, r, block, n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (((s >>> 0) % 2001) - 1000) / 8;
  }
  return out;
}

/** n doubles k/1024 with |k| < 2^41 (sums over ranks exact in any order). */
function f64s(tag: number, r: number, n: number): Float64Array {
  const out = new Float64Array(n);
  let s = mix(seed, tag, r, 7, n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const hi = (s >>> 0) % 2 ** 20;
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (hi * 2 ** 21 + ((s >>> 0) % 2 ** 21) - 2 ** 40) / 1024;
  }
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) out.set(p, o), o += p.length;
  return out;
}

function same(what: string, got: ArrayLike<number>, want: ArrayLike<number>): void {
  if (got.length !== want.length) {
    throw new Error(`${what}: length ${got.length}, expected ${want.length}`);
  }
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i] && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      throw new Error(`${what}: element ${i} is ${got[i]}, expected ${want[i]}`);
    }
  }
}

const SIZES = [0, 1, 7, 1_000_003];
const ranks = [...Array(size).keys()];

// ---- every collective against its definition ----

/** The checks of one size: each issues its call and returns the check of its result. */
function checks(n: number, si: number, mode: string): [string, () => Promise<() => void>][] {
  const sync = mode === "sync";
  const tag = (k: number) => 1000 * si + k;
  const list: [string, () => Promise<() => void>][] = [];
  list.push([`allReduce f32 n=${n}`, async () => {
    const buf = f32s(tag(1), rank, 0, n);
    sync ? comm.allReduceSync(buf) : await comm.allReduce(buf);
    return () => {
      const want = new Float32Array(n);
      for (const r of ranks) {
        const x = f32s(tag(1), r, 0, n);
        for (let i = 0; i < n; i++) want[i] = want[i]! + x[i]!;
      }
      same("sum", buf, want);
    };
  }]);
  list.push([`allReduce f64 n=${n}`, async () => {
    const buf = f64s(tag(2), rank, n);
    sync ? comm.allReduceSync(buf) : await comm.allReduce(buf);
    return () => {
      const want = new Float64Array(n);
      for (const r of ranks) {
        const x = f64s(tag(2), r, n);
        for (let i = 0; i < n; i++) want[i] = want[i]! + x[i]!;
      }
      same("sum", buf, want);
    };
  }]);
  list.push([`reduceScatter f32 block=${n}`, async () => {
    const send = new Float32Array(size * n);
    for (const b of ranks) send.set(f32s(tag(3), rank, b, n), b * n);
    const got = sync
      ? comm.reduceScatterSync(send, new Float32Array(n))
      : await comm.reduceScatter(send);
    return () => {
      const want = new Float32Array(n);
      for (const r of ranks) {
        const x = f32s(tag(3), r, rank, n);
        for (let i = 0; i < n; i++) want[i] = want[i]! + x[i]!;
      }
      same("block", got, want);
    };
  }]);
  list.push([`allGather n=${n}`, async () => {
    const send = bytes(tag(4), rank, -1, n);
    const got = sync
      ? comm.allGatherSync(send, new Uint8Array(size * n))
      : await comm.allGather(send);
    return () => same("gathered", got, concat(ranks.map((r) => bytes(tag(4), r, -1, n))));
  }]);
  // variable sizes: rank r contributes SIZES[(r + si) % 4] bytes
  const vlen = (r: number) => SIZES[(r + si) % SIZES.length]!;
  list.push([`allGatherV lengths=${ranks.map(vlen)}`, async () => {
    const send = bytes(tag(5), rank, -1, vlen(rank));
    const got = sync ? comm.allGatherVSync(send) : await comm.allGatherV(send);
    return () => {
      same("parts", got.map((p) => p.length), ranks.map(vlen));
      for (const r of ranks) same(`part ${r}`, got[r]!, bytes(tag(5), r, -1, vlen(r)));
    };
  }]);
  list.push([`allToAll block=${n}`, async () => {
    const send = concat(ranks.map((j) => bytes(tag(6), rank, j, n)));
    const got = sync
      ? comm.allToAllSync(send, new Uint8Array(size * n))
      : await comm.allToAll(send);
    return () => same("received", got, concat(ranks.map((r) => bytes(tag(6), r, rank, n))));
  }]);
  // r sends SIZES[(r + 2j + si) % 4] bytes to j
  const alen = (r: number, j: number) => SIZES[(r + 2 * j + si) % SIZES.length]!;
  list.push([`allToAllV lengths from rank ${rank}=${ranks.map((j) => alen(rank, j))}`, async () => {
    const parts = ranks.map((j) => bytes(tag(7), rank, j, alen(rank, j)));
    let send = parts;
    if (sync) { // views of one buffer (sent without a copy)
      const one = concat(parts);
      let o = 0;
      send = parts.map((p) => one.subarray(o, o += p.length));
    }
    const got = sync ? comm.allToAllVSync(send) : await comm.allToAllV(send);
    return () => {
      same("parts", got.map((p) => p.length), ranks.map((r) => alen(r, rank)));
      for (const r of ranks) same(`part ${r}`, got[r]!, bytes(tag(7), r, rank, alen(r, rank)));
    };
  }]);
  for (const root of new Set([0, size - 1])) {
    list.push([`broadcast n=${n} root=${root}`, async () => {
      const buf = rank === root ? bytes(tag(8), root, -1, n) : new Uint8Array(n).fill(0xee);
      sync ? comm.broadcastSync(buf, root) : await comm.broadcast(buf, root);
      return () => same("buffer", buf, bytes(tag(8), root, -1, n));
    }]);
  }
  list.push([`barrier`, async () => {
    sync ? comm.barrierSync() : await comm.barrier();
    return () => {};
  }]);
  return list;
}

async function collectives(): Promise<void> {
  let count = 0;
  for (const maxCount of [2 ** 31 - 1, 65_537]) {
    comm.configureSync({ maxCount });
    for (const mode of ["sync", "async"]) {
      for (const [si, n] of SIZES.entries()) {
        const list = checks(n, si, mode);
        // non-blocking: every call of this size in flight at once, then the checks
        const verify = mode === "sync"
          ? await list.reduce<Promise<(() => void)[]>>(
            async (acc, [, run]) => [...await acc, await run()],
            Promise.resolve([]),
          )
          : await Promise.all(list.map(([, run]) => run()));
        verify.forEach((v, i) => {
          try {
            v();
          } catch (e) {
            throw new Error(
              `${mode} ${list[i]![0]} (maxCount ${maxCount}): ${(e as Error).message}`,
            );
          }
        });
        count += list.length;
      }
    }
  }
  // a blocking call while non-blocking ones (of both kinds) are in flight waits for them
  const sent = bytes(9, rank, -1, rank + 1), sum = new Float64Array([rank + 1]);
  const gathering = comm.allGatherV(sent), reducing = comm.allReduce(sum);
  const x = new Float32Array([1]);
  comm.allReduceSync(x);
  same("blocking sum", x, [size]);
  same("lengths", (await gathering).map((p) => p.length), ranks.map((r) => r + 1));
  await reducing;
  same("sum", sum, [(size * (size + 1)) / 2]);
  count += 3;
  say(`ok ${count} collectives of ${size} ranks match their definitions`);
}

// ---- failures that every rank must see ----

async function expectFailure(
  what: string,
  run: () => unknown,
  type: string,
  pattern: RegExp,
): Promise<void> {
  try {
    await run();
  } catch (e) {
    const err = e as Error;
    if (err.name !== type || !pattern.test(err.message)) {
      throw new Error(`${what}: got ${err.name}: ${err.message}; expected ${type} ${pattern}`);
    }
    say(`ok ${what}: ${err.name}: ${err.message}`);
    // the communicator goes on
    const x = new Float32Array([rank]);
    comm.allReduceSync(x);
    if (x[0] !== (size * (size - 1)) / 2) throw new Error(`${what}: the next all-reduce is wrong`);
    return;
  }
  throw new Error(`${what}: no error`);
}

async function mismatch(): Promise<void> {
  const last = rank === size - 1;
  await expectFailure(
    "all-reduce lengths",
    () => comm.allReduceSync(new Float32Array(last ? 8 : 7)),
    "ShapeError",
    /all-reduce f32 \(call #\d+\): ranks passed different element counts: (7|8) on this rank .*from 7 to 8/,
  );
  await expectFailure(
    "non-blocking all-gather lengths",
    () => comm.allGather(new Uint8Array(last ? 1_000_003 : 0)),
    "ShapeError",
    /all-gather .*ranks passed different byte counts: .*from 0 to 1000003/,
  );
  await expectFailure(
    "reduce-scatter block lengths",
    () => comm.reduceScatterSync(new Float32Array(size * (last ? 2 : 1))),
    "ShapeError",
    /reduce-scatter f32 .*ranks passed different block lengths .*: .*from 1 to 2/,
  );
  await expectFailure(
    "all-to-all block lengths",
    () => comm.allToAll(new Uint8Array(size * (last ? 7 : 1))),
    "ShapeError",
    /all-to-all .*ranks passed different block sizes .*: .*from 1 to 7/,
  );
  await expectFailure(
    "broadcast lengths",
    () => comm.broadcastSync(new Uint8Array(last ? 0 : 7), 0),
    "ShapeError",
    /broadcast .*ranks passed different byte counts: .*from 0 to 7/,
  );
  await expectFailure(
    "broadcast roots",
    () => comm.broadcast(new Uint8Array(3), last ? 1 : 0),
    "RangeError",
    /broadcast .*ranks passed different roots: [01] on this rank .*from 0 to 1/,
  );
  await expectFailure(
    "all-reduce types",
    () => comm.allReduceSync(last ? new Float64Array(3) : new Float32Array(3)),
    "CommError",
    /At call #\d+ this rank \(\d of \d\) called all-reduce f(32|64) but another rank called all-reduce f(32|64)/,
  );
  await expectFailure(
    "operations",
    () => last ? comm.barrier() : comm.allGatherV(new Uint8Array(5)),
    "CommError",
    /called (barrier|all-gather of variable sizes) but another rank called (barrier|all-gather of variable sizes)/,
  );
  await expectFailure(
    "an invalid output on the last rank",
    () => comm.allGatherSync(new Uint8Array(4), new Uint8Array(last ? 3 : 4 * size)),
    "ShapeError",
    last
      ? new RegExp(`recv holds 3 elements, expected ${4 * size}`)
      : new RegExp(`rank ${size - 1} passed an invalid argument`),
  );
  await expectFailure(
    "all-to-all of a length that is not a multiple of the ranks",
    () => comm.allToAllSync(new Uint8Array(size + 1)),
    "ShapeError",
    new RegExp(`send holds ${size + 1} bytes, not a multiple of the ${size} ranks`),
  );
  say("ok mismatch");
}

try {
  if (scenario === "collectives") await collectives();
  else if (scenario === "mismatch") await mismatch();
  else if (scenario === "absent") {
    if (rank === 1) {
      say("not joining");
      await new Promise((r) => setTimeout(r, 120_000));
    } else {
      const t0 = performance.now();
      try {
        comm.allReduceSync(new Float32Array(7));
      } catch (e) {
        say(`failed after ${((performance.now() - t0) / 1000).toFixed(1)} s: ${e}`);
        Deno.exit(1);
      }
    }
  } else if (scenario === "killed") {
    say(`pid ${Deno.pid}`);
    const buf = new Float32Array(100_003);
    for (let step = 0;; step++) {
      if (values.mode === "sync") {
        comm.allReduceSync(buf);
        comm.allGatherVSync(new Uint8Array(rank + step % 7));
      } else {
        await Promise.all([comm.allReduce(buf), comm.allGatherV(new Uint8Array(rank + step % 7))]);
      }
      if (step % 50 === 0) say(`step ${step}`);
    }
  } else throw new Error(`unknown scenario '${scenario}'`);
  comm.close();
} catch (e) {
  say(`FAIL ${(e as Error).stack ?? e}`);
  Deno.exit(1);
}
