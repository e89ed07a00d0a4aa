/**
 * A seeded pseudo-random generator (xoshiro128**, 32-bit integer arithmetic only), so that the
 * same seed gives the same stream on every machine and runtime.
 *
 * @module
 */

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/**
 * Seeded random numbers: uniform integers and floats, standard normals, and helpers to fill
 * typed arrays.
 *
 * @example Reproducible streams
 * ```ts
 * import { Rng } from "./rng.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const a = new Rng(42), b = new Rng(42);
 * assertEquals(a.uniform(), b.uniform());
 * const x = new Rng(7).normalArray(1000);
 * const mean = x.reduce((s, v) => s + v, 0) / x.length;
 * if (Math.abs(mean) > 0.2) throw new Error("mean too far from 0");
 * ```
 */
export class Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;
  #spare: number | undefined = undefined;

  /**
   * Creates a generator.
   * @param seed Any integer; equal seeds give equal streams.
   */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) {
      throw new TypeError(`Cannot seed Rng with ${seed}: expected an integer`);
    }
    const sm = splitmix32(seed ^ Math.floor(seed / 0x100000000));
    this.#s0 = sm();
    this.#s1 = sm();
    this.#s2 = sm();
    this.#s3 = sm();
  }

  /**
   * The generator's whole state (four 32-bit words and the spare normal draw, or null), to be
   * saved with a checkpoint and given back to {@linkcode Rng.fromState}.
   */
  state(): [number, number, number, number, number | null] {
    return [this.#s0, this.#s1, this.#s2, this.#s3, this.#spare ?? null];
  }

  /** A generator that continues exactly where the one whose {@linkcode Rng.state} this is was. */
  static fromState(state: readonly unknown[]): Rng {
    const words = state.slice(0, 4), spare = state[4];
    if (
      state.length !== 5 ||
      !words.every((w) => Number.isInteger(w) && Math.abs(w as number) < 2 ** 32) ||
      !(spare === null || typeof spare === "number")
    ) {
      throw new TypeError(
        `Cannot restore an Rng from ${
          JSON.stringify(state)
        }: expected four 32-bit integers and a number or null`,
      );
    }
    const r = new Rng(0);
    [r.#s0, r.#s1, r.#s2, r.#s3] = words.map((w) => (w as number) | 0) as [
      number,
      number,
      number,
      number,
    ];
    r.#spare = spare === null ? undefined : spare;
    return r;
  }

  /** The next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5), 7), 9) >>> 0;
    const t = this.#s1 << 9;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  /** A float in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(`Cannot draw an integer below ${n}: expected a positive integer`);
    }
    return Math.floor(this.uniform() * n);
  }

  /** A standard normal draw (Box–Muller). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** A Float32Array of `n` standard normals scaled by `scale`. */
  normalArray(n: number, scale = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal() * scale;
    return out;
  }

  /** A Float32Array of `n` uniforms in [lo, hi). */
  uniformArray(n: number, lo = 0, hi = 1): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * this.uniform();
    return out;
  }

  /** Shuffles `a` in place (Fisher–Yates) and returns it. */
  shuffle<T>(a: T[]): T[] {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i] as T;
      a[i] = a[j] as T;
      a[j] = t;
    }
    return a;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
