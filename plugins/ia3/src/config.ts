/**
 * IA3 settings: defaults, the checks the JSON Schema cannot make, and HF PEFT's per-architecture
 * defaults (`peft/tuners/ia3/config.py`, `peft/utils/constants.py`).
 */
import { UserError } from '@peftkit/core';
import { fullMatch } from '@peftkit/models';
import schema from './config.schema.json' with { type: 'json' };
import type { Ia3Config } from './config.generated.js';

export type { Ia3Config };

/** An {@link Ia3Config} with every default filled in. */
export type ResolvedIa3Config = Required<Ia3Config>;

/** The JSON Schema of {@link Ia3Config} (draft-07). */
export const ia3ConfigSchema = schema;

/** HF PEFT's `INCLUDE_LINEAR_LAYERS_SHORTHAND`. */
export const ALL_LINEAR = 'all-linear';

/**
 * `target_modules` when the config leaves it null, by `config.json`'s `model_type`: HF PEFT's
 * `TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING` (peft/utils/constants.py), for the
 * architectures peftkit loads or is likely to.
 */
export const DEFAULT_TARGET_MODULES: Record<string, string[]> = {
  gpt2: ['c_attn', 'mlp.c_proj'],
  llama: ['k_proj', 'v_proj', 'down_proj'],
  mistral: ['k_proj', 'v_proj', 'down_proj'],
  qwen2: ['q_proj', 'v_proj', 'down_proj'],
  gemma: ['q_proj', 'v_proj', 'down_proj'],
  phi: ['q_proj', 'v_proj', 'fc2'],
  bert: ['key', 'value', 'output.dense'],
  roberta: ['key', 'value', 'output.dense'],
  opt: ['q_proj', 'k_proj', 'fc2'],
  gpt_neox: ['query_key_value', 'dense_4h_to_h'],
  falcon: ['query_key_value', 'dense_4h_to_h'],
  bloom: ['query_key_value', 'mlp.dense_4h_to_h'],
  t5: ['k', 'v', 'wo'],
};

/** `feedforward_modules` when the config leaves it null: HF PEFT's `TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING`. */
export const DEFAULT_FEEDFORWARD_MODULES: Record<string, string[]> = {
  gpt2: ['mlp.c_proj'],
  llama: ['down_proj'],
  mistral: ['down_proj'],
  qwen2: ['down_proj'],
  gemma: ['down_proj'],
  phi: ['fc2'],
  bert: ['output.dense'],
  roberta: ['output.dense'],
  opt: ['fc2'],
  gpt_neox: ['dense_4h_to_h'],
  falcon: ['dense_4h_to_h'],
  bloom: ['mlp.dense_4h_to_h'],
  t5: ['wo'],
};

/**
 * The config with the schema's defaults filled in (a fresh object; `config` is not changed).
 * Unknown fields are kept as they are: the schema check reports them.
 */
export function resolveIa3Config(config: Ia3Config = {}): ResolvedIa3Config {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema.properties)) out[k] = structuredClone((p as { default: unknown }).default);
  for (const [k, v] of Object.entries(config ?? {})) if (v !== undefined) out[k] = structuredClone(v);
  return out as ResolvedIa3Config;
}

/** One problem with a config; `pointer` is a JSON pointer relative to the config. */
export interface ConfigIssue {
  pointer: string;
  message: string;
  hint?: string;
}

function regexIssue(pattern: string, pointer: string): ConfigIssue | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (e) {
    return { pointer, message: `${JSON.stringify(pattern)} is not a valid regular expression: ${(e as Error).message}`, hint: 'fix the pattern (JavaScript regular expression syntax, which is Python\'s for the usual cases) or give a list of module names instead' };
  }
}

/**
 * Checks that need more than the schema: regular expressions that must compile, empty target
 * lists, and HF PEFT's rule that `feedforward_modules` is a subset of `target_modules` when both
 * are lists (`IA3Config.__post_init__`). Pointers are relative to the config.
 */
export function validateConfig(config: Ia3Config): ConfigIssue[] {
  const c = config ?? {};
  const issues: ConfigIssue[] = [];
  const push = (i: ConfigIssue | undefined) => i && issues.push(i);
  if (typeof c.target_modules === 'string' && c.target_modules.toLowerCase() !== ALL_LINEAR) push(regexIssue(c.target_modules, '/target_modules'));
  if (typeof c.exclude_modules === 'string') push(regexIssue(c.exclude_modules, '/exclude_modules'));
  if (typeof c.feedforward_modules === 'string') push(regexIssue(c.feedforward_modules, '/feedforward_modules'));
  if (Array.isArray(c.target_modules) && c.target_modules.length === 0) {
    issues.push({ pointer: '/target_modules', message: 'target_modules is an empty list: nothing would be trained', hint: 'name the modules to wrap (e.g. ["k_proj", "v_proj", "down_proj"]), use "all-linear", or leave it out for the architecture\'s default' });
  }
  if (Array.isArray(c.feedforward_modules) && Array.isArray(c.target_modules)) {
    const extra = c.feedforward_modules.filter((f) => !c.target_modules!.includes(f));
    if (extra.length) {
      issues.push({ pointer: '/feedforward_modules', message: `feedforward_modules should be a subset of target_modules (as HF PEFT requires); not in target_modules: ${extra.join(', ')}`, hint: 'add them to target_modules too, or remove them from feedforward_modules' });
    }
  }
  return issues;
}

/**
 * {@link validateConfig}, throwing.
 * @throws UserError listing every issue with its JSON pointer.
 */
export function assertValidConfig(config: Ia3Config, where = 'IA3 config'): void {
  const issues = validateConfig(config);
  if (issues.length) {
    throw new UserError(`${where} is invalid:\n${issues.map((i) => `  ${i.pointer}: ${i.message}${i.hint ? ` (hint: ${i.hint})` : ''}`).join('\n')}`, { pointer: issues[0].pointer, hint: issues[0].hint });
  }
}

/**
 * Whether the wrapped module `key` scales its input (HF PEFT's `_check_target_module_feedforward`):
 * a string is a full-match regular expression; a list matches names that end with an entry, with
 * no dot required (`key.endswith(target_key)` in HF PEFT, so `c_proj` also matches `xc_proj`).
 */
export function isFeedforward(feedforward: string | readonly string[], key: string): boolean {
  if (typeof feedforward === 'string') return fullMatch(feedforward, key);
  return feedforward.some((f) => key.endsWith(f));
}
