// All-or-nothing outputs: writes killed by SIGKILL at each step of writeOutputs and writeFolder,
// and what the next write (or cleanStaleOutputs) makes of their leftovers.
import { assert, assertEquals, assertRejects } from "@std/assert";
import { cleanStaleOutputs, writeFolder, writeOutputs } from "../../lib/io/output.ts";

const ls = (dir: string) => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
const read = (p: string) => Deno.readTextFileSync(p);

/**
 * Starts a process that writes like lmkit up to `step` and then waits, holding its lock; returns
 * it and its tag once it is there. Steps: "temps" (temporaries written), "journal" (journal
 * written, first rename done), "folder" (old folder moved aside, new not yet renamed in).
 */
async function writer(dir: string, step: "temps" | "journal" | "folder") {
  const tag = `${Date.now() % 100000}-1765000000000`;
  const code = `
    const [dir, tag, step] = Deno.args;
    const lock = await Deno.open(dir + "/.lmkit-lock-" + tag, { create: true, write: true });
    await lock.lock(true);
    if (step === "folder") {
      Deno.mkdirSync(dir + "/model.tmp-" + tag);
      Deno.writeTextFileSync(dir + "/model.tmp-" + tag + "/config.json", "new");
      Deno.renameSync(dir + "/model", dir + "/model.old-" + tag);
    } else {
      Deno.writeTextFileSync(dir + "/a.txt.tmp-" + tag, "new a");
      Deno.writeTextFileSync(dir + "/b.txt.tmp-" + tag, "new b");
      if (step === "journal") {
        const renames = [["a.txt.tmp-" + tag, "a.txt"], ["b.txt.tmp-" + tag, "b.txt"]];
        Deno.writeTextFileSync(dir + "/.lmkit-commit-" + tag + ".json", JSON.stringify({ renames }));
        Deno.renameSync(dir + "/a.txt.tmp-" + tag, dir + "/a.txt");
      }
    }
    console.log("ready");
    await new Promise(() => setInterval(() => {}, 1000));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-check", code, "--", dir, tag, step],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const first = await reader.read();
  assertEquals(first.value?.trim(), "ready");
  reader.releaseLock();
  return { child, tag };
}

async function kill(child: Deno.ChildProcess) {
  child.kill("SIGKILL");
  await child.status;
  await child.stdout.cancel().catch(() => {});
}

Deno.test("writeOutputs killed before its commit: its temporaries are removed, the old files stay", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeOutputs(dir, { "a.txt": "old a", "b.txt": "old b" });
    const { child, tag } = await writer(dir, "temps");
    // alive: another write leaves its files alone
    await writeOutputs(dir, { "c.txt": "c" });
    assert(ls(dir).includes(`a.txt.tmp-${tag}`), ls(dir).join());
    await kill(child);
    const done = await cleanStaleOutputs(dir);
    assertEquals(done.length, 2, done.join("; "));
    assertEquals(ls(dir), ["a.txt", "b.txt", "c.txt"]);
    assertEquals([read(`${dir}/a.txt`), read(`${dir}/b.txt`)], ["old a", "old b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeOutputs killed mid-commit: the next write finishes it, so the new files appear together", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeOutputs(dir, { "a.txt": "old a", "b.txt": "old b" });
    const { child } = await writer(dir, "journal");
    await kill(child);
    // the mix the issue saw: a new, b old
    assertEquals([read(`${dir}/a.txt`), read(`${dir}/b.txt`)], ["new a", "old b"]);
    await writeOutputs(dir, { "c.txt": "c" });
    assertEquals([read(`${dir}/a.txt`), read(`${dir}/b.txt`)], ["new a", "new b"]);
    assertEquals(ls(dir), ["a.txt", "b.txt", "c.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeFolder killed between its two renames: the next write puts the new folder in place", async () => {
  const root = await Deno.makeTempDir();
  try {
    await writeFolder(`${root}/model`, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "old"));
    const { child } = await writer(root, "folder");
    await kill(child);
    assertEquals(ls(root).filter((n) => n.startsWith("model")).length, 2); // .old- and .tmp-, no model
    await writeFolder(`${root}/other`, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "x"));
    assertEquals(ls(root), ["model", "other"]);
    assertEquals(read(`${root}/model/config.json`), "new");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("writeFolder never replaces a folder of the user's own files; a failed fill leaves nothing", async () => {
  const root = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${root}/mine`);
    await Deno.writeTextFile(`${root}/mine/notes.txt`, "keep me");
    await assertRejects(
      () => writeFolder(`${root}/mine`, (tmp) => Deno.writeTextFile(`${tmp}/config.json`, "{}")),
      RangeError,
      "is not a model folder",
    );
    assertEquals(read(`${root}/mine/notes.txt`), "keep me");
    await assertRejects(
      () =>
        writeFolder(`${root}/m2`, async (tmp) => {
          await Deno.writeTextFile(`${tmp}/config.json`, "{}");
          throw new Error("disk full");
        }),
      Error,
      "disk full",
    );
    assertEquals(ls(root), ["mine"]);
    // a file lmkit did not name is left alone, even one that looks a little like a temporary
    await Deno.writeTextFile(`${root}/data.tmp-12-34`, "user's");
    await cleanStaleOutputs(root);
    assertEquals(ls(root), ["data.tmp-12-34", "mine"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
