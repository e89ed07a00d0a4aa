import { assert, assertEquals, assertThrows } from "@std/assert";
import { collectContrastStates, tokenSpan } from "../../lib/probes/collect.ts";
import { LlamaModel, type ResidualEvent } from "../../lib/model/llama.ts";
import { ByteTokenizer } from "../../lib/model/tokenizer.ts";
import { Rng } from "../../lib/core/rng.ts";

const MODEL = new URL("../../data/models/tinyllama-bytes", import.meta.url).pathname;
const tok = new ByteTokenizer(256, 257);

/** The reference: each rendering run whole, no shared prefix, edits by a hook written here. */
function whole(model: LlamaModel, text: string, edit: Map<number, Float32Array>, at: Set<number>) {
  const ids = tok.encode(text), D = model.config.hiddenSize;
  const states: Float32Array[] = [];
  const logits = model.forward(ids, {
    hooks: {
      residual(e: ResidualEvent) {
        const v = edit.get(e.layer);
        if (v) {
          for (const t of at) for (let i = 0; i < D; i++) e.hidden.data[t * D + i]! += v[i]!;
        }
        states[e.layer] = e.hidden.data.slice((ids.length - 1) * D, ids.length * D);
      },
    },
  });
  const lp = (r: number, id: number) => {
    const row = Array.from(logits.data.subarray(r * logits.cols, (r + 1) * logits.cols));
    const m = Math.max(...row);
    return row[id]! - m - Math.log(row.reduce((s, x) => s + Math.exp(x - m), 0));
  };
  return { ids, states, lp };
}

for (const backend of ["ts", "cpu"] as const) {
  Deno.test(`collectContrastStates (${backend}): shared-prefix run equals whole runs, edits included`, async () => {
    const model = await LlamaModel.load(MODEL, { backend });
    const rng = new Rng(7);
    const prompts = [
      {
        neg: 'The statement "Rome is in Italy." is incorrect.',
        pos: 'The statement "Rome is in Italy." is correct.',
      },
      { neg: "Premise: A is true. Answer: no.", pos: "Premise: A is true. Answer: yes." },
    ];
    const D = model.config.hiddenSize;
    const vec = Float32Array.from({ length: D }, () => rng.normal());
    for (const edits of [[], [{ layer: 2, vector: vec }]]) {
      const spans = [[12, 17] as const]; // characters inside the shared prefix
      const got = collectContrastStates(
        model,
        tok,
        prompts.map((p) => ({ ...p, editSpans: spans })),
        { edits },
      );
      assertEquals([got.layers, got.count, got.dim], [6, 2, D]);
      prompts.forEach((p, n) => {
        const at = new Set(tokenSpan(tok, p.pos, 12, 17));
        const edit = new Map(edits.map((e) => [e.layer, e.vector]));
        const [a, b] = [whole(model, p.neg, edit, at), whole(model, p.pos, edit, at)];
        let shared = 0;
        while (a.ids[shared] === b.ids[shared]) shared++;
        let diff = 0;
        for (let t = shared; t < b.ids.length; t++) diff += b.lp(t - 1, b.ids[t]!);
        for (let t = shared; t < a.ids.length; t++) diff -= a.lp(t - 1, a.ids[t]!);
        assert(
          Math.abs(got.lmDiff[n]! - diff) < 1e-3 * Math.max(1, Math.abs(diff)),
          `lmDiff ${got.lmDiff[n]} vs ${diff}`,
        );
        for (let l = 0; l < 6; l++) {
          for (const [side, ref] of [[got.neg, a], [got.pos, b]] as const) {
            const row = side[l]!.subarray(n * D, (n + 1) * D);
            let err = 0, norm = 0;
            for (let i = 0; i < D; i++) {
              err = Math.max(err, Math.abs(row[i]! - ref.states[l]![i]!));
              norm = Math.max(norm, Math.abs(ref.states[l]![i]!));
            }
            assert(err <= 1e-4 * norm, `layer ${l} item ${n}: max error ${err} (scale ${norm})`);
          }
        }
      });
      if (edits.length) {
        const plain = collectContrastStates(model, tok, prompts);
        assert(plain.pos[5]![0] !== got.pos[5]![0], "the edit changed nothing downstream");
        assertEquals(plain.pos[1], got.pos[1], "an edit after block 3 changed block 2's output");
      }
    }
  });
}

Deno.test("collectContrastStates refuses bad input with one sentence", async () => {
  const model = await LlamaModel.load(MODEL, { backend: "ts" });
  assertThrows(() => collectContrastStates(model, tok, []), Error, "no prompts");
  assertThrows(
    () =>
      collectContrastStates(model, tok, [{ neg: "a", pos: "b" }], {
        edits: [{ layer: 6, vector: new Float32Array(256) }],
      }),
    RangeError,
    "Edit layer 6",
  );
  assertThrows(
    () =>
      collectContrastStates(model, tok, [{ neg: "a", pos: "b" }], {
        edits: [{ layer: 0, vector: new Float32Array(3) }],
      }),
    Error,
    "3 elements, expected 256",
  );
  assertThrows(
    () => collectContrastStates(model, tok, [{ neg: "x".repeat(600), pos: "y" }]),
    RangeError,
    "more than the model's 512 positions",
  );
  assertThrows(() => tokenSpan(tok, "abc", 2, 9), RangeError, "not inside a text of 3 characters");
});
