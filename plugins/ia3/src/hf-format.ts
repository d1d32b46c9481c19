/**
 * IA3's side of HF PEFT's adapter folder (`adapter_config.json` + `adapter_model.safetensors`):
 * the IA3 rules for reading `adapter_config.json` ({@link ia3ConfigFromHf}) and
 * `PeftModel.from_pretrained` for IA3 ({@link loadHfIa3Adapter}). Writing needs nothing of its
 * own: the export step writes any handle with a `peftType` through `writeHfAdapterFiles` of
 * `@peftkit/models` (`stateDict()` and `adapterConfig()`).
 */
import { join } from 'node:path';
import { UserError, schemaIssues, type StepLogger } from '@peftkit/core';
import { HF_ADAPTER_CONFIG, readHfAdapterFolder } from '@peftkit/models';
import { ia3ConfigSchema, validateConfig, type Ia3Config } from './config.js';
import { injectIa3, type Ia3AdapterHandle, type Ia3TargetModel } from './model.js';

/** Fields of HF PEFT's adapter_config.json that carry no setting (where the adapter came from). */
const META_FIELDS = new Set(['peft_type', 'base_model_name_or_path', 'revision', 'inference_mode', 'peft_version', 'auto_mapping']);
const SETTINGS = new Set(Object.keys(ia3ConfigSchema.properties));
const isEmpty = (v: unknown) => v == null || v === false || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);

/**
 * Turns an HF PEFT IA3 `adapter_config.json` into an {@link Ia3Config}: keeps the settings,
 * ignores where-it-came-from fields, refuses `modules_to_save` when set (not implemented here),
 * ignores with one warning unknown keys whose value is null, false or empty (newer PEFT versions
 * add such keys), refuses unknown keys with other values.
 * @param file - the config's path, for messages.
 * @returns the config and the warnings.
 * @throws UserError naming the file and field (JSON pointer).
 */
export function ia3ConfigFromHf(raw: Record<string, unknown>, file = HF_ADAPTER_CONFIG): { config: Ia3Config; warnings: string[] } {
  if (raw.peft_type !== 'IA3') {
    throw new UserError(`${file}: peft_type is ${JSON.stringify(raw.peft_type)}, not "IA3"`, { file, pointer: '/peft_type', hint: 'load it with the method it was made with' });
  }
  const config: Record<string, unknown> = {};
  const ignored: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (SETTINGS.has(k)) config[k] = v;
    else if (META_FIELDS.has(k)) continue;
    else if (k === 'modules_to_save') {
      if (isEmpty(v)) continue;
      throw new UserError(`${file}: /modules_to_save is ${JSON.stringify(v)}: @peftkit/ia3 does not train or load whole modules beside the IA3 vectors yet`, { file, pointer: '/modules_to_save', hint: 'use an IA3 adapter without modules_to_save' });
    } else if (isEmpty(v)) ignored.push(k);
    else {
      throw new UserError(`${file}: /${k} = ${JSON.stringify(v)} is a field peftkit does not know; the adapter may rely on a PEFT feature peftkit lacks`, { file, pointer: `/${k}`, hint: 'if the field is harmless for this adapter, remove it from adapter_config.json' });
    }
  }
  const warnings = ignored.length ? [`${file}: ignoring fields peftkit does not know (their values are null, false or empty): ${ignored.join(', ')}`] : [];
  const issues = [...schemaIssues(file, '', ia3ConfigSchema, config), ...validateConfig(config as Ia3Config)];
  if (issues.length) throw new UserError(`${file}: ${issues.map((i) => `${i.pointer}: ${i.message}`).join('; ')}`, { file, pointer: issues[0].pointer, hint: issues[0].hint });
  return { config: config as Ia3Config, warnings };
}

/**
 * Injects the IA3 adapter saved in `folder` into `model` (with the adapter's own config) and
 * loads its tensors: HF PEFT's `PeftModel.from_pretrained(model, folder)`. On failure the model
 * is left without it.
 * @throws UserError for a missing or pickle-only folder, a config peftkit cannot honour (naming
 *   the file and field), or tensors that do not fit (naming them, expected and got shapes).
 */
export function loadHfIa3Adapter(model: Ia3TargetModel, folder: string, opts: { adapterName?: string; logger?: StepLogger } = {}): Ia3AdapterHandle {
  const files = readHfAdapterFolder(folder);
  try {
    const { config, warnings } = ia3ConfigFromHf(files.config, join(folder, HF_ADAPTER_CONFIG));
    for (const w of warnings) opts.logger?.warn(w);
    const handle = injectIa3(model, config, { adapterName: opts.adapterName, logger: opts.logger });
    try {
      handle.loadStateDict(files.tensors);
    } catch (e) {
      handle.dispose();
      throw e;
    }
    handle.warnings.push(...warnings);
    return handle;
  } finally {
    for (const t of files.tensors.values()) t.dispose();
  }
}
