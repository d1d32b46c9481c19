import * as tf from '@tensorflow/tfjs';
import type { Dataset, SplitName, TokenizedExample } from '@peftkit/data';
import type { PeftModel } from '@peftkit/models';
import { forwardBatch, targetCount } from './batches.js';
import type { LossTotals } from './evaluation.js';
import { IGNORE_INDEX, causalLmHiddenNllSum, causalLmNllPerSequence } from './losses.js';

/** Predicted and gold class ids of a split's examples, in split order. */
export interface Predictions {
  predictions: Int32Array;
  labels: Int32Array;
}

/** Index of the largest value of each row of a [rows, cols] row-major array; ties: the first. */
function argmaxRows(values: ArrayLike<number>, rows: number, cols: number, sign = 1): Int32Array {
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (sign * values[r * cols + c] > sign * values[r * cols + best]) best = c;
    out[r] = best;
  }
  return out;
}

/**
 * Class predictions of a sequence-classification head: argmax of logits [B, num_labels] over the
 * split, in eval mode. Examples without a class label are skipped.
 */
export async function predictWithHead(model: PeftModel, data: Dataset, split: SplitName, batchSize: number): Promise<Predictions> {
  const preds: number[] = [];
  const gold: number[] = [];
  for (const batch of data.batches(split, { batchSize, shuffle: false, dropLast: false, epochs: 1 })) {
    if (!batch.classLabels) throw new Error(`split "${split}" has no class labels`);
    const { logits } = forwardBatch(model, batch);
    const values = await logits.data();
    const [B, C] = logits.shape as [number, number];
    logits.dispose();
    const p = argmaxRows(values, B, C);
    for (let i = 0; i < B; i++) {
      if (batch.classLabels[i] < 0) continue;
      preds.push(p[i]);
      gold.push(batch.classLabels[i]);
    }
  }
  return { predictions: Int32Array.from(preds), labels: Int32Array.from(gold) };
}

/**
 * Classification with a causal LM by label-word likelihood: for each example, the prompt (its first
 * `promptLength` tokens) is followed by each label's word and scored by the summed log-probability
 * of the word's tokens, `Σ_j log p(w_j | prompt, w_<j)`; the most likely label is the prediction.
 *
 * @param labelWordIds - the token ids of each label's word, index = class id.
 * @param batchSize - examples per forward pass (each makes one row per label).
 * @throws Error when an example has no prompt token (its first word token could not be scored).
 */
export async function predictWithLabelWords(model: PeftModel, examples: readonly TokenizedExample[], labelWordIds: number[][], batchSize: number, padId: number, opts: { singleTokenFastPath?: boolean } = {}): Promise<Predictions> {
  const C = labelWordIds.length;
  const scored = examples.filter((e) => e.label !== undefined && e.label >= 0);
  const preds = new Int32Array(scored.length);
  // With one token per label word, every label is scored by the same next-token distribution after
  // the prompt: one row per example instead of one per label. log-softmax is the same shift for all
  // labels of a row, so comparing the logits picks the same label.
  if ((opts.singleTokenFastPath ?? true) && labelWordIds.every((w) => w.length === 1)) {
    const labelIds = tf.tensor1d(labelWordIds.map((w) => w[0]), 'int32');
    for (let s = 0; s < scored.length; s += batchSize) {
      const chunk = scored.slice(s, s + batchSize);
      const T = Math.max(...chunk.map((e) => e.promptLength));
      const R = chunk.length;
      const ids = new Int32Array(R * T).fill(padId);
      const mask = new Int32Array(R * T);
      const last = new Int32Array(R);
      chunk.forEach((e, i) => {
        if (e.promptLength < 1) throw new Error(`example ${e.row} has no prompt tokens to score label words after`);
        ids.set(e.inputIds.subarray(0, e.promptLength), i * T);
        mask.fill(1, i * T, i * T + e.promptLength);
        last[i] = i * T + e.promptLength - 1;
      });
      const scores = tf.tidy(() => {
        const batch = { shape: [R, T] as [number, number], inputIds: ids, attentionMask: mask, labels: new Int32Array(R * T).fill(IGNORE_INDEX), promptLengths: new Int32Array(R), indices: new Int32Array(R), epoch: 0, batch: 0 };
        const head = model.outputHead();
        if (head) {
          // A plain head: the last prompt position's hidden state times the label words' rows only, not
          // logits over every position and the whole vocabulary (the head was most of a small model's forward pass).
          const hidden = model.forwardHidden({ inputIds: tf.tensor2d(ids, [R, T], 'int32'), attentionMask: tf.tensor2d(mask, [R, T], 'int32') }).lastHiddenState!;
          const atLast = tf.gather(tf.reshape(hidden, [R * T, -1]), tf.tensor1d(last, 'int32')); // [R, hidden]
          return tf.matMul(atLast, tf.gather(head.weight, labelIds), false, true); // [R, C]
        }
        const { logits } = forwardBatch(model, batch);
        const V = logits.shape[logits.shape.length - 1];
        const atLast = tf.gather(logits.reshape([R * T, V]), tf.tensor1d(last, 'int32')); // [R, V]
        return tf.gather(atLast, labelIds, 1); // [R, C]
      });
      const values = await scores.data();
      scores.dispose();
      preds.set(argmaxRows(values, R, C), s);
    }
    labelIds.dispose();
    return { predictions: preds, labels: Int32Array.from(scored, (e) => e.label!) };
  }
  for (let s = 0; s < scored.length; s += batchSize) {
    const chunk = scored.slice(s, s + batchSize);
    const rows: { ids: number[]; labels: number[] }[] = [];
    for (const e of chunk) {
      if (e.promptLength < 1) throw new Error(`example ${e.row} has no prompt tokens to score label words after`);
      const prompt = Array.from(e.inputIds.subarray(0, e.promptLength));
      for (const w of labelWordIds) rows.push({ ids: [...prompt, ...w], labels: [...prompt.map(() => IGNORE_INDEX), ...w] });
    }
    const T = Math.max(...rows.map((r) => r.ids.length));
    const R = rows.length;
    const ids = new Int32Array(R * T).fill(padId);
    const mask = new Int32Array(R * T);
    const labels = new Int32Array(R * T).fill(IGNORE_INDEX);
    rows.forEach((r, i) => {
      ids.set(r.ids, i * T);
      labels.set(r.labels, i * T);
      mask.fill(1, i * T, i * T + r.ids.length);
    });
    const nll = tf.tidy(() => {
      const { logits } = forwardBatch(model, { shape: [R, T], inputIds: ids, attentionMask: mask, labels, promptLengths: new Int32Array(R), indices: new Int32Array(R), epoch: 0, batch: 0 });
      return causalLmNllPerSequence(logits, tf.tensor2d(labels, [R, T], 'int32')); // [R]
    });
    const values = await nll.data();
    nll.dispose();
    preds.set(argmaxRows(values, chunk.length, C, -1), s);
  }
  return { predictions: preds, labels: Int32Array.from(scored, (e) => e.label!) };
}

/**
 * The causal-LM loss of a classification split's targets (the label word and what follows it) and
 * the label-word predictions from ONE forward pass per batch, where {@link predictWithLabelWords}
 * and `splitLoss` would each run the model over the split: the hidden state at the last prompt
 * position is the same in both (causal attention does not see what follows it). Applies when every
 * label word is one token and the model's output head is plain (`outputHead()`: no adapter on it, no
 * prompt tuning predicting a first token); returns undefined otherwise, for the caller to run the two passes.
 * In eval mode (dropout off), without gradients, in split order.
 *
 * @param labelWordIds - the token ids of each label's word, index = class id.
 * @param batchSize - examples per forward pass.
 * @returns the summed NLL over the split's targets (nats) with their count, and the predictions of
 *   the examples that have a class label (in split order, as {@link predictWithLabelWords}).
 * @throws Error when an example with a class label has no prompt token.
 */
export async function labelWordLossAndPredictions(model: PeftModel, data: Dataset, split: SplitName, batchSize: number, labelWordIds: number[][]): Promise<{ loss: LossTotals; predictions: Predictions } | undefined> {
  const head = model.outputHead();
  if (!head || !labelWordIds.every((w) => w.length === 1)) return undefined;
  const examples = data.splits[split]!.examples;
  const C = labelWordIds.length;
  const preds: number[] = [];
  const gold: number[] = [];
  let nllSum = 0;
  let count = 0;
  const labelIds = tf.tensor1d(labelWordIds.map((w) => w[0]), 'int32');
  const base = model.base.model;
  const wasTraining = base.training;
  base.eval();
  try {
    for (const batch of data.batches(split, { batchSize, shuffle: false, dropLast: false, epochs: 1 })) {
      const [B, T] = batch.shape;
      const rows: number[] = [];
      const last: number[] = [];
      for (let i = 0; i < B; i++) {
        const e = examples[batch.indices[i]];
        if (e.label === undefined || e.label < 0) continue;
        if (e.promptLength < 1) throw new Error(`example ${e.row} has no prompt tokens to score label words after`);
        rows.push(i);
        last.push(i * T + e.promptLength - 1);
        gold.push(e.label);
      }
      const n = targetCount(batch, 'causal-lm', model);
      const [sum, scores] = tf.tidy(() => {
        const hidden = model.forwardHidden({ inputIds: tf.tensor2d(batch.inputIds, batch.shape, 'int32'), attentionMask: tf.tensor2d(batch.attentionMask, batch.shape, 'int32') }).lastHiddenState!;
        const s = n ? causalLmHiddenNllSum(hidden, head.weight as tf.Tensor2D, tf.tensor2d(batch.labels, batch.shape, 'int32'), undefined, batch.labels) : tf.scalar(0);
        if (!rows.length) return [s];
        const atLast = tf.gather(tf.reshape(hidden, [B * T, -1]), tf.tensor1d(last, 'int32')); // [R, hidden]
        return [s, tf.matMul(atLast, tf.gather(head.weight, labelIds), false, true)]; // [R, C]
      }) as [tf.Scalar, tf.Tensor2D?];
      nllSum += (await sum.data())[0];
      count += n;
      if (scores) preds.push(...argmaxRows(await scores.data(), rows.length, C));
      tf.dispose([sum, scores]);
    }
  } finally {
    labelIds.dispose();
    base.train(wasTraining);
  }
  return { loss: { nllSum, count, loss: count ? nllSum / count : NaN }, predictions: { predictions: Int32Array.from(preds), labels: Int32Array.from(gold) } };
}
