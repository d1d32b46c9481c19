import type { Dataset, SplitName } from '@peftkit/data';
import type { PeftModel } from '@peftkit/models';
import { batchNllSum, targetCount } from './batches.js';
import type { TrainingTask } from './losses.js';

/** Summed loss over a split and the number of terms it sums. */
export interface LossTotals {
  /** Σ NLL in nats. */
  nllSum: number;
  /** Targets (tokens for causal LM, examples for classification). */
  count: number;
  /** nllSum / count. */
  loss: number;
}

/**
 * The mean loss over a whole split, in evaluation mode (dropout off) and without gradients, in
 * batches of `batchSize`, in the split's order. Restores the model's training mode afterwards.
 */
export async function splitLoss(model: PeftModel, data: Dataset, split: SplitName, batchSize: number, task: TrainingTask): Promise<LossTotals> {
  const base = model.base.model;
  const wasTraining = base.training;
  base.eval();
  let nllSum = 0;
  let count = 0;
  try {
    for (const batch of data.batches(split, { batchSize, shuffle: false, dropLast: false, epochs: 1 })) {
      const n = targetCount(batch, task, model);
      if (!n) continue;
      const s = batchNllSum(model, batch, task);
      nllSum += (await s.data())[0];
      s.dispose();
      count += n;
    }
  } finally {
    base.train(wasTraining);
  }
  return { nllSum, count, loss: count ? nllSum / count : NaN };
}

