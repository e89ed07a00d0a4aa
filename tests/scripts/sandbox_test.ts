// Least privilege: every script answers --help under the flags of its own shebang, no script or
// task asks for -A, a script given fewer permissions fails with one clear sentence instead of
// prompting, and the kernels fall back to ts inside a sandbox without --allow-ffi.
import { assert, assertEquals } from "@std/assert";
import { runDeno } from "../_util.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const scripts = [...Deno.readDirSync(`${ROOT}scripts`)].filter((e) => e.name.endsWith(".ts")).map((
  e,
) => e.name);

function shebangFlags(file: string): string[] {
  const first = Deno.readTextFileSync(`${ROOT}scripts/${file}`).split("\n")[0]!;
  const prefix = "#!/usr/bin/env -S deno run ";
  assert(first.startsWith(prefix), `${file}: first line must start with '${prefix}'`);
  return first.slice(prefix.length).trim().split(/\s+/);
}

const run = runDeno;

Deno.test("there is at least one script, and none asks for -A", () => {
  assert(scripts.length > 0);
  for (const s of scripts) {
    const flags = shebangFlags(s);
    assert(!flags.some((f) => f === "-A" || f === "--allow-all"), `${s} asks for all permissions`);
    assert(flags.includes("--no-prompt"), `${s}: shebang must include --no-prompt`);
  }
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<
    string,
    { command: string } | string
  >;
  for (const [name, t] of Object.entries(tasks)) {
    const cmd = typeof t === "string" ? t : t.command;
    assert(!/(^|\s)(-A|--allow-all)(\s|$)/.test(cmd), `task ${name} asks for all permissions`);
  }
});

for (const s of scripts) {
  Deno.test(`${s} answers --help under its shebang flags`, async () => {
    const r = await run(["run", ...shebangFlags(s), `scripts/${s}`, "--help"]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.includes("Usage"), `${s} --help printed no usage: ${r.stdout}`);
  });
}

Deno.test("`deno task NAME -- flags`, as the README writes it, reaches the script's options", async () => {
  // deno task hands the script a literal `--` first; runScript drops it
  const r = await run(["task", "generate", "--", "--json", "--max-new-tokens", "3"]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(r.stdout).generatedIds.length, 3);
});

Deno.test("selfcheck.ts without its write permission fails with one clear sentence, no prompt", async () => {
  const r = await run([
    "run",
    "--no-prompt",
    "--allow-ffi=ffi/build",
    "--allow-env=LMKIT_BACKEND",
    "scripts/selfcheck.ts",
  ]);
  assertEquals(r.code, 1);
  assertEquals(
    r.stderr.trim(),
    "error: selfcheck.ts needs --allow-write=out/selfcheck --allow-read=out/selfcheck, which this run was not given; run it as:\n" +
      // without read access the shebang cannot be read: the command adds what was missing
      `  deno run --no-prompt --allow-write=out/selfcheck --allow-read=out/selfcheck ${ROOT}scripts/selfcheck.ts`,
  );
});

Deno.test("a script told to write where its flags do not reach prints the command line to copy, which then works", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const r = await run([
      "task",
      "tokenizer-stats",
      "--",
      "--languages",
      "en",
      "--tokenizers",
      "r50k",
      "--limit",
      "20",
      "--out",
      `${dir}/run`,
    ]);
    assertEquals(r.code, 1, r.stderr);
    const lines = r.stderr.trim().split("\n").filter((l) => !l.startsWith("Task "));
    assertEquals(
      lines[0],
      `error: tokenizer_stats.ts needs --allow-write=${dir}/run, which this run was not given; run it as:`,
    );
    const cmd = lines[1]!.trim().split(" ");
    assertEquals(cmd.slice(0, 2), ["deno", "run"]);
    assert(cmd.includes(`--allow-write=out,${dir}/run`), lines[1]);
    const again = await run(cmd.slice(1));
    assertEquals(again.code, 0, again.stderr);
    assert(Deno.statSync(`${dir}/run/report.md`).isFile);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path that does not exist says so, relative to the working directory", async () => {
  const text = await run(["task", "perplexity", "--", "--text", "no/such.txt"]);
  assertEquals(text.code, 1);
  assert(
    text.stderr.includes(
      `error: 'no/such.txt' does not exist (relative to '${ROOT.slice(0, -1)}')`,
    ),
    text.stderr,
  );
  const model = await run(["task", "generate", "--", "--model", "data/models/nope"]);
  assertEquals(model.code, 1);
  assert(
    model.stderr.includes(
      `error: Checkpoint folder 'data/models/nope' does not exist (relative to '${
        ROOT.slice(0, -1)
      }')`,
    ),
    model.stderr,
  );
});

async function probe(
  code: string,
  flags: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  await Deno.writeTextFile(file, code);
  try {
    return await run(["run", "--config", `${ROOT}deno.json`, "--no-prompt", ...flags, file]);
  } finally {
    await Deno.remove(file);
  }
}

Deno.test("inside a sandbox with no permissions the kernels run on the ts backend", async () => {
  const r = await probe(
    `import { matmul, Matrix, selectBackend } from "${ROOT}mod.ts";
     const c = matmul(Matrix.from([[1, 2]]), Matrix.from([[3], [4]]));
     console.log(selectBackend(), c.get(0, 0));`,
    [],
  );
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim(), "ts 11");
  // …and says so once, with the flag that loads the native kernels
  assertEquals(r.stderr.split("native kernels are not loaded").length, 2, r.stderr);
  assert(r.stderr.includes(`add --allow-ffi=${ROOT}ffi/build`), r.stderr);
  const asked = await probe(
    `import { selectBackend } from "${ROOT}ffi/mod.ts";
     try { selectBackend("cpu"); } catch (e) { console.log(\`\${e.name}: \${e.message}\`); }`,
    [],
  );
  assertEquals(asked.code, 0, asked.stderr);
  assert(
    asked.stdout.startsWith(
      "BackendUnavailableError: Backend 'cpu' is unavailable: no --allow-ffi=ffi/build permission",
    ),
    asked.stdout,
  );
});
