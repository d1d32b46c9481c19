import { join } from 'node:path';
import * as aq from 'arquero';
import { writeFileAtomic, type StepKind } from '@peftkit/core';
import type { Dataset } from '@peftkit/data';
import type { PeftModel } from '@peftkit/models';
import { lossCurveSvg } from '../training/plots.js';
import { runTraining } from '../training/trainer.js';
import schema from './train.schema.json' with { type: 'json' };
import type { TrainSettings } from './train.generated.js';

/**
 * The `train` step: trains the peft-model's active adapter on the dataset's `train` split (see
 * {@link runTraining}), checkpointing into `<step folder>/checkpoints/` and resuming from there with
 * `--resume`. Writes the loss curve to `<step folder>/loss.svg`. Outputs the same model object,
 * trained in place, and the logged rows as an arquero table
 * (`global_step, loss, lr, grad_norm, tokens_per_s, epoch, eval_loss`).
 */
export const trainStep: StepKind<TrainSettings> = {
  name: 'train',
  description: 'Trains the injected adapter (AdamW, LR schedule with warmup, clipping, gradient accumulation, checkpoints, resume).',
  inputs: {
    model: { accepts: ['peft-model'], description: 'The model with an adapter injected (trained in place).' },
    dataset: { accepts: ['dataset'], description: 'Tokenized splits; trains on `train`, evaluates on `validation` when present.' },
  },
  outputs: {
    model: { type: 'peft-model', description: 'The trained model.' },
    metrics: { type: 'metrics', description: 'Logged training rows (loss, lr, grad_norm, tokens/s, eval_loss) as an arquero table.' },
  },
  settingsSchema: schema,
  validate(settings) {
    if (settings.early_stopping_patience && !settings.eval_steps) {
      return [{ pointer: '/early_stopping_patience', message: 'early stopping needs a validation loss during training, but eval_steps is not set', hint: 'set "eval_steps" (e.g. the same as logging_steps) or remove early_stopping_patience' }];
    }
    return [];
  },
  async run(ctx, inputs, settings) {
    const model = inputs.model as PeftModel;
    const data = inputs.dataset as Dataset;
    // What export stores beside the adapter, so that generate and classify prompt it as training did.
    for (const name of model.active) model.adapters.get(name)!.promptFormat = data.promptFormat;
    const result = await runTraining(model, data, settings, {
      checkpointDir: join(ctx.stepDir, 'checkpoints'), resume: ctx.resume, signal: ctx.signal, logger: ctx.logger,
      recordMetrics: (row) => ctx.recordMetrics(row), seed: ctx.seed, backend: ctx.backend,
    });
    const points = result.logHistory.map((r) => ({ step: r.global_step, loss: r.loss, eval_loss: r.eval_loss }));
    if (points.length) {
      const svg = await lossCurveSvg(points, `${ctx.pipeline} / ${ctx.step}: loss`);
      writeFileAtomic(join(ctx.stepDir, 'loss.svg'), svg);
    }
    // The same figure as the last logged line and metrics.jsonl: the loss averaged since the log before.
    const last = result.logHistory.filter((r) => r.loss !== undefined).at(-1);
    ctx.logger.info(`trained ${result.globalStep}/${result.totalSteps} steps${last ? `, loss ${last.loss!.toFixed(4)} (logged at step ${last.global_step})` : ''}${result.earlyStopped ? ' (early stopping)' : ''}${result.interrupted ? ' (interrupted)' : ''}`);
    // Loss rows and eval rows have different columns: name them all (arquero takes the first row's keys otherwise).
    const columns = [...new Set(result.logHistory.flatMap((r) => Object.keys(r)))];
    return { model, metrics: columns.length ? aq.from(result.logHistory, columns) : aq.table({}) };
  },
};
