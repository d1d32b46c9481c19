/**
 * What tools/bench/train.ts and tools/bench/compare.ts share about tools/bench/train-spec.json: the modes and
 * each (model, mode)'s run; and the median both take. A module of its own because train.ts runs its benchmark when
 * imported.
 */
import spec from './train-spec.json' with { type: 'json' };

export type Mode = 'forward' | 'lora' | 'full' | 'full-sgd' | 'generate';
export const MODES: Mode[] = ['forward', 'lora', 'full', 'full-sgd', 'generate'];

/** One (model, mode) entry of the spec's `runs`; `new_tokens` only for generate. */
export interface RunSpec {
  batch: number;
  /** Tokens per row (generate: of the prompt). */
  seq: number;
  warmup: number;
  /** Timed steps (generate: timed generations). */
  steps: number;
  /** generate: new tokens per row. */
  new_tokens?: number;
}

/** The spec's run of `mode` for `model`, or undefined when the spec has none (e.g. generate for the Llama). */
export function runSpec(model: string, mode: Mode): RunSpec | undefined {
  const m = (spec.models as Record<string, { runs: Partial<Record<Mode, RunSpec>> } | undefined>)[model];
  return m?.runs[mode];
}

/** The median of `xs` (the mean of the two middle values for an even count); NaN for none. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
