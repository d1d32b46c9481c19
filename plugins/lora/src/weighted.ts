/**
 * Combining LoRA adapters into a new one, as HF PEFT's `LoraModel.add_weighted_adapter`
 * (`peft/tuners/lora/model.py`, huggingface/peft @ 00277830, with `task_arithmetic` of
 * `peft/utils/merge_utils.py`), for the two combination types that need no SVD:
 *
 * - `linear` (all adapters of the same r): per layer, with s_i the adapter's scaling there,
 *     A = Σ_i √(w_i·s_i)·A_i,   B = Σ_i √(w_i·s_i)·B_i
 *   (HF's `_generalized_task_arithmetic_weighted_adapter`: `valid_weights.append(math.sqrt(weight *
 *   target.scaling[adapter]))`, then `task_arithmetic` = the weighted sum). The product B·A then
 *   holds cross terms √(w_i s_i w_j s_j)·B_i·A_j: it is not Σ w_i·s_i·B_i·A_i unless there is one adapter.
 * - `cat`: per layer, A = concat_i(w_i·s_i·A_i) along the rank axis (rows), B = concat_i(B_i)
 *   along the rank axis (columns), so that B·A = Σ_i w_i·s_i·B_i·A_i exactly; r = Σ r_i.
 *
 * Either way the new adapter's config is the first adapter's with `r` = `lora_alpha` = the new rank
 * (so its scaling is 1, or √r with `use_rslora`, as in HF) and `target_modules` the union of the
 * adapters' lists (or the `|`-joined regular expressions). With one adapter HF always uses `linear`.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import type { LoraConfig } from './config.js';
import { injectLora, LoraAdapterHandle } from './model.js';

/** The combination types peftkit implements (HF PEFT also has svd, ties, dare_linear, dare_ties, magnitude_prune and their _svd forms). */
export const COMBINATION_TYPES = ['linear', 'cat'] as const;
export type CombinationType = (typeof COMBINATION_TYPES)[number];

const isEmptyObject = (v: unknown) => v == null || (typeof v === 'object' && Object.keys(v as object).length === 0);

/**
 * Adds to the adapters' model a new LoRA adapter `adapterName` combining `adapters` with `weights`
 * (see the file comment for the math); returns its handle, disabled (enable it through
 * `PeftModel.setActive` or `handle.setEnabled(true)`).
 *
 * Layers the new config targets but none of the sources holds keep A = B = 0 (HF raises there).
 * @throws UserError when the adapters are not LoRA adapters of one model, the name is taken, the
 *   type is not `linear` / `cat`, `linear` gets different ranks (HF: "All adapters must have the
 *   same r value") or a negative weight·scaling (HF's `math.sqrt` fails), the adapters mix list and
 *   regex `target_modules`, use `rank_pattern` / `alpha_pattern`, DoRA or LoRA on embeddings, or
 *   train biases (HF allows one adapter with bias only).
 */
export function addWeightedLoraAdapter(adapters: LoraAdapterHandle[], weights: number[], adapterName: string, combinationType: string): LoraAdapterHandle {
  const fail = (message: string, hint?: string): never => {
    throw new UserError(`add_weighted_adapter: ${message}`, { hint });
  };
  if (!adapters.length) fail('give at least one adapter');
  if (adapters.length !== weights.length) fail(`${adapters.length} adapters but ${weights.length} weights`, 'give one weight per adapter');
  const notLora = adapters.filter((a) => !(a instanceof LoraAdapterHandle));
  if (notLora.length) fail(`${notLora.map((a) => (a as { name?: string }).name).join(', ')} ${notLora.length > 1 ? 'are not LoRA adapters' : 'is not a LoRA adapter'}`);
  const model = adapters[0].model;
  if (adapters.some((a) => a.model !== model)) fail('the adapters live in different models', 'load them into one base model');
  weights.forEach((w, i) => Number.isFinite(w) || fail(`the weight of "${adapters[i].name}" is ${w}, not a finite number`));
  // HF: "if there is only one adapter, we can only use linear merging".
  const type = adapters.length === 1 ? 'linear' : combinationType;
  if (!(COMBINATION_TYPES as readonly string[]).includes(type)) {
    fail(`combination_type "${combinationType}" is not supported`, `use one of ${COMBINATION_TYPES.join(', ')} (HF PEFT's svd, ties, dare_* and magnitude_prune types are not implemented)`);
  }
  for (const a of adapters) {
    if (!isEmptyObject(a.config.rank_pattern) || !isEmptyObject(a.config.alpha_pattern)) fail(`adapter "${a.name}" sets rank_pattern or alpha_pattern; combining such adapters is not supported`);
    if (a.config.use_dora) fail(`adapter "${a.name}" uses DoRA; combining DoRA adapters is not supported (their magnitude vectors do not combine linearly)`);
    if (a.embeddings.size) fail(`adapter "${a.name}" has LoRA on embeddings (${[...a.embeddings.keys()].join(', ')}); combining those is not supported`);
    if (adapters.length > 1 && a.config.bias !== 'none') fail(`adapter "${a.name}" has bias "${a.config.bias}"; with several adapters every adapter must have bias "none" (as HF PEFT requires)`);
  }
  const ranks = adapters.map((a) => a.config.r);
  if (type === 'linear' && new Set(ranks).size !== 1) {
    fail(`all adapters must have the same r for combination_type linear; got ${adapters.map((a, i) => `${a.name}: ${ranks[i]}`).join(', ')}`, 'use "cat", whose rank is the sum of the ranks');
  }
  const newRank = type === 'linear' ? ranks[0] : ranks.reduce((s, r) => s + r, 0);

  const targets = adapters.map((a) => a.config.target_modules);
  const kinds = new Set(targets.map((t) => (typeof t === 'string' ? 'string' : 'list')));
  if (kinds.size > 1) fail('the adapters mix target_modules given as a list and as a regular expression; HF PEFT does not combine those');
  const newTargets = kinds.has('string')
    ? targets.map((t) => `(${t as string})`).join('|')
    : [...new Set(targets.flatMap((t) => (t as string[] | null) ?? []))].sort();

  const config: LoraConfig = { ...structuredClone(adapters[0].config), r: newRank, lora_alpha: newRank, target_modules: newTargets } as LoraConfig;
  // A fixed seed: the random init is overwritten below, and the shared random stream stays where it was.
  const handle = injectLora(model, config, { adapterName, seed: 0 });

  try {
    for (const [, layer] of handle.layers) {
      const sources = adapters.map((a, i) => ({ name: a.name, w: weights[i] })).filter((s) => layer.has(s.name));
      if (!sources.length) continue;
      const { A, B } = layer.loraWeights(adapterName); // [newRank, in], [out, newRank]
      tf.tidy(() => {
        if (type === 'cat') {
          let catA: tf.Tensor = tf.concat(sources.map((s) => tf.mul(layer.loraWeights(s.name).A, s.w * layer.adapterInfo(s.name).scaling)), 0); // [Σr, in]
          let catB: tf.Tensor = tf.concat(sources.map((s) => layer.loraWeights(s.name).B), 1); // [out, Σr]
          const missing = newRank - catA.shape[0];
          // HF writes into the first rows/columns of zeroed tensors (`target_lora_A.data[: loras_A.shape[0], :]`).
          if (missing > 0) {
            catA = tf.concat([catA, tf.zeros([missing, layer.inFeatures])], 0);
            catB = tf.concat([catB, tf.zeros([layer.outFeatures, missing])], 1);
          }
          A.assign(catA);
          B.assign(catB);
        } else {
          const coef = sources.map((s) => {
            const p = s.w * layer.adapterInfo(s.name).scaling;
            if (p < 0) fail(`combination_type linear takes √(weight·scaling) (HF PEFT's math.sqrt), but adapter "${s.name}" has weight·scaling ${p} < 0 in ${layer.path}`, 'use "cat" for negative weights');
            return Math.sqrt(p);
          });
          A.assign(tf.addN(sources.map((s, i) => tf.mul(layer.loraWeights(s.name).A, coef[i]))));
          B.assign(tf.addN(sources.map((s, i) => tf.mul(layer.loraWeights(s.name).B, coef[i]))));
        }
      });
    }
  } catch (e) {
    handle.dispose();
    throw e;
  }
  handle.setEnabled(false);
  return handle;
}
