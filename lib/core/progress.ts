/**
 * Progress bars for long work, drawn on stderr only when stdout and stderr are both terminals, so
 * that pipes, CI logs and `--json` output stay clean.
 *
 * @module
 */
// @ts-types="./_cli_progress.d.ts"
import cliProgress from "npm:cli-progress@3.12.0";

/** A progress bar; every method is a no-op when output is not a terminal. */
export interface Progress {
  /** Advances by `n` steps (default 1). */
  tick(n?: number): void;
  /** Finishes and removes the bar. */
  stop(): void;
}

/** Options for {@linkcode progress}. */
export interface ProgressOptions {
  /** Force drawing on or off; default: draw when both stdout and stderr are terminals. */
  enabled?: boolean;
}

/**
 * Starts a progress bar of `total` steps labelled `label`.
 *
 * @example
 * ```ts
 * import { progress } from "./progress.ts";
 * const bar = progress("work", 3, { enabled: false });
 * for (let i = 0; i < 3; i++) bar.tick();
 * bar.stop();
 * ```
 */
export function progress(label: string, total: number, options: ProgressOptions = {}): Progress {
  const enabled = options.enabled ?? (Deno.stdout.isTerminal() && Deno.stderr.isTerminal());
  if (!enabled) return { tick() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% {value}/{total} eta {eta_formatted}`,
    stream: process.stderr,
    clearOnComplete: true,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  let done = 0;
  return {
    tick(n = 1) {
      done += n;
      bar.update(done);
    },
    stop() {
      bar.stop();
    },
  };
}
