import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { UserError, type LocalPath, type SettingsIssue, type StepContext, type StepKind } from '@peftkit/core';
import { createModel, isHubId, loadPretrained, loadTokenizer, manualSeed, setClassifierPadToken, type LoadedModel, type LoadedPretrained, type ModelConfig } from '@peftkit/models';
import schema from './load.schema.json' with { type: 'json' };
import type { LoadSettings } from './load.generated.js';

/**
 * Where `model` points: a folder relative to the pipeline file (or absolute) when it exists or
 * does not look like a hub id; otherwise the hub id itself.
 */
export function resolveModelSetting(model: string, pipelineDir: string): string {
  const local = isAbsolute(model) ? model : resolve(pipelineDir, model);
  return existsSync(local) || !isHubId(model) ? local : model;
}

/** `1234567` → `1,234,567`. */
const n = (x: number) => x.toLocaleString('en-US');

/**
 * The `load` step: loads a pretrained Hugging Face model (config.json + safetensors weights) and
 * its tokenizer, from a local folder or the Hub, as transformers' `from_pretrained`; outputs it on
 * the `model` port (`base-model`, a {@link LoadedPretrained}). Logs what was loaded, the parameter
 * count, and any head that was newly initialized or checkpoint tensor that was left unused.
 */
export const loadStep: StepKind<LoadSettings> = {
  name: 'load',
  description: 'Loads a pretrained Hugging Face model (config.json + model.safetensors) and its tokenizer from a local folder or the Hub.',
  inputs: {},
  outputs: { model: { type: 'base-model', description: 'The loaded model with its tokenizer (a LoadedModel).' } },
  settingsSchema: schema,
  localPaths(settings): LocalPath[] {
    const out: LocalPath[] = [];
    if (settings.model) out.push({ pointer: '/model', path: settings.model, expect: 'folder', hubId: isHubId(settings.model) });
    if (typeof settings.from_config === 'string') out.push({ pointer: '/from_config', path: settings.from_config, expect: 'file' });
    if (settings.tokenizer) out.push({ pointer: '/tokenizer', path: settings.tokenizer, expect: 'folder' });
    return out;
  },
  validate(settings): SettingsIssue[] {
    if ((settings.model == null) === (settings.from_config == null)) {
      return [{ pointer: settings.model == null ? '/model' : '/from_config', message: 'give exactly one of "model" (a checkpoint to load) and "from_config" (a config to initialise randomly)', hint: 'set "model" to a folder or hub id, or "from_config" to a config.json' }];
    }
    if (settings.num_labels != null && settings.task !== 'sequence-classification') {
      return [{ pointer: '/num_labels', message: `num_labels applies to the sequence-classification head, but task is "${settings.task ?? 'causal-lm'}"`, hint: 'set "task": "sequence-classification" or remove num_labels' }];
    }
    return [];
  },
  async run(ctx: StepContext, _inputs, settings) {
    if (settings.from_config) return { model: fromConfig(ctx, settings) };
    const source = resolveModelSetting(settings.model!, ctx.pipelineDir);
    const fromHub = !existsSync(source) && isHubId(source);
    ctx.logger.info(`loading ${source}${fromHub ? ` (Hugging Face Hub, revision ${settings.revision ?? 'main'})` : ''}`);
    const loaded = await loadPretrained(source, {
      revision: settings.revision,
      dtype: settings.dtype,
      task: settings.task ?? 'causal-lm',
      numLabels: settings.num_labels ?? undefined,
      strict: settings.strict ?? true,
      log: (m) => ctx.logger.info(m),
    }).catch((e) => {
      // Whatever is wrong inside the checkpoint (its message names the file), "model" chose it.
      if (e instanceof UserError) throw new UserError(e.message, { pointer: '/model', hint: e.details.hint });
      throw e;
    });
    const { model, tokenizer, report } = loaded;
    const dims = model.dims();
    const dtypes = Object.entries(report.dtypes).map(([d, c]) => `${c} ${d}`).join(', ');
    ctx.logger.info(
      `loaded ${model.config.model_type} (${model.task}, ${dims.numLayers} layers, hidden ${dims.hiddenSize}, vocab ${dims.vocabSize}): ` +
        `${report.loaded} tensors (${dtypes}) from ${report.files.length} file(s), ${n(report.numParameters)} parameters`,
      { source: loaded.source, files: report.files, numParameters: report.numParameters },
    );
    if (tokenizer) ctx.logger.info(`tokenizer: ${n(tokenizer.vocabSize)} tokens${tokenizer.chatTemplate ? ', with a chat template' : ''}`);
    else ctx.logger.warn(`no tokenizer in ${report.folder} (expected tokenizer.json, vocab.json + merges.txt or vocab.txt)`);
    for (const w of report.warnings) ctx.logger.warn(w);
    if (report.newlyInitialized.length) ctx.logger.warn(`newly initialized (not in the checkpoint): ${report.newlyInitialized.join(', ')}`);
    const otherMissing = report.missing.filter((k) => !report.newlyInitialized.includes(k));
    if (otherMissing.length) ctx.logger.warn(`missing from the checkpoint, left at their initial values: ${otherMissing.join(', ')}`);
    if (report.unexpected.length) ctx.logger.info(`checkpoint tensors not used: ${report.unexpected.join(', ')}`);
    setPad(ctx, loaded, settings);
    ctx.recordMetrics({ num_parameters: report.numParameters, tensors_loaded: report.loaded });
    return { model: loaded };
  },
};

/**
 * `from_config`: a model of the given configuration with fresh random weights (seeded by the
 * pipeline seed), as transformers' `AutoModel.from_config`, plus the tokenizer from `tokenizer`.
 * @throws UserError when the config file cannot be read or its vocab_size disagrees with the tokenizer.
 */
function fromConfig(ctx: StepContext, settings: LoadSettings): LoadedModel {
  const at = (p: string) => resolve(ctx.pipelineDir, p);
  let config: ModelConfig;
  let source = 'from_config';
  if (typeof settings.from_config === 'string') {
    source = at(settings.from_config);
    try {
      config = JSON.parse(readFileSync(source, 'utf8'));
    } catch (e) {
      throw new UserError(`load: cannot read the config ${source}: ${(e as Error).message}`, { pointer: `/steps/${ctx.step}/settings/from_config`, hint: 'point from_config at a config.json, or give the config object inline' });
    }
  } else config = structuredClone(settings.from_config) as ModelConfig;
  const tokenizer = settings.tokenizer ? loadTokenizer(at(settings.tokenizer)) : undefined;
  if (tokenizer) {
    if (config.vocab_size == null) config.vocab_size = tokenizer.vocabSize;
    else if (config.vocab_size !== tokenizer.vocabSize) {
      throw new UserError(`load: from_config has vocab_size ${config.vocab_size} but the tokenizer in ${settings.tokenizer} has ${tokenizer.vocabSize} tokens`, { pointer: `/steps/${ctx.step}/settings/from_config/vocab_size`, hint: 'remove vocab_size to take the tokenizer\'s, or use the matching tokenizer' });
    }
    for (const [key, id] of [['bos_token_id', tokenizer.bosTokenId], ['eos_token_id', tokenizer.eosTokenId], ['pad_token_id', tokenizer.padTokenId]] as const) {
      if (config[key] == null && id != null) config[key] = id;
    }
  }
  manualSeed(ctx.seed);
  const model = createModel(config, settings.task ?? 'causal-lm');
  const dims = model.dims();
  ctx.logger.info(`initialised ${config.model_type} from its config with random weights (seed ${ctx.seed}): ${dims.numLayers} layers, hidden ${dims.hiddenSize}, vocab ${dims.vocabSize}, ${n(model.numParameters())} parameters`);
  ctx.recordMetrics({ num_parameters: model.numParameters(), from_config: true });
  const loaded = { model, tokenizer, source };
  setPad(ctx, loaded, settings);
  return loaded;
}

/** `pad_token_id` of the settings, or the one a classifier without any needs (see `setClassifierPadToken`), logged. */
function setPad(ctx: StepContext, loaded: LoadedModel, settings: LoadSettings): void {
  try {
    const said = setClassifierPadToken(loaded, settings.pad_token_id);
    if (said) ctx.logger.info(said);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`load: ${e.message}`, { ...e.details, pointer: `/steps/${ctx.step}/settings/pad_token_id` });
    throw e;
  }
}
