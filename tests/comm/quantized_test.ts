// Quantized collectives (lib/comm/quantized.ts): in a world of one, and in real multi-process
// worlds (mpirun -np 2 and 4 of tests/comm/_quantized_world.ts), where every all-gather,
// reduce-scatter and all-reduce, blocking and Promise, compressed and below the size threshold,
// must equal its single-process simulation bit for bit, count its bytes as the formula says, and
// leave every rank the same result. Skipped, with one printed reason, where mpirun or the mpi
// library is missing.
import { assert, assertEquals, assertThrows } from "@std/assert";
import { createCommunicator } from "../../lib/comm/communicator.ts";
import { dequantizeBuckets, quantizeBuckets, quantizedBytes } from "../../lib/comm/quantize.ts";
import { collectiveSeed, QuantizedCollectives } from "../../lib/comm/quantized.ts";
import { NumericalError, ShapeError } from "../../lib/core/errors.ts";
import { Rng } from "../../lib/core/rng.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { freshSeed, mpirunDeno, mpirunMissing } from "../_util.ts";

const seed = freshSeed();
const skip = (await mpirunMissing()) || mpiLibrary().reason;
if (skip) console.log(`skipped the quantized mpi world tests: ${skip}`);

Deno.test("a world of one: all-gather is quantize + dequantize with call 0's seed; sums and bytes", async () => {
  using comm = createCommunicator("single");
  const q = new QuantizedCollectives(comm, { bits: 6, bucketSize: 100, minElements: 10, seed: 3 });
  const x = new Rng(seed).normalArray(1001);
  const r = q.allGatherSync(x);
  const want = dequantizeBuckets(
    quantizeBuckets(x, {
      bits: 6,
      bucketSize: 100,
      seed: collectiveSeed(3, 0, "gather", 0),
      backend: "ts",
    }),
    1001,
    { bits: 6, bucketSize: 100, backend: "ts" },
  );
  assertEquals(r.out, want);
  assertEquals(r.bytes, { compressed: true, sent: 0, received: 0, uncompressed: 0 });
  // one rank: the reduce-scatter is its own chunk, unquantized; the all-reduce quantizes once
  const rs = await q.reduceScatter(x);
  assertEquals(rs.out, x);
  const small = new Float32Array([1, 2, 3]);
  const ar = q.allReduceSync(small);
  assertEquals(ar.bytes.compressed, false);
  assertEquals(Array.from(small), [1, 2, 3]);
  assertEquals(q.calls, 3);
  assertEquals(q.messageBytes(1001), quantizedBytes(1001, { bits: 6, bucketSize: 100 }));
  assertThrows(() => q.allGatherSync(x, new Float32Array(5)), ShapeError, "expected 1001");
  assertThrows(() => new QuantizedCollectives(comm, { bits: 0 }), RangeError, "0 bits");
  const bad = x.slice();
  bad[10] = NaN;
  assertThrows(() => q.allReduceSync(bad), NumericalError, "x[10] is NaN");
});

for (const np of [2, 4]) {
  Deno.test({
    name:
      `mpi world of ${np}: quantized all-gather, reduce-scatter and all-reduce equal the single-process simulation, bytes and ranks agree (seed ${seed})`,
    ignore: !!skip,
    fn: async () => {
      const w = await mpirunDeno(np, [
        "--no-prompt",
        "--allow-ffi=ffi/build",
        "--allow-env",
        "tests/comm/_quantized_world.ts",
        "--seed",
        String(seed),
      ], { limitS: 90 });
      const out = w.stdout + w.stderr;
      assert(!w.timedOut, `the world did not finish within 90 s:\n${out}`);
      assertEquals(w.code, 0, out);
      for (let r = 0; r < np; r++) {
        for (const p of [/ok 90 quantized collectives equal/, /ok overlapped/, /ok nan/]) {
          assert(
            out.split("\n").some((l) => l.startsWith(`rank ${r}: `) && p.test(l)),
            `rank ${r}: no ${p}:\n${out}`,
          );
        }
      }
      console.log(`  ${np} ranks: ${w.seconds.toFixed(1)} s`);
    },
  });
}
