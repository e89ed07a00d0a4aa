// The one header and the Deno symbol tables agree: every entry point declared in
// ffi/include/lmkit.h is declared in ffi/mod.ts with as many parameters, of matching kinds
// (pointer ↔ "buffer", double ↔ "f64", int32_t ↔ "i32"), and nothing else is. This is what keeps
// an entry point that only a GPU machine can call honest on a machine without one.
import { assertEquals } from "@std/assert";

Deno.test("lmkit.h and ffi/mod.ts declare the same entry points with the same parameters", async () => {
  const header = await Deno.readTextFile(new URL("../../ffi/include/lmkit.h", import.meta.url));
  const mod = await Deno.readTextFile(new URL("../../ffi/mod.ts", import.meta.url));
  const kind = (p: string) =>
    p.includes("*")
      ? "buffer"
      : /\bdouble\b/.test(p)
      ? "f64"
      : /\bint32_t\b/.test(p)
      ? "i32"
      : `? ${p}`;
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
