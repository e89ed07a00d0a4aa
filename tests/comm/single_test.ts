// The `single` communicator (a world of one) against each collective's definition for one rank,
// blocking and non-blocking, on awkward sizes; its argument checks; and the backend choice.
import { assertEquals, assertRejects, assertThrows } from "@std/assert";
import { ShapeError } from "../../lib/core/errors.ts";
import { COMM_BACKENDS, createCommunicator } from "../../lib/comm/communicator.ts";
import { SingleCommunicator } from "../../lib/comm/single.ts";
import { Rng } from "../../lib/core/rng.ts";
import { freshSeed } from "../_util.ts";

const SIZES = [0, 1, 7, 1_000_003];
const seed = freshSeed();

function bytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.nextUint32() & 255;
  return out;
}

Deno.test(`single: every collective is its definition for one rank (seed ${seed})`, async () => {
  const rng = new Rng(seed);
  using comm = createCommunicator();
  assertEquals([comm.backend, comm.rank, comm.size], ["single", 0, 1]);
  assertEquals(comm.describe(), "single (rank 0 of 1)");
  for (const n of SIZES) {
    for (const blocking of [true, false]) {
      const f32 = Float32Array.from(bytes(rng, n), (b) => b - 128), f32Copy = f32.slice();
      const f64 = Float64Array.from(bytes(rng, n), (b) => b / 3), f64Copy = f64.slice();
      const b = bytes(rng, n);
      if (blocking) {
        comm.allReduceSync(f32);
        comm.allReduceSync(f64);
      } else {
        await comm.allReduce(f32);
        await comm.allReduce(f64);
      }
      assertEquals(f32, f32Copy);
      assertEquals(f64, f64Copy);
      const rs = blocking ? comm.reduceScatterSync(f32) : await comm.reduceScatter(f32);
      assertEquals(rs, f32Copy);
      if (n > 0) assertEquals(rs.buffer === f32.buffer, false, "a new buffer");
      const out = new Uint8Array(n);
      const g = blocking ? comm.allGatherSync(b, out) : await comm.allGather(b, out);
      assertEquals(g === out && [...g].every((x, i) => x === b[i]), true);
      const gv = blocking ? comm.allGatherVSync(b) : await comm.allGatherV(b);
      assertEquals(gv, [b]);
      const a = blocking ? comm.allToAllSync(b) : await comm.allToAll(b);
      assertEquals(a, b);
      const av = blocking ? comm.allToAllVSync([b]) : await comm.allToAllV([b]);
      assertEquals(av, [b]);
      const c = b.slice();
      blocking ? comm.broadcastSync(c, 0) : await comm.broadcast(c, 0);
      assertEquals(c, b);
      blocking ? comm.barrierSync() : await comm.barrier();
    }
  }
});

Deno.test("single: bad arguments fail with the value quoted, blocking or not", async () => {
  const comm = new SingleCommunicator();
  assertThrows(
    () => comm.broadcastSync(new Uint8Array(3), 1),
    RangeError,
    "root 1 is not a rank of 0 … 0",
  );
  await assertRejects(() => comm.broadcast(new Uint8Array(3), 0.5), RangeError, "root 0.5");
  assertThrows(
    () => comm.allReduceSync(new Int32Array(3) as unknown as Float32Array),
    TypeError,
    "allReduce: buf is Int32Array, expected a Float32Array or Float64Array",
  );
  await assertRejects(
    () => comm.allGather(new Uint8Array(3), new Uint8Array(4)),
    ShapeError,
    "allGather: out holds 4 elements, expected 3",
  );
  assertThrows(
    () => comm.allToAllVSync([new Uint8Array(1), new Uint8Array(2)]),
    ShapeError,
    "allToAllV: send holds 2 elements, expected 1 (one block per rank)",
  );
  assertThrows(() => comm.allGatherVSync("ab" as unknown as Uint8Array), TypeError, "is string");
  comm.close();
  assertThrows(() => comm.barrierSync(), Error, "barrier: the communicator is closed");
  comm.close(); // twice is fine
});

Deno.test("createCommunicator: backends by name, an unknown one quoted", () => {
  assertEquals(COMM_BACKENDS, ["single", "mpi"]);
  assertThrows(
    () => createCommunicator("nccl"),
    RangeError,
    `Unknown communicator backend "nccl": expected single or mpi`,
  );
});
