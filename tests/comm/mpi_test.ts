// Real multi-process worlds: `mpirun --oversubscribe -np N` of tests/comm/_world.ts (N = 2, 3, 4
// on a 2-core machine). Every collective against its definition on sizes 0, 1, 7 and 1,000,003
// on every rank, blocking and non-blocking; sizes, roots and operations that differ between
// ranks; a rank that never joins a call; a rank killed mid-step. Each world must end within a
// bound, never hang. Skipped, with one printed reason, where mpirun or the library is missing.
import { assert, assertEquals } from "@std/assert";
import { mpiInfo, mpiLastError, mpiLibrary } from "../../ffi/mpi/mod.ts";
import { freshSeed, mpirunDeno, mpirunMissing, runDeno } from "../_util.ts";

const skip = (await mpirunMissing()) || (mpiLibrary().reason);
if (skip) console.log(`skipped the mpi world tests: ${skip}`);
const seed = freshSeed();

interface World {
  code: number;
  /** stdout and stderr of every rank and of mpirun */
  out: string;
  seconds: number;
  timedOut: boolean;
}

/**
 * Runs `mpirun -np np deno run --allow-ffi=ffi/build tests/comm/_world.ts ...args`; ends it (and
 * reports timedOut) after `limitS` seconds. `onLine` sees each line as it comes.
 */
async function world(
  np: number,
  args: string[],
  limitS: number,
  onLine?: (line: string) => void,
): Promise<World> {
  const r = await mpirunDeno(np, [
    "--no-prompt",
    "--allow-ffi=ffi/build",
    "tests/comm/_world.ts",
    ...args,
    "--seed",
    String(seed),
  ], { limitS, ...(onLine ? { onLine } : {}) });
  return { ...r, out: r.stdout + r.stderr };
}

function okLines(out: string, np: number, pattern: RegExp): void {
  for (let r = 0; r < np; r++) {
    assert(
      out.split("\n").some((l) => l.startsWith(`rank ${r}: `) && pattern.test(l)),
      `rank ${r} printed no line matching ${pattern}:\n${out}`,
    );
  }
}

for (const np of [2, 4]) {
  Deno.test({
    name:
      `mpi world of ${np}: every collective, blocking and non-blocking, matches its definition on 0, 1, 7 and 1,000,003 bytes (seed ${seed})`,
    ignore: !!skip,
    fn: async () => {
      const w = await world(np, ["collectives"], 60);
      assert(!w.timedOut, `the world did not finish within 60 s:\n${w.out}`);
      assertEquals(w.code, 0, w.out);
      okLines(w.out, np, /^rank \d: ok 163 collectives of \d ranks match their definitions$/);
      console.log(`  ${np} ranks: ${w.seconds.toFixed(1)} s`);
    },
  });
}

Deno.test({
  name:
    "mpi world of 4: sizes, roots and operations that differ between ranks fail on every rank with one sentence",
  ignore: !!skip,
  fn: async () => {
    const w = await world(4, ["mismatch"], 60);
    assert(!w.timedOut, `the world did not finish within 60 s:\n${w.out}`);
    assertEquals(w.code, 0, w.out);
    okLines(w.out, 4, /^rank \d: ok mismatch$/);
    okLines(
      w.out,
      4,
      /ok all-reduce lengths: ShapeError: all-reduce f32 \(call #0\): ranks passed different element counts: [78] on this rank \(\d of 4\), from 7 to 8 across ranks; every rank must pass the same$/,
    );
  },
});

Deno.test({
  name: "mpi world of 3: a rank that never joins a call makes the others fail after the timeout",
  ignore: !!skip,
  fn: async () => {
    const w = await world(3, ["absent", "--timeout", "2"], 40);
    assert(!w.timedOut, `the world did not end within 40 s:\n${w.out}`);
    assert(w.code !== 0, w.out);
    for (const r of [0, 2]) {
      assert(
        new RegExp(
          `rank ${r}: failed after \\d+\\.\\d s: CommError: all-reduce f32 \\(call #0\\) did not complete within 2 s on rank ${r} of 3: another rank died, hangs, or never made this call`,
        ).test(w.out),
        w.out,
      );
    }
    console.log(`  ended after ${w.seconds.toFixed(1)} s`);
  },
});

for (const mode of ["async", "sync"]) {
  Deno.test({
    name: `mpi world of 4: a rank killed mid-step (${
      mode === "async" ? "non-blocking" : "blocking"
    } calls) ends every other rank within seconds`,
    ignore: !!skip,
    fn: async () => {
      let victim = 0, started = false, killedAt = 0;
      const w = await world(4, ["killed", "--mode", mode], 40, (line) => {
        // not anchored: under load mpirun may forward two ranks' output on one line
        const pid = /rank 2: pid (\d+)/.exec(line), step = /rank 0: step (\d+)/.exec(line);
        if (pid) victim = Number(pid[1]);
        if (!started && victim && step && Number(step[1]) >= 50) {
          started = true;
          killedAt = performance.now();
          Deno.kill(victim, "SIGKILL");
        }
      });
      assert(started, `the ranks never reached step 50:\n${w.out}`);
      const after = (performance.now() - killedAt) / 1000;
      assert(!w.timedOut, `the world did not end within 40 s:\n${w.out}`);
      assert(w.code !== 0, w.out);
      assert(/process rank 2 .*exited on signal 9 \(Killed\)/s.test(w.out), w.out);
      if (mode === "async") { // the others were awaiting a call: each says where it stopped
        for (const r of [0, 1, 3]) {
          assert(
            new RegExp(
              `lmkit comm: rank ${r} of 4 stopped by SIGTERM (while waiting in \\w+ \\(call #\\d+\\)|between collective calls); mpirun ends every rank when one fails`,
            ).test(w.out),
            `rank ${r} did not say where it stopped:\n${w.out}`,
          );
        }
      }
      assert(after < 15, `the world took ${after.toFixed(1)} s to end after the kill`);
      console.log(`  every rank gone ${after.toFixed(1)} s after the kill`);
    },
  });
}

// ---- the C ABI, in this process (MPI is never started here) ----

Deno.test("lmkit_mpi.h and ffi/mpi/mod.ts declare the same entry points with the same parameters", async () => {
  const read = (p: string) => Deno.readTextFile(new URL(`../../ffi/${p}`, import.meta.url));
  const header = (await read("mpi/lmkit_mpi.h")) +
    // the common entry points every library exports (declared in lmkit.h)
    (await read("include/lmkit.h")).split("/* ---- CPU library ---- */")[0]!;
  const mod = await read("mpi/mod.ts");
  const kind = (p: string) =>
    p.includes("*") ? "buffer" : /\bdouble\b/.test(p) ? "f64" : /\bint32_t\b/.test(p) ? "i32" : p;
  const fromHeader = new Map<string, string[]>();
  for (const m of header.matchAll(/int32_t\s+(lk_\w+)\s*\(([^)]*)\)\s*;/g)) {
    fromHeader.set(m[1]!, m[2]!.split(",").map((p) => kind(p.trim())));
  }
  const fromMod = new Map<string, string[]>();
  for (const m of mod.matchAll(/(lk_\w+):\s*\{\s*parameters:\s*\[([^\]]*)\]/g)) {
    fromMod.set(m[1]!, [...m[2]!.matchAll(/"(\w+)"/g)].map((q) => q[1]!));
  }
  assertEquals([...fromMod.keys()].sort(), [...fromHeader.keys()].sort());
  for (const [name, params] of fromHeader) assertEquals(fromMod.get(name), params, name);
});

const lib = mpiLibrary().lib;

Deno.test({
  name: "liblmkit_mpi refuses calls before lk_mpi_init and bad start-up arguments, with a sentence",
  ignore: lib === null,
  fn: () => {
    const l = lib!, err = new Uint8Array(512);
    const msg = () => new TextDecoder().decode(err.subarray(0, err.indexOf(0)));
    assertEquals(l.lk_mpi_barrier(0, err, err.length), 2);
    assertEquals(msg(), "barrier (call #0): MPI is not initialised (call lk_mpi_init first)");
    assertEquals(l.lk_mpi_allreduce_f32(-1, new Float32Array(3), 3, err, err.length), 2);
    assertEquals(msg(), "all-reduce f32: ticket -1 is not a whole number in [0, 2^53)");
    assertEquals(l.lk_mpi_bcast(0.5, new Uint8Array(3), 3, 0, err, err.length), 2);
    assertEquals(l.lk_mpi_abort(1), 2, "no abort before start-up");
    assertEquals(l.lk_mpi_take(5, null, 0), 2);
    assertEquals(
      mpiLastError(l),
      "lk_mpi_take: call #5 has no result (never made, failed, or taken)",
    );
    const out = new Int32Array(4);
    assertEquals(l.lk_mpi_init(0, out, 4), 2);
    assertEquals(mpiLastError(l), "lk_mpi_init: timeout 0 s is not a positive number of seconds");
    assertEquals(l.lk_mpi_init(10, out, 3), 1);
    assertEquals(mpiLastError(l), "lk_mpi_init: out holds 3 elements, expected 4");
    const info = mpiInfo(l);
    assertEquals([info.backend, info.state, info.broken], ["mpi", "uninitialised", false]);
    assert(/^Open MPI v\d/.test(String(info.library)), String(info.library));
  },
});

Deno.test("createCommunicator('mpi') without --allow-ffi names the missing permission", async () => {
  const r = await runDeno(["run", "--no-prompt", "tests/comm/_world.ts", "collectives"]);
  assert(r.code !== 0);
  assert(
    r.stderr.includes(
      "BackendUnavailableError: Backend 'mpi' is unavailable: no --allow-ffi=ffi/build permission",
    ),
    r.stderr,
  );
});
