import { join } from 'node:path';
import { UserError, writeFileAtomic, writeJsonAtomic, type StepContext, type StepKind } from '@peftkit/core';
import type { Dataset, SplitName } from '@peftkit/data';
import { generateAsync, type PeftModel } from '@peftkit/models';
import { labelWordLossAndPredictions, predictWithHead, predictWithLabelWords, type Predictions } from '../training/classify.js';
import { splitLoss } from '../training/evaluation.js';
import { classificationMetrics, majorityBaseline, perplexity } from '../training/metrics.js';
import { resolveTask } from '../training/trainer.js';
import schema from './evaluate.schema.json' with { type: 'json' };
import type { EvaluateSettings } from './evaluate.generated.js';
import { headline, reportMarkdown, reportRows, reportTable, type Sample } from './report.js';

/**
 * Runs `fn` with exactly `names` active, restoring the active set afterwards (async-safe, unlike
 * PeftModel.withAdaptersDisabled, whose callback is synchronous).
 */
async function withActive<T>(model: PeftModel, names: string[], fn: () => Promise<T>): Promise<T> {
  const saved = model.active;
  model.setActive(names);
  try {
    return await fn();
  } finally {
    model.setActive(saved);
  }
}

/** The class id of `positive_label` (name or id); 1 when null. @throws UserError for an unknown name. */
function positiveClass(setting: string | number | null | undefined, labelNames: string[] | undefined, ctx: StepContext): number {
  if (setting == null) return 1;
  if (typeof setting === 'number') return setting;
  const i = labelNames?.indexOf(setting) ?? -1;
  if (i < 0) throw new UserError(`positive_label "${setting}" is not one of the dataset's labels (${labelNames?.join(', ') ?? 'none'})`, { pointer: `/steps/${ctx.step}/settings/positive_label` });
  return i;
}

function pickSplit(data: Dataset, wanted: SplitName | null | undefined): SplitName {
  if (wanted) return wanted;
  return (['test', 'validation', 'train'] as const).find((s) => data.splits[s])!;
}

/**
 * The `evaluate` step: scores the model on a split with its adapter and, with `baselines`, with
 * adapters disabled, so the report shows what fine-tuning changed:
 * - loss (mean NLL per target, nats) and perplexity `exp(loss)` for causal LMs;
 * - accuracy, precision, recall, F1 (binary: of the positive class; else macro) for classification,
 *   by the classification head or, for a causal LM, by label-word likelihood; the majority-class
 *   baseline (majority of the train split);
 * - perplexity on the `reference` dataset with and without the adapter (forgetting);
 * - a few greedy generations with and without the adapter.
 * Writes report.json and report.md (Markdown table) into the step folder; outputs the table.
 */
export const evaluateStep: StepKind<EvaluateSettings> = {
  name: 'evaluate',
  description: 'Evaluates the model with and without its adapter: loss, perplexity, classification metrics, baselines, forgetting.',
  inputs: {
    model: { accepts: ['peft-model'], description: 'The model to evaluate.' },
    dataset: { accepts: ['dataset'], description: 'The dataset whose split is scored.' },
    reference: { accepts: ['dataset'], optional: true, description: 'Held-out text of the base model\'s own domain: its perplexity with and without the adapter measures forgetting.' },
  },
  outputs: { metrics: { type: 'metrics', description: 'metric, with_adapter, without_adapter, change (an arquero table).' } },
  settingsSchema: schema,
  async run(ctx, inputs, settings) {
    const model = inputs.model as PeftModel;
    const data = inputs.dataset as Dataset;
    const reference = inputs.reference as Dataset | undefined;
    const split = settings.split ?? 'test';
    if (!data.splits[split]) {
      throw new UserError(`the dataset has no "${split}" split (it has ${Object.keys(data.splits).join(', ')})`, { pointer: `/steps/${ctx.step}/settings/split`, hint: 'pick a split it has, or give the dataset step a test fraction or file' });
    }
    const batchSize = settings.batch_size ?? 8;
    const task = resolveTask(settings.task, model);
    const examples = data.splits[split]!.examples;

    // Classification: by head, or by label words for a causal LM.
    let labelWordIds = data.labelWordIds;
    if (settings.label_words) {
      if (data.labelNames && settings.label_words.length !== data.labelNames.length) {
        throw new UserError(`label_words has ${settings.label_words.length} words but the dataset has ${data.labelNames.length} labels (${data.labelNames.join(', ')})`, { pointer: `/steps/${ctx.step}/settings/label_words` });
      }
      labelWordIds = settings.label_words.map((w) => data.tokenizer.encode(w, { addSpecialTokens: false }));
    }
    const numClasses = data.labelNames?.length ?? labelWordIds?.length ?? 0;
    const classify = data.shape === 'classification' && numClasses >= 2 && (task === 'sequence-classification' || !!labelWordIds);
    if (data.shape === 'classification' && task === 'causal-lm' && !labelWordIds) ctx.logger.warn('classification data scored by a causal LM without label words: only loss and perplexity (set label_words for accuracy)');
    const positive = positiveClass(settings.positive_label, data.labelNames, ctx);
    const refSplit = reference ? pickSplit(reference, settings.reference_split) : undefined;
    if (reference && !reference.splits[refSplit!]) throw new UserError(`the reference dataset has no "${refSplit}" split`, { pointer: `/steps/${ctx.step}/settings/reference_split` });

    const score = async (): Promise<Record<string, number>> => {
      const m: Record<string, number> = {};
      // Label words of one token: the loss and the predictions from one pass over the split, else two.
      const both = classify && task === 'causal-lm' ? await labelWordLossAndPredictions(model, data, split, batchSize, labelWordIds!) : undefined;
      const l = both?.loss ?? (await splitLoss(model, data, split, batchSize, task));
      // No target (classification prompts scored only by label words): no loss to report.
      if (l.count > 0) {
        m.loss = l.loss;
        if (task === 'causal-lm') m.perplexity = perplexity(l.nllSum, l.count);
      }
      if (classify) {
        const p: Predictions = both?.predictions ?? (task === 'sequence-classification' ? await predictWithHead(model, data, split, batchSize) : await predictWithLabelWords(model, examples, labelWordIds!, batchSize, data.padTokenId));
        const c = classificationMetrics(p.predictions, p.labels, numClasses, positive);
        Object.assign(m, { accuracy: c.accuracy, precision: c.precision, recall: c.recall, f1: c.f1 });
      }
      if (reference) {
        const r = await splitLoss(model, reference, refSplit!, batchSize, 'causal-lm');
        m.reference_loss = r.loss;
        m.reference_perplexity = perplexity(r.nllSum, r.count);
      }
      return m;
    };

    const base = model.base.model;
    const wasTraining = base.training;
    base.eval();
    try {
      const withAdapter = await score();
      let without: Record<string, number> | undefined;
      if (settings.baselines !== false && model.active.length) {
        try {
          without = await withActive(model, [], score);
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          ctx.logger.warn(`no comparison with the base model: ${e.message}${e.details.hint ? ` (${e.details.hint})` : ''}`);
        }
      }
      const extra: Record<string, number> = {};
      if (classify && settings.baselines !== false) {
        const trainLabels = (data.splits.train ?? data.splits[split]!).examples.map((e) => e.label ?? -1).filter((y) => y >= 0);
        const gold = examples.map((e) => e.label ?? -1).filter((y) => y >= 0);
        const b = majorityBaseline(trainLabels, gold, numClasses, positive);
        const name = data.labelNames?.[b.majorityClass] ?? String(b.majorityClass);
        extra[`majority_class_accuracy (always "${name}")`] = b.accuracy;
        extra[`majority_class_f1 (always "${name}")`] = b.f1;
      }

      const samples = task === 'causal-lm' && (settings.num_samples ?? 3) > 0 ? await makeSamples(ctx, model, data, split, settings, !!without) : [];
      const rows = reportRows(withAdapter, without, extra);
      const table = reportTable(rows);
      const adapter = model.activeAdapter;
      const title = `${ctx.pipeline} / ${ctx.step}: ${adapter ? `${adapter.method} adapter "${adapter.name}"` : 'model'} on ${split} (${examples.length} examples)`;
      const note = !classify ? undefined : numClasses === 2
        ? `Precision, recall and F1 are for the positive class "${data.labelNames?.[positive] ?? positive}" (binary averaging).`
        : `Precision, recall and F1 are macro-averaged over the ${numClasses} classes${data.labelNames ? ` (${data.labelNames.join(', ')})` : ''}.`;
      const md = reportMarkdown(title, table, samples, note);
      writeJsonAtomic(join(ctx.stepDir, 'report.json'), { title, split, task, examples: examples.length, classification: classify ? { classes: data.labelNames ?? null, positive_class: numClasses === 2 ? positive : null, average: numClasses === 2 ? 'binary' : 'macro' } : null, reference_split: refSplit ?? null, rows, samples });
      writeFileAtomic(join(ctx.stepDir, 'report.md'), md);
      ctx.logger.info(`\n${md}`);
      const flat: Record<string, unknown> = { split };
      for (const r of rows) {
        flat[r.metric] = r.with_adapter;
        if (r.without_adapter !== null) flat[`base_${r.metric}`] = r.without_adapter;
      }
      ctx.recordMetrics(flat);
      ctx.summarize?.(`report: ${join(ctx.stepDir, 'report.md')}`);
      const head = headline(rows);
      if (head) ctx.summarize?.(head);
      return { metrics: table };
    } finally {
      base.train(wasTraining);
    }
  },
};

/**
 * Greedy continuations of the split's first prompts with and without the adapter: the prompt is an
 * example's prompt part, or the first half (at most 32 tokens) of a plain-text example.
 * Generation errors are logged, not thrown: samples are illustrations.
 */
async function makeSamples(ctx: StepContext, model: PeftModel, data: Dataset, split: SplitName, settings: EvaluateSettings, compare: boolean): Promise<Sample[]> {
  const n = settings.num_samples ?? 3;
  const prompts = data.splits[split]!.examples.slice(0, n).map((e) => {
    const len = e.promptLength > 0 && e.promptLength < e.inputIds.length ? e.promptLength : Math.min(32, Math.max(1, Math.floor(e.inputIds.length / 2)));
    return Array.from(e.inputIds.subarray(0, len));
  });
  if (!prompts.length) return [];
  const opts = { maxNewTokens: settings.max_new_tokens ?? 32, eosTokenId: data.tokenizer.eosTokenId ?? null, padTokenId: data.padTokenId };
  try {
    // Asynchronous reads: the WebGPU backend cannot read synchronously in Node.
    const withAdapter = (await generateAsync(model, prompts, opts)).generated;
    const without = compare ? await withActive(model, [], async () => (await generateAsync(model, prompts, opts)).generated) : undefined;
    const text = (ids: number[]) => data.tokenizer.decode(ids, { skipSpecialTokens: true });
    return prompts.map((p, i) => ({ prompt: text(p), with_adapter: text(withAdapter[i]), ...(without ? { without_adapter: text(without[i]) } : {}) }));
  } catch (e) {
    ctx.logger.warn(`no generated samples: ${(e as Error).message}`);
    return [];
  }
}
