/**
 * LoRA settings: defaults, the checks the JSON Schema cannot make, and the name matching rules of
 * HF PEFT (`peft/tuners/tuners_utils.py` `check_target_module_exists`, `peft/utils/other.py`
 * `get_pattern_key`).
 */
import { UserError } from '@peftkit/core';
import { fullMatch, matchesNameList } from '@peftkit/models';
import schema from './config.schema.json' with { type: 'json' };
import type { LoraConfig } from './config.generated.js';

export type { LoraConfig };

/** A {@link LoraConfig} with every default filled in. */
export type ResolvedLoraConfig = Required<LoraConfig>;

/** The JSON Schema of {@link LoraConfig} (draft-07). */
export const loraConfigSchema = schema;

/** HF PEFT's `INCLUDE_LINEAR_LAYERS_SHORTHAND`. */
export const ALL_LINEAR = 'all-linear';

/**
 * Target modules used when `target_modules` is null, by `config.json`'s `model_type`: HF PEFT's
 * `TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING` (peft/utils/constants.py), for the
 * architectures peftkit can load or is likely to.
 */
export const DEFAULT_TARGET_MODULES: Record<string, string[]> = {
  gpt2: ['c_attn'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
  gemma: ['q_proj', 'v_proj'],
  phi: ['q_proj', 'v_proj'],
  bert: ['query', 'value'],
  roberta: ['query', 'value'],
  distilbert: ['q_lin', 'v_lin'],
  bloom: ['query_key_value'],
  gpt_neox: ['query_key_value'],
  falcon: ['query_key_value'],
  opt: ['q_proj', 'v_proj'],
  gptj: ['q_proj', 'v_proj'],
  gpt_neo: ['q_proj', 'v_proj'],
  t5: ['q', 'v'],
};

/**
 * The config with the schema's defaults filled in (a fresh object; `config` is not changed).
 * Unknown fields are kept as they are: {@link validateConfig} reports them.
 */
export function resolveLoraConfig(config: LoraConfig = {}): ResolvedLoraConfig {
  const out: Record<string, unknown> = {};
  for (const [k, p] of Object.entries(schema.properties)) out[k] = structuredClone((p as { default: unknown }).default);
  for (const [k, v] of Object.entries(config)) if (v !== undefined) out[k] = structuredClone(v);
  return out as ResolvedLoraConfig;
}

/** One problem with a config; `pointer` is a JSON pointer relative to the config. */
export interface ConfigIssue {
  pointer: string;
  message: string;
  hint?: string;
}

function regexIssue(pattern: string, pointer: string, what: string): ConfigIssue | undefined {
  try {
    new RegExp(pattern);
    return undefined;
  } catch (e) {
    return { pointer, message: `${what} ${JSON.stringify(pattern)} is not a valid regular expression: ${(e as Error).message}`, hint: 'fix the pattern (JavaScript regular expression syntax, which is Python\'s for the usual cases) or give a list of module names instead' };
  }
}

const escapePointer = (s: string) => s.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * Checks that need more than the schema: regular expressions that must compile (`target_modules`
 * and `exclude_modules` given as a string, the keys of `rank_pattern` and `alpha_pattern`), and
 * values HF PEFT would refuse. Pointers are relative to the config (`/rank_pattern/q_proj(`).
 */
export function validateConfig(config: LoraConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const push = (i: ConfigIssue | undefined) => i && issues.push(i);
  const c = config ?? {};
  if (typeof c.target_modules === 'string' && c.target_modules.toLowerCase() !== ALL_LINEAR) {
    push(regexIssue(c.target_modules, '/target_modules', 'target_modules'));
  }
  if (Array.isArray(c.target_modules) && c.target_modules.length === 0) {
    issues.push({ pointer: '/target_modules', message: 'target_modules is an empty list: nothing would be trained', hint: 'name the modules to wrap (e.g. ["q_proj", "v_proj"]), use "all-linear", or leave it out for the architecture\'s default' });
  }
  if (typeof c.exclude_modules === 'string') push(regexIssue(c.exclude_modules, '/exclude_modules', 'exclude_modules'));
  for (const field of ['rank_pattern', 'alpha_pattern'] as const) {
    for (const key of Object.keys(c[field] ?? {})) push(regexIssue(key, `/${field}/${escapePointer(key)}`, `${field} key`));
  }
  if (c.layers_pattern != null && (c.layers_to_transform == null || (Array.isArray(c.layers_to_transform) && c.layers_to_transform.length === 0))) {
    issues.push({ pointer: '/layers_pattern', message: 'layers_pattern is set but layers_to_transform is not', hint: 'set layers_to_transform to the layer indices to wrap, or remove layers_pattern' });
  }
  if (c.layers_to_transform != null && typeof c.target_modules === 'string' && c.target_modules.toLowerCase() !== ALL_LINEAR) {
    issues.push({ pointer: '/layers_to_transform', message: 'layers_to_transform only applies when target_modules is a list (as in HF PEFT); with a regular expression, put the layer indices in the expression', hint: 'give target_modules as a list of names, or drop layers_to_transform' });
  }
  return issues;
}

/**
 * {@link validateConfig}, throwing.
 * @throws UserError listing every issue with its JSON pointer.
 */
export function assertValidConfig(config: LoraConfig, where = 'LoRA config'): void {
  const issues = validateConfig(config);
  if (issues.length) {
    throw new UserError(`${where} is invalid:\n${issues.map((i) => `  ${i.pointer}: ${i.message}${i.hint ? ` (hint: ${i.hint})` : ''}`).join('\n')}`, { pointer: issues[0].pointer, hint: issues[0].hint });
  }
}

/** `matchesNameList` and `fullMatch` of @peftkit/models: HF PEFT's name matching, shared by every method. */
export { fullMatch, matchesNameList };

/**
 * The layer index of a module name, as HF PEFT finds it: the number after the last `<name>.` in a
 * dotted path (`transformer.h.3.attn.c_attn` → 3), or after one of `layersPattern`.
 */
export function layerIndexOf(key: string, layersPattern: string | string[] | null): number | undefined {
  const patterns = layersPattern == null || layersPattern.length === 0 ? null : Array.isArray(layersPattern) ? layersPattern : [layersPattern];
  const res = patterns ? patterns.map((p) => new RegExp(`^(?:.*\\.)?${p}\\.(\\d+)\\.`)) : [/^(?:.*\.)?[^.]*\.(\d+)\./];
  for (const re of res) {
    const m = re.exec(key);
    if (m) return Number(m[1]);
  }
  return undefined;
}

/**
 * The first key of a `rank_pattern` / `alpha_pattern` object that matches the end of `key`
 * (HF's `re.match(rf"(.*\.)?({pattern})$", key)`), in insertion order.
 */
export function patternKeyFor(patterns: Record<string, unknown>, key: string): string | undefined {
  return Object.keys(patterns).find((p) => new RegExp(`^(?:.*\\.)?(?:${p})$`).test(key));
}
