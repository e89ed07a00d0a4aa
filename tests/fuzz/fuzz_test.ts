// A small seeded slice of `deno task fuzz` (every reader, 100 mutants each), plus checks of the
// harness itself: the safetensors oracle rejects each broken rule, and mutants are reproducible.
import { assert, assertEquals } from "@std/assert";
import { Rng } from "../../lib/core/rng.ts";
import { writeSafetensors } from "../../lib/io/safetensors.ts";
import { runDeno } from "../_util.ts";
import { mutate } from "./mutate.ts";
import { safetensorsValid } from "./oracle.ts";
import { TARGETS } from "./targets.ts";

Deno.test("fuzz slice: every reader, 100 seeded mutants each: no untyped error, hang or crash, every safetensors rule held", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const json = `${dir}/fuzz.json`;
    const r = await runDeno([
      "run",
      "--no-prompt",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "tests/fuzz/fuzz.ts",
      "--cases",
      "100",
      "--seed",
      "20261207",
      "--work",
      `${dir}/work`,
      "--json",
      json,
    ]);
    const report = JSON.parse(await Deno.readTextFile(json)) as {
      readers: Record<string, number | string | unknown[]>[];
    };
    assertEquals(report.readers.length, TARGETS.length);
    for (const c of report.readers) {
      const bad = ["unnamed", "untyped", "hangs", "crashes", "invalidAccepted", "validRejected"]
        .filter((k) => (c[k] ?? 0) !== 0);
      assertEquals(bad, [], `${c.reader}: ${JSON.stringify(c.findings)}`);
      // every mutant was classified, and the slice reached the readers' checks both ways
      assertEquals(
        (c.accepted as number) + (c.clean as number),
        100,
        String(c.reader),
      );
      assert((c.clean as number) > 0, `${c.reader}: no mutant was rejected`);
    }
    assertEquals(r.code, 0, r.stdout + r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fuzz oracle: a written safetensors file is valid and each broken rule makes it invalid", async () => {
  const path = await Deno.makeTempFile({ suffix: ".safetensors" });
  try {
    await writeSafetensors(path, {
      a: { dtype: "F32", shape: [2, 3], data: new Float32Array(6) },
      b: { dtype: "I64", shape: [1], data: BigInt64Array.of(3n) },
    }, { k: "v" });
    const good = await Deno.readFile(path);
    assert(safetensorsValid(good));
    const n = Number(new DataView(good.buffer).getBigUint64(0, true));
    const header = new TextDecoder().decode(good.subarray(8, 8 + n));
    const data = good.subarray(8 + n);
    const make = (h: string, d: Uint8Array = data) => {
      const hb = new TextEncoder().encode(h);
      const out = new Uint8Array(8 + hb.length + d.length);
      new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
      out.set(hb, 8);
      out.set(d, 8 + hb.length);
      return out;
    };
    assert(safetensorsValid(make(header)), "the rebuilt file");
    assert(safetensorsValid(make(header + "   ")), "header padded with spaces");
    const h = JSON.parse(header);
    const broken: [string, Uint8Array][] = [
      ["trailing byte", make(header, Uint8Array.of(...data, 0))],
      ["missing byte", make(header, data.subarray(1))],
      ["duplicate name", make(header.replace(/^\{/, `{"a":${JSON.stringify(h.a)},`))],
      ["numeric metadata", make(JSON.stringify({ ...h, __metadata__: { k: 1 } }))],
      ["unknown dtype", make(JSON.stringify({ ...h, a: { ...h.a, dtype: "F64" } }))],
      ["negative dim", make(JSON.stringify({ ...h, a: { ...h.a, shape: [-2, -3] } }))],
      ["overlap", make(JSON.stringify({ ...h, b: { ...h.b, data_offsets: [16, 24] } }))],
      ["not an object", make("[]")],
      ["space before '{'", make(" " + header)],
      [
        "bad UTF-8",
        (() => {
          const b = make(header);
          b[9] = 0xff;
          return b;
        })(),
      ],
      [
        "length past the end",
        (() => {
          const b = good.slice();
          new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true);
          return b;
        })(),
      ],
    ];
    for (const [what, b] of broken) assert(!safetensorsValid(b), what);
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("fuzz mutants: the same generator state gives the same mutant; different states differ", async () => {
  const seed = new TextEncoder().encode('{"a": [1, 2, {"b": "c"}], "d": 4.5}\n');
  const out = [];
  for (const s of [1, 1, 2, 3]) out.push(await mutate(seed, "json", new Rng(s)));
  assertEquals(out[0], out[1]);
  assert(new Set(out.map((b) => new TextDecoder().decode(b))).size >= 3);
});
