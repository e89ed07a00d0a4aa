/**
 * A transparent post-level toxicity classifier: bag-of-words logistic regression (binary word
 * presence, L2 penalty) trained in TypeScript with AdaGrad over the sparse features, seeded. It
 * serves as the binary gate of span detectors and, through its per-word weights, as a rationale
 * extractor: the words of a post whose weight exceeds a threshold become its toxic spans.
 *
 * @module
 */
import { Rng } from "../core/rng.ts";

const TOKENS = /[\p{L}\p{N}]+/gu;

/** Training settings. */
export interface LogRegOptions {
  /** Passes over the data (default 8). */
  epochs?: number;
  /** AdaGrad step (default 0.5). */
  learningRate?: number;
  /** L2 penalty per example (default 1e-4). */
  l2?: number;
  /** Words seen in fewer posts are ignored (default 2). */
  minCount?: number;
  /** Shuffling seed (default 0). */
  seed?: number;
}

/** A word occurrence with its code-point offsets. */
export interface WordToken {
  /** The lower-cased word. */
  word: string;
  /** First code point. */
  start: number;
  /** One past the last code point. */
  end: number;
}

/** Lower-cased letter/digit runs of `text` with code-point offsets. */
export function wordTokens(text: string): WordToken[] {
  const out: WordToken[] = [];
  const lower = text.toLowerCase();
  // code-point offset of each UTF-16 index
  let cp = 0, prev = 0;
  for (const m of lower.matchAll(TOKENS)) {
    for (let i = prev; i < m.index; i++) {
      const c = lower.charCodeAt(i);
      if (!(c >= 0xdc00 && c <= 0xdfff)) cp++;
    }
    const len = [...m[0]].length;
    out.push({ word: m[0], start: cp, end: cp + len });
    cp += len;
    prev = m.index + m[0].length;
  }
  return out;
}

/**
 * Bag-of-words logistic regression.
 *
 * @example
 * ```ts
 * import { BowLogReg } from "./classifier.ts";
 * const docs = ["you idiot", "idiot again", "nice day", "a nice idea"];
 * const m = BowLogReg.train(docs, [true, true, false, false], { minCount: 1, epochs: 30 });
 * if (!(m.probability("what an idiot") > 0.5 && m.probability("nice") < 0.5)) throw new Error("fit");
 * ```
 */
export class BowLogReg {
  /** Word → weight. */
  readonly weights: Map<string, number>;
  /** Bias. */
  readonly bias: number;

  private constructor(weights: Map<string, number>, bias: number) {
    this.weights = weights;
    this.bias = bias;
  }

  /** Trains on `texts` with labels `toxic`. */
  static train(
    texts: readonly string[],
    toxic: readonly boolean[],
    options: LogRegOptions = {},
  ): BowLogReg {
    if (texts.length !== toxic.length) {
      throw new RangeError(`${texts.length} texts but ${toxic.length} labels`);
    }
    if (texts.length === 0) throw new RangeError("No training posts");
    const { epochs = 8, learningRate = 0.5, l2 = 1e-4, minCount = 2, seed = 0 } = options;
    const df = new Map<string, number>();
    const docs = texts.map((t) => [...new Set(wordTokens(t).map((w) => w.word))]);
    for (const d of docs) for (const w of d) df.set(w, (df.get(w) ?? 0) + 1);
    const vocab = new Map<string, number>();
    for (const [w, c] of df) if (c >= minCount) vocab.set(w, vocab.size);
    const feats = docs.map((d) =>
      Int32Array.from(d.map((w) => vocab.get(w) ?? -1).filter((i) => i >= 0))
    );
    const w = new Float64Array(vocab.size), g2 = new Float64Array(vocab.size).fill(1e-8);
    let b = 0, gb = 1e-8;
    const order = Array.from(texts, (_, i) => i), rng = new Rng(seed);
    for (let e = 0; e < epochs; e++) {
      for (let i = order.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      for (const i of order) {
        const f = feats[i]!;
        let z = b;
        for (const k of f) z += w[k]!;
        const err = 1 / (1 + Math.exp(-z)) - (toxic[i] ? 1 : 0);
        for (const k of f) {
          const g = err + l2 * w[k]!;
          g2[k]! += g * g;
          w[k]! -= (learningRate * g) / Math.sqrt(g2[k]!);
        }
        gb += err * err;
        b -= (learningRate * err) / Math.sqrt(gb);
      }
    }
    const weights = new Map<string, number>();
    for (const [word, k] of vocab) weights.set(word, w[k]!);
    return new BowLogReg(weights, b);
  }

  /** P(toxic | text). */
  probability(text: string): number {
    let z = this.bias;
    for (const word of new Set(wordTokens(text).map((t) => t.word))) {
      z += this.weights.get(word) ?? 0;
    }
    return 1 / (1 + Math.exp(-z));
  }

  /** Code-point offsets of the words whose weight exceeds `threshold` (the rationale). */
  rationale(text: string, threshold: number): number[] {
    const out: number[] = [];
    for (const t of wordTokens(text)) {
      if ((this.weights.get(t.word) ?? -Infinity) > threshold) {
        for (let x = t.start; x < t.end; x++) {
          out.push(x);
        }
      }
    }
    return out;
  }
}
