/**
 * Learning-rate schedules: linear warm-up, then cosine decay to a floor.
 *
 * @module
 */

/** A warm-up + cosine schedule. */
export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  /** Warm-up steps (the rate rises linearly to `lr` at step `warmup`). */
  warmup: number;
  /** Last step (the rate reaches `minLr` there). */
  total: number;
  /** Floor (default lr/10). */
  minLr?: number;
}

/**
 * The learning rate of step `t` (1-based): lr·t/warmup up to `warmup`, then
 * minLr + (lr − minLr)·(1 + cos(π·(t − warmup)/(total − warmup)))/2, and minLr after `total`.
 *
 * @example
 * ```ts
 * import { learningRate } from "./schedule.ts";
 * const s = { lr: 1e-3, warmup: 3, total: 10, minLr: 1e-4 };
 * if (learningRate(3, s) !== 1e-3 || Math.abs(learningRate(10, s) - 1e-4) > 1e-12) throw new Error();
 * ```
 */
export function learningRate(t: number, s: ScheduleOptions): number {
  const minLr = s.minLr ?? s.lr / 10;
  if (!Number.isInteger(t) || t < 1) throw new RangeError(`Step ${t} is not an integer ≥ 1`);
  if (!(s.lr >= 0) || !(minLr >= 0) || !Number.isFinite(s.lr)) {
    throw new RangeError(`Learning rates ${s.lr} / ${minLr} are not finite and ≥ 0`);
  }
  if (t <= s.warmup) return (s.lr * t) / s.warmup;
  if (t >= s.total) return minLr;
  const progress = (t - s.warmup) / (s.total - s.warmup);
  return minLr + (s.lr - minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
