/**
 * Calibration capture for one-shot compression (SparseGPT, GPTQ, QUIK, Sparse Expansion): run
 * N sequences through the model block by block, hand each linear layer's inputs to a consumer
 * one sequence at a time, let the consumer compress the block, then recompute the block's
 * outputs with the compressed weights before moving on, so that block l sees the outputs of the
 * already-compressed blocks before it.
 *
 * @module
 */
import type { Matrix } from "../core/matrix.ts";
import { progress } from "../core/progress.ts";
import { KVCache, type LinearName, type LlamaBlock, type LlamaModel } from "./llama.ts";

/** Receives calibration inputs and compresses blocks. */
export interface CalibrationConsumer {
  /** Which projections to capture (default: all seven). */
  names?: readonly LinearName[];
  /** The inputs (tokens × in) and outputs (tokens × out) of projection `name` of block `layer`, for one sequence. */
  add(layer: number, name: LinearName, inputs: Matrix, outputs: Matrix): void;
  /** True when the consumer only observes: each block then runs once per sequence. */
  readOnly?: boolean;
  /** Called after every sequence went through block `layer`; compress its linears here. */
  finishBlock?(layer: number, block: LlamaBlock): void | Promise<void>;
  /**
   * True-sequential order inside a block (GPTQ's `--true-sequential`), e.g.
   * `[["k_proj", "v_proj", "q_proj"], ["o_proj"], ["up_proj", "gate_proj"], ["down_proj"]]`: the
   * block runs once per stage, `add` sees only that stage's projections, and
   * {@linkcode CalibrationConsumer.finishStage} compresses them before the next stage runs, so
   * that each projection's inputs come from the compressed ones before it. `names` is ignored.
   */
  stages?: readonly (readonly LinearName[])[];
  /** With `stages`: compress the projections of stage `stage` of block `layer`. */
  finishStage?(
    layer: number,
    stage: readonly LinearName[],
    block: LlamaBlock,
  ): void | Promise<void>;
}

/** Options of {@linkcode runCalibration}. */
export interface CalibrationOptions {
  /** Draw a progress bar (default: when output is a terminal). */
  progress?: boolean;
}

/**
 * Runs the calibration loop over `sequences` (token ids, any lengths). Holds one hidden state per
 * sequence (N × L × hidden floats), never every linear's inputs at once.
 *
 * @example
 * ```ts
 * import { LlamaModel } from "./llama.ts";
 * import { runCalibration } from "./calibration.ts";
 * const model = await LlamaModel.load("data/models/tinyllama-bytes", { backend: "ts" });
 * let rows = 0;
 * await runCalibration(model, [[256, 72, 105]], {
 *   names: ["down_proj"],
 *   add: (_layer, _name, x) => { rows += x.rows; },
 * });
 * if (rows !== 3 * model.config.numLayers) throw new Error("expected 3 rows per block");
 * ```
 */
export async function runCalibration(
  model: LlamaModel,
  sequences: readonly (readonly number[])[],
  consumer: CalibrationConsumer,
  options: CalibrationOptions = {},
): Promise<void> {
  const wanted = new Set(
    consumer.names ?? ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
  );
  let hidden = sequences.map((s) => model.embedTokens(s));
  const L = model.config.numLayers;
  const stages = consumer.stages;
  const bar = progress(
    "calibration",
    L * sequences.length * (stages ? stages.length + 1 : 2),
    options.progress === undefined ? {} : { enabled: options.progress },
  );
  try {
    for (let l = 0; l < L; l++) {
      if (stages) {
        for (const stage of stages) {
          const want = new Set(stage);
          let seen = 0;
          const hooks = {
            linear: (e: { name: LinearName; input: Matrix; output: Matrix }) => {
              if (!want.has(e.name)) return;
              consumer.add(l, e.name, e.input, e.output);
              // the rest of the block is not needed for this stage: stop it here
              if (++seen === want.size) throw STOP;
            },
          };
          for (const h of hidden) {
            seen = 0;
            try {
              model.blockForward(l, h, positions(h.rows), new KVCache(model.config, h.rows), hooks);
            } catch (e) {
              if (e !== STOP) throw e;
            }
            bar.tick();
          }
          await consumer.finishStage?.(l, stage, model.blocks[l] as LlamaBlock);
        }
        await consumer.finishBlock?.(l, model.blocks[l] as LlamaBlock);
        hidden = hidden.map((h) => {
          const out = model.blockForward(
            l,
            h,
            positions(h.rows),
            new KVCache(model.config, h.rows),
          );
          bar.tick();
          return out;
        });
        continue;
      }
      const hooks = {
        linear: ({ name, input, output }: { name: LinearName; input: Matrix; output: Matrix }) => {
          if (wanted.has(name)) consumer.add(l, name, input, output);
        },
      };
      const first = hidden.map((h) => {
        const out = model.blockForward(
          l,
          h,
          positions(h.rows),
          new KVCache(model.config, h.rows),
          hooks,
        );
        bar.tick(consumer.readOnly ? 2 : 1);
        return out;
      });
      await consumer.finishBlock?.(l, model.blocks[l] as LlamaBlock);
      hidden = consumer.readOnly ? first : hidden.map((h) => {
        const out = model.blockForward(l, h, positions(h.rows), new KVCache(model.config, h.rows));
        bar.tick();
        return out;
      });
    }
  } finally {
    bar.stop();
  }
}

/** Thrown by a stage's hook once it has seen the stage's projections, to end the block early. */
const STOP = Symbol("stage complete");

function positions(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
