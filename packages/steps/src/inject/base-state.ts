import type { PeftModel } from '@peftkit/models';

/**
 * The base model's state-dict names as they were before a method was injected, per PeftModel:
 * what a merged export must write (adapter-layer methods add their own tensors to the module tree,
 * and HF's `merge_and_unload` drops them).
 */
const baseNames = new WeakMap<PeftModel, string[]>();

/** Records the names (called by the `inject` step before injecting). */
export function rememberBaseStateNames(model: PeftModel, names: string[]): void {
  baseNames.set(model, names);
}

/** The recorded names, when the model came from an `inject` step of this process. */
export function baseStateNames(model: PeftModel): string[] | undefined {
  return baseNames.get(model);
}
