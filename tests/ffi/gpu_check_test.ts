// The GPU check script as a dry run (bench/gpu/gpu_check.ts --tiny): every row it will time on a
// leased GPU runs end to end at small sizes and agrees with its reference, so that a device lease
// is not spent on a script error. Without a GPU it runs on the CUDA emulator (the second pass of
// `deno task test`); ignored where neither is present.
import { assert, assertEquals } from "@std/assert";
import { availableBackends } from "../../ffi/mod.ts";
import { runDeno } from "../_util.ts";

Deno.test({
  name: "cuda: bench/gpu/gpu_check.ts --tiny measures every row and each agrees with its reference",
  ignore: !availableBackends().cuda.ok,
  async fn() {
    const out = await Deno.makeTempFile({ suffix: ".json" });
    try {
      const r = await runDeno([
        "run",
        "--no-prompt",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--allow-ffi=ffi/build",
        "bench/gpu/gpu_check.ts",
        "--tiny",
        "--out",
        out,
      ]);
      assertEquals(r.code, 0, r.stderr);
      assert(!/failed/.test(r.stderr), r.stderr);
      // the device sweep chooses the cpu sweep's mask, entry for entry
      assert(/sparsegpt sweep 256: 0 of 65536 mask entries differ/.test(r.stderr), r.stderr);
      const { rows } = JSON.parse(await Deno.readTextFile(out)) as {
        rows: { op: string; shape: string; ms: number; relErrVsCpu: number | null }[];
      };
      // matmul ×2, gram ×2, obs, SparseGPT sweep and layer, 2 × (dense, 4 routed, 3 one-expert),
      // QUIK ×3 (W4A4 on the int4 and int8 paths, W8A8),
      // top-k ×2
      assertEquals(rows.length, 28, rows.map((x) => x.op).join("; "));
      for (const row of rows) {
        const at = `${row.op} | ${row.shape}`;
        assert(row.ms > 0, `${at}: ${row.ms} ms`);
        // null is NaN: rows checked elsewhere; top-k counts index mismatches
        if (row.relErrVsCpu !== null) {
          assert(row.relErrVsCpu < 1e-2, `${at}: error ${row.relErrVsCpu}`);
        }
      }
    } finally {
      await Deno.remove(out);
    }
  },
});

Deno.test({
  name: "bench/gpu/check.sh fails at once, saying so, on a machine without a GPU",
  ignore: availableBackends().cuda.ok,
  async fn() {
    // it used to build, print "torch peers failed" and an uncaught BackendUnavailableError, and
    // exit 0 (deno task gpu-check looked like a pass)
    const r = await new Deno.Command("bash", {
      args: ["bench/gpu/check.sh", "--quik"],
      cwd: new URL("../../", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
      env: { PATH: "/usr/bin:/bin" }, // no nvidia-smi that could answer
    }).output();
    assertEquals(r.code, 1);
    assert(new TextDecoder().decode(r.stderr).includes("check.sh: no GPU here"));
  },
});
