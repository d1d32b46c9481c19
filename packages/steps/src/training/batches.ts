import * as tf from '@tensorflow/tfjs';
import type { Batch } from '@peftkit/data';
import type { ModelOutput, PeftModel } from '@peftkit/models';
import { IGNORE_INDEX, causalLmModelNllSum, classificationNllSum, countCausalTargets, type TrainingTask } from './losses.js';

/**
 * Number of loss terms a batch contributes: shifted causal-LM targets (with the first token when
 * `model` predicts it from virtual tokens, see `PeftModel.predictsFirstToken`), or examples with a
 * class label. The denominator of the mean loss.
 */
export function targetCount(batch: Batch, task: TrainingTask, model?: PeftModel): number {
  if (task === 'causal-lm') return countCausalTargets(batch.labels, batch.shape[0], batch.shape[1], model?.predictsFirstToken() ?? false);
  if (!batch.classLabels) throw new Error('the batch has no class labels: the dataset is not a classification dataset (set "task": "causal-lm")');
  return batch.classLabels.reduce((n, y) => n + (y >= 0 ? 1 : 0), 0);
}

/** Real (non-padding) tokens in a batch. */
export function tokenCount(batch: Batch): number {
  return batch.attentionMask.reduce((n, m) => n + m, 0);
}

/** Runs the model on a batch. `inputIds` and `attentionMask` are [B, T] int32. The caller disposes the output. */
export function forwardBatch(model: PeftModel, batch: Batch): ModelOutput {
  const inputIds = tf.tensor2d(batch.inputIds, batch.shape, 'int32');
  const attentionMask = tf.tensor2d(batch.attentionMask, batch.shape, 'int32');
  try {
    return model.forward({ inputIds, attentionMask });
  } finally {
    inputIds.dispose();
    attentionMask.dispose();
  }
}

/**
 * The summed loss of a batch (nats): causal-LM NLL of the shifted labels (through the fused
 * chunked LM head + loss when the model's head allows it, {@link causalLmModelNllSum}), or the
 * cross-entropy of the class labels (label -1: ignored). Divide by {@link targetCount} for the mean.
 */
export function batchNllSum(model: PeftModel, batch: Batch, task: TrainingTask): tf.Scalar {
  return tf.tidy(() => {
    if (task === 'causal-lm') {
      const inputIds = tf.tensor2d(batch.inputIds, batch.shape, 'int32');
      const attentionMask = tf.tensor2d(batch.attentionMask, batch.shape, 'int32');
      return causalLmModelNllSum(model, { inputIds, attentionMask }, tf.tensor2d(batch.labels, batch.shape, 'int32'), { hostLabels: batch.labels });
    }
    const { logits } = forwardBatch(model, batch);
    if (logits.rank !== 2) throw new Error(`task "sequence-classification" needs logits [batch, num_labels], but the model returns [${logits.shape}] (load the model with a classification head, or set "task": "causal-lm")`);
    const y = Int32Array.from(batch.classLabels!, (c) => (c >= 0 ? c : IGNORE_INDEX));
    return classificationNllSum(logits, tf.tensor1d(y, 'int32'));
  });
}
