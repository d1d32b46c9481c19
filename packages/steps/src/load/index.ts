import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { SettingsIssue, StepContext, StepKind } from '@peftkit/core';
import { isHubId, loadPretrained, type LoadedPretrained } from '@peftkit/models';
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
  validate(settings): SettingsIssue[] {
    if (settings.num_labels != null && settings.task !== 'sequence-classification') {
      return [{ pointer: '/num_labels', message: `num_labels applies to the sequence-classification head, but task is "${settings.task ?? 'causal-lm'}"`, hint: 'set "task": "sequence-classification" or remove num_labels' }];
    }
    return [];
  },
  async run(ctx: StepContext, _inputs, settings) {
    const source = resolveModelSetting(settings.model, ctx.pipelineDir);
    const fromHub = !existsSync(source) && isHubId(source);
    ctx.logger.info(`loading ${source}${fromHub ? ` (Hugging Face Hub, revision ${settings.revision ?? 'main'})` : ''}`);
    const loaded = await loadPretrained(source, {
      revision: settings.revision,
      dtype: settings.dtype,
      task: settings.task ?? 'causal-lm',
      numLabels: settings.num_labels ?? undefined,
      strict: settings.strict ?? true,
      log: (m) => ctx.logger.info(m),
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
    if (report.newlyInitialized.length) ctx.logger.warn(`newly initialized (not in the checkpoint): ${report.newlyInitialized.join(', ')}`);
    const otherMissing = report.missing.filter((k) => !report.newlyInitialized.includes(k));
    if (otherMissing.length) ctx.logger.warn(`missing from the checkpoint, left at their initial values: ${otherMissing.join(', ')}`);
    if (report.unexpected.length) ctx.logger.info(`checkpoint tensors not used: ${report.unexpected.join(', ')}`);
    ctx.recordMetrics({ num_parameters: report.numParameters, tensors_loaded: report.loaded });
    return { model: loaded };
  },
};
