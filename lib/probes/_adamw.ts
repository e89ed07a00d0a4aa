// torch.optim.AdamW (torch 1.13, amsgrad off) on one flat f64 parameter vector: decoupled decay
// w ← w·(1 − lr·wd), then the bias-corrected Adam step lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + eps).
import { Rng } from "../core/rng.ts";

export class _AdamW {
  #m: Float64Array;
  #v: Float64Array;
  #t = 0;
  constructor(
    d: number,
    readonly lr: number,
    readonly weightDecay: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly eps = 1e-8,
  ) {
    this.#m = new Float64Array(d);
    this.#v = new Float64Array(d);
  }

  /** One step on `w` in place with gradient `g`. */
  step(w: Float64Array, g: Float64Array): void {
    const { lr, weightDecay, beta1, beta2, eps } = this;
    this.#t++;
    const bc1 = 1 - beta1 ** this.#t, bc2 = Math.sqrt(1 - beta2 ** this.#t);
    const stepSize = lr / bc1, m = this.#m, v = this.#v;
    for (let j = 0; j < w.length; j++) {
      w[j]! *= 1 - lr * weightDecay;
      const gj = g[j]!;
      m[j] = m[j]! * beta1 + gj * (1 - beta1);
      v[j] = v[j]! * beta2 + gj * gj * (1 - beta2);
      w[j]! -= stepSize * (m[j]! / (Math.sqrt(v[j]!) / bc2 + eps));
    }
  }
}

/** torch.nn.Linear's default weight init, U(−1/√d, 1/√d), drawn from a seeded lmkit Rng. */
export function _linearInit(d: number, seed: number): Float64Array {
  const rng = new Rng(seed), bound = 1 / Math.sqrt(d), w = new Float64Array(d);
  for (let j = 0; j < d; j++) w[j] = (2 * rng.uniform() - 1) * bound;
  return w;
}
