import { join } from 'node:path';
import { UserError, pointer, writeJsonAtomic, type LocalPath, type SettingsIssue, type StepKind } from '@peftkit/core';
import { PeftModel, type LoadedModel, type Tokenizer } from '@peftkit/models';
import { buildDataset, formatSummary, splitTextTemplate, SPLIT_NAMES } from '@peftkit/data';
import schema from './dataset.schema.json' with { type: 'json' };
import type { DatasetSettings } from './dataset.generated.js';

/** The model's `pad_token_id` (set by the load step for classifiers), which batches must be padded with; undefined when unset. */
function padIdOfModel(value: unknown): number | undefined {
  const loaded = value instanceof PeftModel ? value.base : (value as LoadedModel | undefined);
  const id = loaded?.model?.config?.pad_token_id;
  return typeof id === 'number' ? id : undefined;
}

/** The tokenizer of whatever flows into the `tokenizer` port: a loaded (or quantized) model, or a PEFT model's base. */
function tokenizerOf(value: unknown): Tokenizer | undefined {
  if (value instanceof PeftModel) return value.base.tokenizer;
  return (value as LoadedModel | undefined)?.tokenizer;
}

/**
 * The `dataset` step: reads a fine-tuning dataset (JSONL, JSON, CSV, Arrow), splits it, tokenizes it
 * with the tokenizer of the model on its `tokenizer` input and outputs a {@link Dataset} of
 * @peftkit/data (tokenized splits, label names and resumable batches).
 *
 * The tokenizer comes from a model (`load`, `quantize` or `inject` output) rather than from a path
 * setting, so that a dataset can never be tokenized with another vocabulary than the model it
 * trains. Writes `dataset-summary.json` (rows, tokens, truncated rows, label counts per split)
 * into the step folder and logs the same.
 */
export const datasetStep: StepKind<DatasetSettings> = {
  name: 'dataset',
  description: 'Reads, splits and tokenizes a fine-tuning dataset (text, instruction, chat or classification rows).',
  inputs: {
    tokenizer: {
      accepts: ['base-model', 'quantized-model', 'peft-model'],
      description: 'A model whose tokenizer (from its folder) tokenizes the data; the model itself is not used.',
    },
  },
  outputs: { dataset: { type: 'dataset', description: 'Tokenized train / validation / test splits with label masks and a batching API.' } },
  settingsSchema: schema as StepKind['settingsSchema'],
  localPaths(s): LocalPath[] {
    const files = Object.entries(s.files ?? {}).filter((e): e is [string, string] => typeof e[1] === 'string');
    return [...files.map(([split, path]) => ({ pointer: `/files/${split}`, path, expect: 'file' as const })), ...(s.path ? [{ pointer: '/path', path: s.path, expect: 'file' as const }] : [])];
  },
  validate(s): SettingsIssue[] {
    const issues: SettingsIssue[] = [];
    if (!s.files && !s.path) issues.push({ pointer: '/files', message: 'no data: give "files" or "path"', hint: 'e.g. "files": {"train": "data/train.jsonl", "validation": "data/validation.jsonl"}' });
    if (s.files && s.path) issues.push({ pointer: '/path', message: 'give either "files" or "path", not both', hint: 'remove one of them' });
    if (s.path && s.split) {
      const sum = SPLIT_NAMES.reduce((a, k) => a + (s.split?.[k] ?? 0), 0);
      if (Math.abs(sum - 1) > 1e-6) issues.push({ pointer: '/split', message: `the split fractions sum to ${+sum.toFixed(6)}, not 1`, hint: 'e.g. {"train": 0.8, "validation": 0.1, "test": 0.1}' });
      if (!(s.split.train! > 0)) issues.push({ pointer: '/split/train', message: 'the train fraction must be above 0' });
    }
    const shape = s.shape ?? 'text';
    if (s.packing && shape !== 'text') issues.push({ pointer: '/packing', message: `packing applies to the "text" shape only, not "${shape}"`, hint: 'set "packing": false' });
    if (shape === 'classification') {
      try {
        splitTextTemplate(s.text_template ?? '{text}');
      } catch (e) {
        issues.push({ pointer: '/text_template', message: (e as Error).message });
      }
      if (Array.isArray(s.label_words) && s.labels?.length && s.label_words.length !== s.labels.length) {
        issues.push({ pointer: '/label_words', message: `${s.label_words.length} label words for ${s.labels.length} labels`, hint: 'give one word per label, in the order of "labels"' });
      }
    }
    return issues;
  },
  async run(ctx, inputs, s) {
    const at = pointer('steps', ctx.step, 'settings');
    const tokenizer = tokenizerOf(inputs.tokenizer);
    if (!tokenizer) {
      throw new UserError(`${pointer('steps', ctx.step, 'inputs', 'tokenizer')}: the model on the "tokenizer" input has no tokenizer`, {
        pointer: pointer('steps', ctx.step, 'inputs', 'tokenizer'), hint: 'load a model folder that holds tokenizer.json (or vocab.json + merges.txt) and tokenizer_config.json',
      });
    }
    let dataset;
    try {
      dataset = buildDataset({
        tokenizer, seed: ctx.seed, baseDir: ctx.pipelineDir,
        format: s.format, files: s.files, path: s.path, split: s.split,
        shape: s.shape ?? 'text', columns: s.columns, labels: s.labels, labelWords: s.label_words,
        maxLength: s.max_length ?? 512, packing: s.packing, limit: s.limit, template: s.template,
        textTemplate: s.text_template, stratify: s.stratify, padTokenId: padIdOfModel(inputs.tokenizer),
      });
    } catch (e) {
      // Data errors carry a pointer relative to the settings: make it the pipeline's.
      if (e instanceof UserError) {
        const p = at + (e.details.pointer ?? '');
        throw new UserError(`${p}: ${e.message}`, { pointer: p, hint: e.details.hint });
      }
      throw e;
    }
    for (const line of formatSummary(dataset.summary)) ctx.logger.info(line);
    writeJsonAtomic(join(ctx.stepDir, 'dataset-summary.json'), dataset.summary);
    return { dataset };
  },
};
