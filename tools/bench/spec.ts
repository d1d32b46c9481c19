/**
 * What tools/bench/train.ts and tools/bench/compare.ts share about tools/bench/train-spec.json: the modes and
 * each (model, mode)'s run. A module of its own because train.ts runs its benchmark when imported.
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
