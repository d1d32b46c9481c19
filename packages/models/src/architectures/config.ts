/**
 * Reading an HF `config.json` into an architecture's settings: HF's defaults come from the
 * architecture's `*-config.schema.json`, and a bad field is a {@link UserError} with its JSON pointer.
 */
import { formatIssue, schemaIssues, UserError, type JSONSchema7 } from '@peftkit/core';
import type { ModelConfig, ModelTask } from '../model.js';

/** A config with every HF default filled in (nullable fields stay nullable). */
export type Resolved<T> = Required<T>;

/**
 * Copies `config`, fills HF's defaults from `schema` (after the per-model-type `familyDefaults`),
 * derives `num_labels` from `id2label` as HF's `PretrainedConfig` does, and validates.
 * @param file - where the config came from, for error messages (`config.json` when unknown).
 * @throws UserError listing every invalid field as `file: /pointer: message`.
 */
export function resolveConfig<T>(schema: JSONSchema7, config: ModelConfig, file = 'config.json', familyDefaults: Record<string, unknown> = {}): Resolved<T> {
  const out: Record<string, unknown> = { ...familyDefaults, ...structuredClone(config) };
  if (out.num_labels === undefined && out.id2label && typeof out.id2label === 'object') out.num_labels = Object.keys(out.id2label).length;
  const issues = schemaIssues(file, '', schema, out);
  if (issues.length) throw new UserError(`${file} is not a valid ${config.model_type} config:\n${issues.map(formatIssue).join('\n')}`, { file, pointer: issues[0].pointer });
  return out as Resolved<T>;
}

/**
 * The task of an HF class name: `*LMHeadModel` / `*ForCausalLM` → causal-lm,
 * `*ForSequenceClassification` → sequence-classification, bare `*Model` → base; undefined for
 * other heads (masked LM, pretraining, question answering), whose encoders still load as `base`.
 */
export function taskOfArchitecture(name: string | undefined): ModelTask | undefined {
  if (!name) return undefined;
  if (/LMHeadModel$|ForCausalLM$/.test(name)) return 'causal-lm';
  if (/ForSequenceClassification$/.test(name)) return 'sequence-classification';
  if (/Model$/.test(name) && !/PreTrainedModel$/.test(name)) return 'base';
  return undefined;
}

/**
 * Checks that `divisor` divides `value` (heads into a hidden size, key/value heads into heads).
 * @throws UserError naming the two config fields.
 */
export function requireDivisible(file: string, value: number, valueField: string, divisor: number, divisorField: string): void {
  if (value % divisor !== 0) {
    throw new UserError(`${file}: /${valueField} (${value}) must be a multiple of /${divisorField} (${divisor})`, { file, pointer: `/${valueField}`, hint: 'fix the config so that the sizes divide' });
  }
}
