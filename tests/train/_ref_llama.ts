// An independent f64 Llama loss for the gradient checks, written from the HF definition with
// plain loops and none of lib/kernels or lib/train's forward: RMSNorm, rotate_half RoPE, causal
// GQA softmax attention, SwiGLU MLP, final norm, lm_head (tied or not), mean cross-entropy over
// the targets that are not -1. Parameters come as one f64 array in lib/train's layout.
import type { LlamaConfig } from "../../lib/model/config.ts";
import { ropeInvFreq } from "../../lib/model/llama.ts";
import { paramLayout } from "../../lib/train/params.ts";
import type { TokenBatch } from "../../lib/train/data.ts";
import type { Rng } from "../../lib/core/rng.ts";

/** A small random config: odd sizes, GQA. */
export function tinyConfig(tied: boolean): LlamaConfig {
  return {
    vocabSize: 13,
    hiddenSize: 10,
    intermediateSize: 7,
    numLayers: 2,
    numHeads: 4,
    numKvHeads: 2,
    headDim: 6,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tieWordEmbeddings: tied,
    maxPositionEmbeddings: 16,
    bosTokenId: null,
    eosTokenIds: [],
    tokenizer: null,
  };
}

/** A batch of `rows` random sequences of random lengths up to `seqLen`, right-padded. */
export function randomBatch(rng: Rng, c: LlamaConfig, rows: number, seqLen: number): TokenBatch {
  const inputs = new Int32Array(rows * seqLen), targets = new Int32Array(rows * seqLen).fill(-1);
  for (let r = 0; r < rows; r++) {
    const len = r === 0 ? seqLen : 1 + rng.int(seqLen);
    for (let t = 0; t < seqLen; t++) {
      inputs[r * seqLen + t] = rng.int(c.vocabSize);
      if (t < len) targets[r * seqLen + t] = rng.int(c.vocabSize);
    }
    // an ignored target inside the sequence too
    if (len > 2) targets[r * seqLen + 1] = -1;
  }
  return { rows, seqLen, inputs, targets };
}

/** The mean cross-entropy of the model with parameters `w` (f64, lib/train layout) on `b`. */
export function refLoss(c: LlamaConfig, w: Float64Array, b: TokenBatch): number {
  const views = new Map(paramLayout(c).views.map((v) => [v.name, v]));
  const P = (name: string) => {
    const v = views.get(name)!;
    return w.subarray(v.offset, v.offset + v.size);
  };
  const d = c.hiddenSize, hd = c.headDim, H = c.numHeads, KV = c.numKvHeads, I = c.intermediateSize;
  const inv = ropeInvFreq(c);
  const norm = (x: Float64Array, g: Float64Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const r = 1 / Math.sqrt(ss / x.length + c.rmsNormEps);
    return x.map((v, i) => v * r * g[i]!);
  };
  // y = W·x for W out × in
  const mv = (W: Float64Array, x: Float64Array, out: number) => {
    const y = new Float64Array(out), n = x.length;
    for (let i = 0; i < out; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += W[i * n + j]! * x[j]!;
      y[i] = s;
    }
    return y;
  };
  const rope = (x: Float64Array, heads: number, pos: number) => {
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        const a = pos * inv[i]!, co = Math.cos(a), si = Math.sin(a);
        const u = x[h * hd + i]!, v = x[h * hd + i + hd / 2]!;
        x[h * hd + i] = u * co - v * si;
        x[h * hd + i + hd / 2] = v * co + u * si;
      }
    }
  };
  let total = 0, count = 0;
  for (let r = 0; r < b.rows; r++) {
    const T = b.seqLen;
    const E = P("model.embed_tokens.weight");
    let hs = Array.from({ length: T }, (_, t) => {
      const id = b.inputs[r * T + t]!;
      return E.slice(id * d, (id + 1) * d);
    });
    for (let l = 0; l < c.numLayers; l++) {
      const pre = `model.layers.${l}`;
      const lin = (n: string, x: Float64Array, out: number) =>
        mv(
          P(`${pre}.${
            n.endsWith("proj") && /gate|up|down/.test(n) ? "mlp" : "self_attn"
          }.${n}.weight`),
          x,
          out,
        );
      const xs = hs.map((h) => norm(h, P(`${pre}.input_layernorm.weight`)));
      const qs = xs.map((x, t) => {
        const q = lin("q_proj", x, H * hd);
        rope(q, H, t);
        return q;
      });
      const ks = xs.map((x, t) => {
        const k = lin("k_proj", x, KV * hd);
        rope(k, KV, t);
        return k;
      });
      const vs = xs.map((x) => lin("v_proj", x, KV * hd));
      const h1s = hs.map((h, t) => {
        const att = new Float64Array(H * hd);
        for (let h = 0; h < H; h++) {
          const g = Math.floor(h / (H / KV));
          const s = Array.from({ length: t + 1 }, (_, j) => {
            let dot = 0;
            for (let e = 0; e < hd; e++) dot += qs[t]![h * hd + e]! * ks[j]![g * hd + e]!;
            return dot / Math.sqrt(hd);
          });
          const m = Math.max(...s), ex = s.map((v) => Math.exp(v - m));
          const z = ex.reduce((a, v) => a + v, 0);
          for (let j = 0; j <= t; j++) {
            for (let e = 0; e < hd; e++) att[h * hd + e]! += (ex[j]! / z) * vs[j]![g * hd + e]!;
          }
        }
        const o = lin("o_proj", att, d);
        return h.map((v, i) => v + o[i]!);
      });
      hs = h1s.map((h1) => {
        const x = norm(h1, P(`${pre}.post_attention_layernorm.weight`));
        const gt = lin("gate_proj", x, I), up = lin("up_proj", x, I);
        const a = gt.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]!);
        const dn = lin("down_proj", a, d);
        return h1.map((v, i) => v + dn[i]!);
      });
    }
    const head = P(c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    for (let t = 0; t < T; t++) {
      const y = b.targets[r * T + t]!;
      if (y === -1) continue;
      const logits = mv(head, norm(hs[t]!, P("model.norm.weight")), c.vocabSize);
      const m = Math.max(...logits);
      const lse = m + Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0));
      total += lse - logits[y]!;
      count++;
    }
  }
  return total / count;
}
