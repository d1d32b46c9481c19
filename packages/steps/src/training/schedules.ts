/**
 * Learning-rate schedules with linear warmup, as Hugging Face transformers'
 * `get_constant_schedule_with_warmup`, `get_linear_schedule_with_warmup` and
 * `get_cosine_schedule_with_warmup` (src/transformers/optimization.py).
 *
 * A schedule maps the number of optimizer updates already done (`step`, 0 for the first update)
 * to a multiplier of the peak learning rate, exactly as HF's `LambdaLR` lambdas: the first update
 * of a run with warmup uses multiplier 0.
 */

/** The schedules `lr_scheduler_type` names. */
export type SchedulerType = 'constant' | 'constant_with_warmup' | 'linear' | 'cosine';

/** A schedule's shape. */
export interface ScheduleOptions {
  type: SchedulerType;
  /** Updates of linear warmup from 0 to the peak. */
  warmupSteps: number;
  /** Total number of optimizer updates of the run. */
  totalSteps: number;
  /** Cosine only: HF's `num_cycles`, the number of cosine waves (default 0.5: one half-cosine from the peak down to 0). */
  numCycles?: number;
}

/**
 * The multiplier of the peak learning rate for update number `step` (0-based).
 *
 * - warmup (all types, `step < warmupSteps`): `step / max(1, warmupSteps)`;
 * - `constant` / `constant_with_warmup`: 1 afterwards. (HF's plain `constant` ignores warmup; here
 *   `constant` with a warmup behaves as `constant_with_warmup`, which is what a user setting both means);
 * - `linear`: `max(0, (T - step) / max(1, T - W))`;
 * - `cosine`: `max(0, 0.5 (1 + cos(π · numCycles · 2 · progress)))`, progress = `(step - W) / max(1, T - W)`.
 */
export function lrMultiplier(step: number, o: ScheduleOptions): number {
  const W = o.warmupSteps;
  const T = o.totalSteps;
  if (step < W) return step / Math.max(1, W);
  switch (o.type) {
    case 'constant':
    case 'constant_with_warmup':
      return 1;
    case 'linear':
      return Math.max(0, (T - step) / Math.max(1, T - W));
    case 'cosine': {
      const progress = (step - W) / Math.max(1, T - W);
      const cycles = o.numCycles ?? 0.5;
      return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * cycles * 2 * progress)));
    }
  }
}

/**
 * The warmup length HF's `TrainingArguments.get_warmup_steps` gives: `warmup_steps` when positive,
 * else `ceil(totalSteps · warmup_ratio)`.
 */
export function warmupStepsFor(totalSteps: number, warmupSteps: number, warmupRatio: number): number {
  return warmupSteps > 0 ? warmupSteps : Math.ceil(totalSteps * warmupRatio);
}
