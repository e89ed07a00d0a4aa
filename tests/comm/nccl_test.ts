// The `nccl` device communicator at world size 1: on the CUDA emulator (LMKIT_CUDA_EMU=1) against
// the mock NCCL (ffi/emu/nccl_mock.cpp), whose call log shows the sequence the library makes;
// on a machine with a GPU against the real NCCL (skipped, with one printed reason, where none
// loads). Every collective against its definition for one rank on sizes 0, 1, 7 and 1,000,003,
// blocking and non-blocking, on ranges of larger buffers (what lies outside must not change);
// calls run in the order issued; bad handles, sizes, element types and arguments fail with one
// sentence and leave the communicator usable; NCCL failures (at once, asynchronous, a hang past
// the timeout) break it with a CommError; a missing NCCL fails with "NCCL could not be loaded".
// Under `mpirun -np 2` on the emulator, rank 0's unique id reaches rank 1 over MPI.
//
// Run as `deno run` with LMKIT_NCCL_WORLD=1 (under mpirun), this file is one rank of that world.
import { assert, assertEquals, assertRejects, assertThrows } from "@std/assert";
import {
  check,
  cudaEmulated,
  cudaLibrary,
  cudaLibraryWithoutDevice,
  type DevArray,
  DeviceBuffer,
} from "../../ffi/mod.ts";
import { ShapeError } from "../../lib/core/errors.ts";
import { createCommunicator, type DeviceSpan } from "../../lib/comm/communicator.ts";
import { CommError } from "../../lib/comm/errors.ts";
import { createNcclCommunicator, NcclCommunicator, ncclLibrary } from "../../lib/comm/nccl.ts";
import { SingleCommunicator } from "../../lib/comm/single.ts";
import { Rng } from "../../lib/core/rng.ts";
import { mpiLibrary } from "../../ffi/mpi/mod.ts";
import { freshSeed, mpirunDeno, mpirunMissing, runDeno } from "../_util.ts";

const env = (name: string) =>
  Deno.permissions.querySync({ name: "env", variable: name }).state === "granted"
    ? Deno.env.get(name)
    : undefined;

// ---------------------------------------------------------------- the mock's hooks
const mockSymbols = {
  emu_nccl_log: { parameters: ["buffer", "i32"], result: "i32" },
  emu_nccl_log_clear: { parameters: [], result: "void" },
  emu_nccl_inject: { parameters: ["i32"], result: "void" },
  emu_nccl_live_comms: { parameters: [], result: "i32" },
} as const;
let mockLib: Deno.DynamicLibrary<typeof mockSymbols>["symbols"] | undefined;
/** The mock NCCL beside the emulated library (the same loaded copy: dlopen matches the file). */
function mock(): Deno.DynamicLibrary<typeof mockSymbols>["symbols"] {
  const dir = env("LMKIT_CUDA_EMU") === "1" ? "emu" : env("LMKIT_CUDA_EMU");
  return mockLib ??= Deno.dlopen(
    new URL(`../../ffi/build/${dir}/libnccl.so.2`, import.meta.url).pathname,
    mockSymbols,
  ).symbols;
}
function mockLog(): string {
  const n = mock().emu_nccl_log(null, 0), buf = new Uint8Array(n + 1);
  mock().emu_nccl_log(buf, buf.length);
  return new TextDecoder().decode(buf.subarray(0, n));
}
function takeLog(): string[] {
  const lines = mockLog().split("\n").filter((l) => l !== "");
  mock().emu_nccl_log_clear();
  return lines;
}

// ---------------------------------------------------------------- one rank of the mpirun world
if (env("LMKIT_NCCL_WORLD") === "1") {
  const comm = createNcclCommunicator(); // opens MPI itself (under mpirun)
  const host = comm.host;
  console.log(
    `rank ${comm.rank} of ${comm.size}: ${comm.describe()}; host ${host?.describe()}; log ${
      mockLog().trim().replaceAll("\n", " | ")
    }`,
  );
  comm.close(); // closes MPI too
  Deno.exit(0);
}

// ---------------------------------------------------------------- what runs here
const emulated = cudaEmulated();
const cudaReason = cudaLibrary().reason;
/** Why the device tests cannot run here ("" when they can). */
function ncclSkipReason(): string {
  if (cudaReason) return `the cuda backend is unavailable (${cudaReason})`;
  if (emulated) return "";
  try {
    ncclLibrary();
    return "";
  } catch (e) {
    return (e as Error).message;
  }
}
const ignoreDevice = cudaReason !== "";
if (ignoreDevice) console.log(`skipped the nccl cuda tests: ${cudaReason}`);
const seed = freshSeed();
const SIZES = [0, 1, 7, 1_000_003];
const PAD = 3; // elements each side of a range, which must not change

Deno.test({
  name: "nccl cuda: a missing or wrong NCCL fails with one sentence saying what was tried",
  ignore: ignoreDevice,
  async fn() {
    // in a process of its own: a good load is remembered for the life of the process
    const build = new URL("../../ffi/build/", import.meta.url).pathname;
    const cases = [
      ["/nonexistent/libnccl.so.2", "No such file"],
      [new URL("../../README.md", import.meta.url).pathname, "README.md"],
      [`${build}liblmkit_cpu.so`, "(no ncclGetVersion)"],
    ] as const;
    const code = `import { createNcclCommunicator } from "./lib/comm/nccl.ts";
      const out = [];
      for (const p of ${JSON.stringify(cases.map((c) => c[0]))}) {
        Deno.env.set("LMKIT_NCCL", p);
        try { createNcclCommunicator().close(); out.push("opened"); }
        catch (e) { out.push(e.name + ": " + e.message); }
      }
      console.log(JSON.stringify(out));`;
    const run = await runDeno(["eval", code]);
    assertEquals(run.code, 0, run.stderr);
    const messages = JSON.parse(run.stdout) as string[];
    cases.forEach(([_, why], i) => {
      const m = messages[i]!;
      assert(m.startsWith("BackendUnavailableError: "), m);
      assert(
        m.includes("Backend 'nccl' is unavailable: NCCL could not be loaded: tried LMKIT_NCCL='"),
        m,
      );
      assert(m.includes(why), m);
      assert(m.includes("set LMKIT_NCCL to the path of libnccl.so.2"), m);
      assert(!m.includes("\n"), "one line");
    });
  },
});

const skip = ignoreDevice ? cudaReason : ncclSkipReason();
if (!ignoreDevice && skip) console.log(`skipped the nccl cuda tests: ${skip}`);
const ignore = skip !== "";

Deno.test("nccl: createCommunicator('nccl') points to createNcclCommunicator", () => {
  assertThrows(() => createCommunicator("nccl"), RangeError, "use createNcclCommunicator()");
});

// ---------------------------------------------------------------- helpers
type Kind = "f32" | "f64" | "bf16" | "i32" | "u8";
function randomHost(rng: Rng, kind: Kind, n: number): DevArray {
  switch (kind) {
    case "f32":
      return Float32Array.from({ length: n }, () => rng.nextUint32() / 2 ** 20 - 2048);
    case "f64":
      return Float64Array.from({ length: n }, () => rng.nextUint32() / 3 - 1e9);
    case "bf16": // finite bf16 bit patterns
      return Uint16Array.from({ length: n }, () => (rng.nextUint32() & 0x3fff) | 0x3000);
    case "i32":
      return Int32Array.from({ length: n }, () => rng.nextUint32() | 0);
    case "u8":
      return Uint8Array.from({ length: n }, () => rng.nextUint32() & 255);
  }
}
function same<T extends DevArray>(a: T): T {
  return new (a.constructor as new (n: number) => T)(a.length);
}
/** A device buffer of PAD + n + PAD random elements; its host copy; the middle range. */
function padded(
  rng: Rng,
  kind: Kind,
  n: number,
): { dev: DeviceBuffer; host: DevArray; span: DeviceSpan } {
  const host = randomHost(rng, kind, n + 2 * PAD), dev = DeviceBuffer.from(host);
  return { dev, host, span: { buffer: dev, offset: PAD, length: n } };
}
function expectDevice(dev: DeviceBuffer, want: DevArray, what: string): void {
  const got = dev.download(same(want));
  // compare bit patterns (NaN-safe, exact)
  const a = new Uint8Array(got.buffer),
    b = new Uint8Array(want.buffer, want.byteOffset, want.byteLength);
  let bad = -1;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      bad = i;
      break;
    }
  }
  assert(bad < 0, `${what}: byte ${bad} differs`);
}
function withRange(host: DevArray, offset: number, values: DevArray): DevArray {
  const out = host.slice() as DevArray;
  (out as Float32Array).set(values as Float32Array, offset);
  return out;
}

// ---------------------------------------------------------------- collectives
Deno.test({
  name: `nccl cuda: every collective at world size 1 is its definition (seed ${seed})`,
  ignore,
  async fn() {
    const rng = new Rng(seed), live = DeviceBuffer.live;
    using comm = createNcclCommunicator();
    assertEquals([comm.backend, comm.rank, comm.size], ["nccl", 0, 1]);
    assert(/^nccl \(NCCL \d+\.\d+\.\d+, rank 0 of 1\)$/.test(comm.describe()), comm.describe());
    for (const n of SIZES) {
      for (const blocking of [true, false]) {
        const tag = `n=${n} ${blocking ? "blocking" : "non-blocking"}`;
        // all-reduce, in place on a range: the reduction over one rank leaves it as it was
        for (
          const [kind, op] of [["f32", "sum"], ["f64", "avg"], ["bf16", "max"], [
            "f32",
            "min",
          ]] as const
        ) {
          const a = padded(rng, kind, n);
          if (blocking) comm.allReduceSync(a.span, op);
          else await comm.allReduce(a.span, op);
          expectDevice(a.dev, a.host, `allReduce ${kind} ${op} ${tag}`);
          a.dev.dispose();
        }
        // all-gather into a range of another buffer, and in place
        for (const kind of ["u8", "i32", "f32"] as const) {
          const s = padded(rng, kind, n), r = padded(rng, kind, n);
          if (blocking) comm.allGatherSync(s.span, r.span);
          else await comm.allGather(s.span, r.span);
          expectDevice(
            r.dev,
            withRange(r.host, PAD, s.host.subarray(PAD, PAD + n)),
            `allGather ${kind} ${tag}`,
          );
          expectDevice(s.dev, s.host, `allGather leaves send ${tag}`);
          if (blocking) comm.allGatherSync(s.span, s.span);
          else await comm.allGather(s.span, s.span);
          expectDevice(s.dev, s.host, `allGather in place ${tag}`);
          s.dev.dispose();
          r.dev.dispose();
        }
        // reduce-scatter (one block), into another buffer and in place
        {
          const s = padded(rng, "f64", n), r = padded(rng, "f64", n);
          if (blocking) comm.reduceScatterSync(s.span, r.span);
          else await comm.reduceScatter(s.span, r.span);
          expectDevice(
            r.dev,
            withRange(r.host, PAD, s.host.subarray(PAD, PAD + n)),
            `reduceScatter ${tag}`,
          );
          if (blocking) comm.reduceScatterSync(s.span, s.span, "avg");
          else await comm.reduceScatter(s.span, s.span, "avg");
          expectDevice(s.dev, s.host, `reduceScatter in place ${tag}`);
          s.dev.dispose();
          r.dev.dispose();
        }
        // broadcast from root 0; all-to-all (one block) between two ranges of one buffer
        {
          const b = padded(rng, "bf16", n);
          if (blocking) comm.broadcastSync(b.span, 0);
          else await comm.broadcast(b.span, 0);
          expectDevice(b.dev, b.host, `broadcast ${tag}`);
          b.dev.dispose();
          const host = randomHost(rng, "u8", 2 * n + 3 * PAD), dev = DeviceBuffer.from(host);
          const send = { buffer: dev, offset: PAD, length: n };
          const recv = { buffer: dev, offset: 2 * PAD + n, length: n };
          if (blocking) comm.allToAllSync(send, recv);
          else await comm.allToAll(send, recv);
          expectDevice(
            dev,
            withRange(host, 2 * PAD + n, host.subarray(PAD, PAD + n)),
            `allToAll ${tag}`,
          );
          dev.dispose();
        }
      }
    }
    comm.barrierSync();
    await comm.barrier();
    comm.close();
    comm.close(); // the second time does nothing
    assertThrows(() => comm.barrierSync(), Error, "the communicator is closed");
    assertEquals(DeviceBuffer.live, live, "every device buffer freed");
  },
});

Deno.test({
  name: "nccl cuda: calls run in the order issued, blocking and non-blocking mixed",
  ignore,
  async fn() {
    using comm = createNcclCommunicator();
    const n = 1 << 16;
    using a = DeviceBuffer.from(Float32Array.from({ length: n }, (_, i) => i));
    using b = DeviceBuffer.alloc("f32", n);
    using c = DeviceBuffer.alloc("f32", n);
    if (emulated) takeLog();
    // a chain a → b → c: the blocking copy must wait for the non-blocking one before it (on the
    // emulator the mock starts the first one 200 ms late)
    if (emulated) mock().emu_nccl_inject(4);
    const pending = [comm.allGather(a, b)];
    comm.allGatherSync(b, c);
    for (let k = 1; k <= 24; k++) pending.push(comm.allReduce({ buffer: c, offset: 0, length: k }));
    await Promise.all(pending);
    expectDevice(c, a.download(new Float32Array(n)), "c = a");
    if (emulated) {
      const counts = takeLog().map((l) => Number(/count=(\d+)/.exec(l)?.[1]));
      assertEquals(counts, [n, n, ...Array.from({ length: 24 }, (_, k) => k + 1)]);
    }
  },
});

// ---------------------------------------------------------------- bad arguments
Deno.test({
  name: "nccl cuda: bad handles, sizes, element types and arguments fail with one sentence",
  ignore,
  async fn() {
    using comm = createNcclCommunicator();
    using f = DeviceBuffer.alloc("f32", 10);
    using g = DeviceBuffer.alloc("f32", 10);
    using d = DeviceBuffer.alloc("f64", 10);
    using u = DeviceBuffer.alloc("u8", 10);
    const freed = DeviceBuffer.alloc("f32", 4);
    freed.dispose();
    type Method = "allReduce" | "reduceScatter" | "allGather" | "allToAll" | "broadcast";
    const cases: [Method, unknown[], new (...a: never[]) => Error, string][] = [
      ["allReduce", [freed], RangeError, "which is not a live device buffer"],
      [
        "allReduce",
        [{ buffer: f, offset: 8, length: 3 }],
        ShapeError,
        "[8, 11) leaves device buffer",
      ],
      [
        "broadcast",
        [{ buffer: f, offset: 1.5, length: 2 }, 0],
        RangeError,
        "offset 1.5 is not an integer",
      ],
      [
        "allReduce",
        [{ buffer: f, offset: 0, length: -1 }],
        RangeError,
        "count -1 is not an integer",
      ],
      ["allReduce", [u], ShapeError, "buf holds u8, expected f32, f64 or bf16"],
      ["allGather", [f, d], ShapeError, "send holds f32 but recv holds f64"],
      [
        "reduceScatter",
        [f, { buffer: g, length: 9 }],
        ShapeError,
        "send holds 10 elements, expected recv's 9",
      ],
      [
        "allGather",
        [f, { buffer: g, length: 4 }],
        ShapeError,
        "recv holds 4 elements, expected send's 10",
      ],
      ["allToAll", [f, { buffer: g, length: 5 }], ShapeError, "send holds 10 elements and recv 5"],
      [
        "allToAll",
        [{ buffer: f, length: 4 }, { buffer: f, offset: 2, length: 4 }],
        RangeError,
        "send and recv overlap",
      ],
      [
        "allGather",
        [{ buffer: f, offset: 1, length: 4 }, { buffer: f, length: 4 }],
        RangeError,
        "send and recv overlap",
      ],
      [
        "reduceScatter",
        [{ buffer: f, length: 4 }, { buffer: f, offset: 2, length: 4 }],
        RangeError,
        "send and recv overlap",
      ],
      [
        "allReduce",
        [f, "mean"],
        RangeError,
        `reduction "mean" is not one of sum, prod, max, min, avg`,
      ],
      ["broadcast", [f, 1], RangeError, "root 1 is not a rank of 0 … 0"],
      ["broadcast", [f, 0.5], RangeError, "root 0.5 is not a rank"],
      [
        "allReduce",
        [new Float32Array(3)],
        TypeError,
        "buf is Float32Array, expected a DeviceBuffer",
      ],
      [
        "allReduce",
        [{ buffer: f, offset: "1" }],
        TypeError,
        `offset "1", length undefined: expected numbers`,
      ],
    ];
    // deno-lint-ignore no-explicit-any
    const call = comm as any;
    for (const [method, args, Class, text] of cases) {
      const e = assertThrows(() => call[`${method}Sync`](...args), Class as never, text) as Error;
      assert(e.message.startsWith(`nccl ${method}: `), e.message);
      assert(!e.message.includes("\n"), `${method}: one line`);
      await assertRejects(() => call[method](...args), Class as never, text);
    }
    await assertRejects(() => comm.allReduce(freed), RangeError, "not a live device buffer");
    await assertRejects(() => comm.allToAll(f, { buffer: g, length: 3 }), ShapeError, "and recv 3");
    // still usable
    using ok = DeviceBuffer.from(new Float32Array([1, 2, 3]));
    await comm.allReduce(ok);
    assertEquals([...ok.download(new Float32Array(3))], [1, 2, 3]);
    assert(!comm.broken);
  },
});

Deno.test({
  name: "nccl cuda: the C entry points check their own arguments",
  ignore,
  fn() {
    const lib = cudaLibraryWithoutDevice()!;
    const err = new Uint8Array(256),
      msg = () => new TextDecoder().decode(err.subarray(0, err.indexOf(0)));
    const id = new Uint8Array(128), out = new Int32Array(1);
    assertThrows(
      () => check(lib, lib.lk_nccl_get_unique_id(id, 64)),
      ShapeError,
      "out holds 64 bytes, expected 128",
    );
    check(lib, lib.lk_nccl_get_unique_id(id, 128));
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 127, 1, 0, 10, 0, out, 1)),
      ShapeError,
      "holds 127 bytes",
    );
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 128, 0, 0, 10, 0, out, 1)),
      RangeError,
      "nranks is 0",
    );
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 128, 2, 2, 10, 0, out, 1)),
      RangeError,
      "rank 2 is not in 0 … 1",
    );
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 128, 1, 0, 0, 0, out, 1)),
      RangeError,
      "timeout 0 s",
    );
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 128, 1, 0, 10, 2, out, 1)),
      RangeError,
      "agree is 2",
    );
    assertThrows(
      () => check(lib, lib.lk_nccl_init(id, 128, 1, 0, 10, 0, out, 0)),
      ShapeError,
      "comm_out holds 0",
    );
    check(lib, lib.lk_nccl_init(id, 128, 1, 0, 10, 0, out, 1));
    const c = out[0]!;
    using buf = DeviceBuffer.alloc("f32", 8);
    assertEquals(lib.lk_nccl_all_reduce(c + 1000, 0, buf.handle, 0, 8, 0, err, 256), 6);
    assert(msg().includes(`${c + 1000} is not an NCCL communicator`), msg());
    assertEquals(lib.lk_nccl_all_reduce(c, 0, buf.handle, 0, 8, 0, err, 1), 2, "err cap 1");
    assertEquals(lib.lk_nccl_all_reduce(c, 0, buf.handle, 0, 8, 7, err, 256), 2);
    assert(msg().includes("op 7, expected 0 (sum) … 4 (avg)"), msg());
    assertEquals(lib.lk_nccl_all_reduce(c, 0, buf.handle, 0, 8, 0, err, 256), 2, "ticket 0 used");
    assert(msg().includes("ticket 0 was already used (next is 1)"), msg());
    assertEquals(lib.lk_nccl_all_reduce(c, 1.5, buf.handle, 0, 8, 0, err, 256), 2);
    assert(msg().includes("ticket 1.5 is not an integer"), msg());
    assertEquals(lib.lk_nccl_all_reduce(c, 1, buf.handle, 0, 9, 0, err, 256), 1);
    assert(msg().includes("buffer buf holds 8 elements, expected at least 9"), msg());
    assertEquals(lib.lk_nccl_broadcast(c, 2, 0, 0, 1, 0, err, 256), 6);
    assert(msg().includes("buf is handle 0, which is not a live device buffer"), msg());
    assertEquals(lib.lk_nccl_all_reduce(c, 3, buf.handle, 0, 8, 0, err, 256), 0);
    const info = new Float64Array(6);
    check(lib, lib.lk_nccl_info(c, info, 6));
    assertEquals([...info], [0, 1, 0, 0, 0, 4]); // rank, size, broken, closed, agree, next ticket
    assertEquals(lib.lk_nccl_destroy(c, 4, err, 256), 0);
    assertEquals(lib.lk_nccl_destroy(c, 5, err, 256), 0, "twice: nothing");
    assertEquals(lib.lk_nccl_all_reduce(c, 6, buf.handle, 0, 8, 0, err, 256), 2);
    assert(msg().includes("the NCCL communicator is closed"), msg());
  },
});

// ---------------------------------------------------------------- the mock's view (emulator)
Deno.test({
  name: "nccl cuda emulator: the call sequence NCCL sees",
  ignore: ignore || !emulated,
  async fn() {
    takeLog();
    const live = mock().emu_nccl_live_comms();
    using buf = DeviceBuffer.from(new Float32Array(12).fill(1));
    using out = DeviceBuffer.alloc("f32", 12);
    {
      using comm = createNcclCommunicator();
      comm.allReduceSync({ buffer: buf, offset: 2, length: 7 }, "avg");
      await comm.reduceScatter(buf, out);
      comm.allGatherSync({ buffer: buf, length: 0 }, { buffer: out, length: 0 }); // nothing to move
      comm.broadcastSync({ buffer: out, offset: 11 }, 0);
      await comm.allToAll({ buffer: buf, length: 6 }, { buffer: out, offset: 6 });
      comm.barrierSync();
      assertEquals(mock().emu_nccl_live_comms(), live + 1);
    }
    assertEquals(mock().emu_nccl_live_comms(), live, "destroyed at the end of the block");
    const log = takeLog();
    assertEquals(log.slice(2), [
      "ncclAllReduce(count=7, float32, avg, in place)",
      "ncclReduceScatter(recvcount=12, float32, sum)",
      "ncclBroadcast(count=1, float32, root=0, in place)",
      "ncclGroupStart",
      "ncclSend(count=6, float32, peer=0)",
      "ncclRecv(count=6, float32, peer=0)",
      "ncclGroupEnd",
      "ncclAllReduce(count=16, int64, max, in place)", // the barrier: the call's header
      "ncclCommDestroy",
    ]);
    assert(/^ncclGetUniqueId\(#\d+\.\d+\)$/.test(log[0]!), log[0]);
    const id = log[0]!.slice("ncclGetUniqueId(".length, -1);
    assertEquals(log[1], `ncclCommInitRank(nranks=1, rank=0, ${id.replace("#", "id=#")})`);
  },
});

Deno.test({
  name: "nccl cuda emulator: with agree on, every call first all-reduces its header",
  ignore: ignore || !emulated,
  async fn() {
    using comm = createNcclCommunicator({ host: new SingleCommunicator(), agree: true });
    using buf = DeviceBuffer.from(new Float64Array(5));
    takeLog();
    await comm.allReduce(buf);
    assertThrows(
      () => comm.allReduceSync({ buffer: buf, length: 6 }),
      ShapeError,
      "leaves device buffer",
    );
    comm.broadcastSync(buf, 0);
    assertEquals(takeLog(), [
      "ncclAllReduce(count=16, int64, max, in place)",
      "ncclAllReduce(count=5, float64, sum, in place)",
      "ncclAllReduce(count=16, int64, max, in place)", // the bad call still joins the agreement
      "ncclAllReduce(count=16, int64, max, in place)",
      "ncclBroadcast(count=5, float64, root=0, in place)",
    ]);
  },
});

Deno.test({
  name:
    "nccl cuda emulator: an NCCL failure, an asynchronous error and a hang break the communicator",
  ignore: ignore || !emulated,
  async fn() {
    using buf = DeviceBuffer.from(new Float32Array([1, 2, 3]));
    for (
      const [kind, text] of [
        [1, "ncclAllReduce failed: unhandled cuda error"],
        [2, "NCCL reported an asynchronous error: remote process exited"],
        [3, "the call did not complete within 0.3 s"],
      ] as const
    ) {
      const comm = createNcclCommunicator({ timeoutSeconds: 0.3 });
      takeLog();
      mock().emu_nccl_inject(kind);
      const t0 = performance.now();
      const e = await assertRejects(() => comm.allReduce(buf), CommError, text);
      const s = (performance.now() - t0) / 1000;
      assert(kind === 3 ? s >= 0.3 && s < 5 : s < 2, `kind ${kind} took ${s} s`);
      assert(e.message.includes("the NCCL communicator is now unusable"), e.message);
      assert(comm.broken);
      assertEquals(takeLog().at(-1), "ncclCommAbort");
      assertThrows(() => comm.barrierSync(), CommError, "unusable after an earlier failure: ");
      comm.close(); // aborted already: only marked closed
      assertEquals(takeLog(), [], "no destroy after an abort");
    }
    assertEquals(mock().emu_nccl_live_comms(), 0);
  },
});

// ---------------------------------------------------------------- over MPI (emulator)
const mpiSkip = emulated ? (await mpirunMissing()) || mpiLibrary().reason : "not on the emulator";
Deno.test({
  name: "nccl cuda emulator: under mpirun -np 2, rank 0's unique id reaches rank 1 over MPI",
  ignore: ignore || mpiSkip !== "",
  async fn() {
    const run = await mpirunDeno(2, [
      "--no-prompt",
      "--allow-ffi=ffi/build",
      "--allow-env",
      "--allow-read",
      "tests/comm/nccl_test.ts",
    ], { limitS: 60, env: { LMKIT_NCCL_WORLD: "1", LMKIT_CUDA_EMU: env("LMKIT_CUDA_EMU")! } });
    assertEquals(run.code, 0, run.stdout + run.stderr);
    const lines = run.stdout.split("\n").filter((l) => l.startsWith("rank "));
    assertEquals(lines.length, 2, run.stdout);
    const ids = lines.map((l) => /id=(#\d+\.\d+)/.exec(l)?.[1]);
    assert(
      ids[0] !== undefined && ids[0] === ids[1],
      `the same id on both ranks: ${lines.join(" / ")}`,
    );
    for (const r of [0, 1]) {
      const l = lines.find((x) =>
        x.startsWith(`rank ${r} of 2: nccl (NCCL 2.21.5, rank ${r} of 2)`)
      );
      assert(l, run.stdout);
      assert(l.includes(`ncclCommInitRank(nranks=2, rank=${r}, id=${ids[0]})`), l);
      assert(l.includes("host mpi ("), l);
      // rank 0 made the id; rank 1 did not
      assertEquals(l.includes("ncclGetUniqueId"), r === 0, l);
    }
  },
});
if (!ignore && emulated && mpiSkip) console.log(`skipped the nccl mpirun test: ${mpiSkip}`);

Deno.test({
  name: "nccl cuda: options are checked",
  ignore,
  fn() {
    assertThrows(() => createNcclCommunicator({ timeoutSeconds: 0 }), RangeError, "timeout 0 s");
    assertThrows(
      () => createNcclCommunicator({ agree: 1 as unknown as boolean }),
      TypeError,
      "agree is 1",
    );
    using comm = NcclCommunicator.open();
    assertEquals(comm.size, 1);
  },
});
