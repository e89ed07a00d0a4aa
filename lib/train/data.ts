/**
 * Token batches for training: sequences right-padded to one length, with the positions that must
 * not count in the loss marked, and a seeded sampler of training windows that can be saved and
 * resumed exactly.
 *
 * @module
 */
import { quoteValue, ShapeError } from "../core/errors.ts";
import { Rng } from "../core/rng.ts";
import { IGNORE_TARGET } from "../kernels/mod.ts";
import { tokenWindows } from "../model/perplexity.ts";
import type { TextTokenizer } from "../model/tokenizer.ts";
import { readDocuments } from "../io/text.ts";

/**
 * `rows` sequences of `seqLen` positions: `inputs[r·seqLen + t]` is the token at position t of
 * sequence r, `targets[…]` the token it must predict or {@linkcode IGNORE_TARGET} (padding).
 */
export interface TokenBatch {
  /** Sequences. */
  readonly rows: number;
  /** Positions per sequence. */
  readonly seqLen: number;
  /** rows × seqLen input ids. */
  readonly inputs: Int32Array;
  /** rows × seqLen target ids, −1 where ignored. */
  readonly targets: Int32Array;
}

/**
 * A batch from whole token sequences (each predicts its tokens 1..n from the ones before),
 * right-padded with `padId` to the longest.
 *
 * @example
 * ```ts
 * import { batchFromSequences } from "./data.ts";
 * const b = batchFromSequences([[256, 72, 105], [256, 33]], 257);
 * if (b.seqLen !== 2 || b.targets.join() !== "72,105,33,-1" || b.inputs.join() !== "256,72,256,257") {
 *   throw new Error("wrong batch");
 * }
 * ```
 */
export function batchFromSequences(seqs: readonly (readonly number[])[], padId = 0): TokenBatch {
  if (seqs.length === 0) throw new RangeError("Cannot make a batch of no sequences");
  seqs.forEach((s, i) => {
    if (s.length < 2) {
      throw new RangeError(`Sequence ${i} has ${s.length} tokens: nothing to predict`);
    }
  });
  const seqLen = Math.max(...seqs.map((s) => s.length - 1)), rows = seqs.length;
  const inputs = new Int32Array(rows * seqLen).fill(padId);
  const targets = new Int32Array(rows * seqLen).fill(IGNORE_TARGET);
  seqs.forEach((s, r) => {
    for (let t = 0; t + 1 < s.length; t++) {
      inputs[r * seqLen + t] = s[t]!;
      targets[r * seqLen + t] = s[t + 1]!;
    }
  });
  return { rows, seqLen, inputs, targets };
}

/** Checks the lengths of a batch's arrays. */
export function checkBatch(b: TokenBatch): void {
  if (!Number.isInteger(b.rows) || !Number.isInteger(b.seqLen) || b.rows < 1 || b.seqLen < 1) {
    throw new RangeError(`A batch of ${b.rows} × ${b.seqLen} positions is empty or malformed`);
  }
  if (b.inputs.length !== b.rows * b.seqLen || b.targets.length !== b.rows * b.seqLen) {
    throw new ShapeError(
      `A ${b.rows} × ${b.seqLen} batch has ${b.inputs.length} inputs and ${b.targets.length} targets, expected ${
        b.rows * b.seqLen
      } of each`,
    );
  }
}

/** The number of targets that count (not {@linkcode IGNORE_TARGET}). */
export function countTargets(b: TokenBatch): number {
  let n = 0;
  for (const t of b.targets) if (t !== IGNORE_TARGET) n++;
  return n;
}

/** Where a {@linkcode WindowSampler} stands: enough to continue it exactly. */
export interface SamplerState {
  /** Passes over the windows begun. */
  epoch: number;
  /** Windows of this epoch already handed out. */
  cursor: number;
  /** The RNG's state before it shuffled this epoch's order. */
  rng: [number, number, number, number, number | null];
}

/**
 * Hands out training windows in a seeded random order, epoch after epoch (each window once per
 * epoch), as micro-batches; {@linkcode WindowSampler.state} and `restore` continue a run exactly.
 *
 * @example
 * ```ts
 * import { WindowSampler } from "./data.ts";
 * const w = Array.from({ length: 5 }, (_, i) => [i, i + 1, i + 2]);
 * const a = new WindowSampler(w, 0);
 * a.next(2);
 * const saved = a.state();
 * const b = new WindowSampler(w, 0, saved);
 * if (a.next(4).inputs.join() !== b.next(4).inputs.join()) throw new Error("not resumed");
 * ```
 */
export class WindowSampler {
  readonly #windows: readonly (readonly number[])[];
  #rng: Rng;
  #order: number[] = [];
  #epoch = 0;
  #cursor = 0;
  #rngAtShuffle: SamplerState["rng"];
  readonly #padId: number;

  /**
   * A sampler over `windows`.
   *
   * @param windows Token windows (each predicts its tokens 1..n).
   * @param seed Seed of the order.
   * @param state Continue from this saved state instead of the start.
   * @param padId Padding id for windows of unequal length.
   */
  constructor(
    windows: readonly (readonly number[])[],
    seed: number,
    state?: SamplerState,
    padId = 0,
  ) {
    if (windows.length === 0) throw new RangeError("Cannot sample from no training windows");
    this.#windows = windows;
    this.#padId = padId;
    this.#rng = state ? Rng.fromState(state.rng) : new Rng(seed);
    this.#rngAtShuffle = this.#rng.state();
    this.#order = this.#rng.shuffle(windows.map((_, i) => i));
    if (state) {
      if (!Number.isInteger(state.cursor) || state.cursor < 0 || state.cursor > windows.length) {
        throw new RangeError(
          `Sampler cursor ${state.cursor} is outside the ${windows.length} windows`,
        );
      }
      this.#epoch = state.epoch;
      this.#cursor = state.cursor;
    }
  }

  /** The state to save (before the next call of {@linkcode WindowSampler.next}). */
  state(): SamplerState {
    return { epoch: this.#epoch, cursor: this.#cursor, rng: this.#rngAtShuffle };
  }

  /** The next `count` windows as a batch. */
  next(count: number): TokenBatch {
    return this.nextShard(count, 0, 1);
  }

  /**
   * One optimiser step's micro-batches for rank `rank` of `ranks`: `accumulate` times
   * {@linkcode WindowSampler.nextShard} of `microBatch`.
   */
  nextStep(
    o: { microBatch: number; accumulate: number },
    rank: number,
    ranks: number,
  ): TokenBatch[] {
    return Array.from({ length: o.accumulate }, () => this.nextShard(o.microBatch, rank, ranks));
  }

  /**
   * Rank `rank`'s share of the next `count` × `ranks` windows: windows [rank·count,
   * (rank + 1)·count) of them. Every rank of a data-parallel run draws the same windows in the
   * same order and trains on its own, disjoint share; together they are the batch that
   * `next(count × ranks)` gives one process.
   */
  nextShard(count: number, rank: number, ranks: number): TokenBatch {
    if (
      !(Number.isInteger(ranks) && ranks >= 1 && Number.isInteger(rank) && rank >= 0 &&
        rank < ranks)
    ) {
      throw new RangeError(`Rank ${quoteValue(rank)} of ${quoteValue(ranks)} ranks is not a rank`);
    }
    if (!(Number.isInteger(count) && count >= 1)) {
      throw new RangeError(`A batch of ${quoteValue(count)} windows is not an integer ≥ 1`);
    }
    const picked: (readonly number[])[] = [];
    while (picked.length < count * ranks) {
      if (this.#cursor === this.#order.length) {
        this.#epoch++;
        this.#cursor = 0;
        this.#rngAtShuffle = this.#rng.state();
        this.#order = this.#rng.shuffle(this.#windows.map((_, i) => i));
      }
      picked.push(this.#windows[this.#order[this.#cursor++]!]!);
    }
    return batchFromSequences(picked.slice(rank * count, (rank + 1) * count), this.#padId);
  }
}

/**
 * Training windows of context + 1 tokens: the documents, each encoded as BOS + text + EOS,
 * concatenated and cut into consecutive windows (the tail shorter than a window dropped). `what`
 * names the documents in the error when they give less than one window.
 */
export function documentWindows(
  docs: string[],
  tok: TextTokenizer,
  context: number,
  what: string,
): number[][] {
  const stream: number[] = [];
  for (const d of docs) for (const id of tok.encode(d, { eos: true })) stream.push(id);
  const w = tokenWindows(stream, context, context + 1);
  if (w.length === 0) {
    throw new RangeError(
      `The ${what} documents give ${stream.length} tokens, fewer than one window of ${context + 1}`,
    );
  }
  return w;
}

/** What {@linkcode loadTextData} reads. */
export interface TextDataOptions {
  /** Training documents (a .txt file, or .jsonl/.csv/.tsv with `field`). */
  train: string;
  /** Held-out documents, same formats. */
  heldout: string;
  /** The JSONL/CSV field holding the text. */
  field: string;
  /** Tokens per window (each window holds context + 1). */
  context: number;
  /** Held-out windows kept (the first ones). */
  heldoutWindows: number;
  /** Sequences per held-out batch. */
  batch: number;
}

/**
 * Training windows and held-out batches from document files (see {@linkcode documentWindows});
 * `heldout` holds the held-out windows, `heldoutBatches` them cut into batches of `batch`.
 */
export async function loadTextData(
  tok: TextTokenizer,
  o: TextDataOptions,
): Promise<{ train: number[][]; heldout: number[][]; heldoutBatches: TokenBatch[] }> {
  const train = documentWindows(await readDocuments(o.train, o.field), tok, o.context, "--train");
  const heldout = documentWindows(
    await readDocuments(o.heldout, o.field),
    tok,
    o.context,
    "--heldout",
  ).slice(0, o.heldoutWindows);
  const heldoutBatches: TokenBatch[] = [];
  for (let i = 0; i < heldout.length; i += o.batch) {
    heldoutBatches.push(batchFromSequences(heldout.slice(i, i + o.batch)));
  }
  return { train, heldout, heldoutBatches };
}
