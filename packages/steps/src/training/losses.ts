import * as tf from '@tensorflow/tfjs';
import { lmHeadCrossEntropy, type LinearHead, type ModelInputs, type ModelOutput } from '@peftkit/models';

/** Label value whose position contributes nothing to the loss (PyTorch's `ignore_index`). */
export const IGNORE_INDEX = -100;

/** What a training objective is: next-token prediction, or one label per sequence. */
export type TrainingTask = 'causal-lm' | 'sequence-classification';

/**
 * Number of positions that carry a causal-LM target once labels are shifted left by one (as HF's
 * `ForCausalLMLoss`): labels [batch, seq] row-major; position 0 of each row is a target only with
 * `firstToken` (prompt tuning, whose last virtual token predicts it: see {@link causalLmNllSum}).
 */
export function countCausalTargets(labels: Int32Array, batch: number, seq: number, firstToken = false): number {
  let n = 0;
  for (let b = 0; b < batch; b++) for (let t = firstToken ? 0 : 1; t < seq; t++) if (labels[b * seq + t] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * Summed negative log-likelihood of the next token, as HF's `ForCausalLMLoss` with
 * `reduction="sum"`: logits at position t predict labels at t + 1; labels equal to -100 are ignored.
 * Uses a one-hot product instead of `gather` so that its gradient needs no UnsortedSegmentSum
 * (missing on the WASM backend).
 *
 * With `leadingLogits` (prompt tuning: the logits of the last virtual token, which HF PEFT's loss
 * scores against the first label because it pads the labels with -100 for the virtual positions
 * only, peft_model.py `PeftModelForCausalLM.forward`), position 0 is a target too.
 *
 * @param logits - [batch, seq, vocab] float32.
 * @param labels - [batch, seq] int32, -100 where ignored.
 * @param leadingLogits - [batch, vocab], the prediction of labels[:, 0], or undefined.
 * @returns a scalar: the sum of per-token NLL (nats) over the targets; divide by the target count
 *   ({@link countCausalTargets}) for the mean.
 */
export function causalLmNllSum(logits: tf.Tensor, labels: tf.Tensor, leadingLogits?: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape as [number, number, number];
    if (labels.shape[0] !== B || labels.shape[1] !== T) throw new Error(`labels [${labels.shape}] do not match logits [${logits.shape}]`);
    const shiftLogits = tf.reshape(tf.slice(logits, [0, 0, 0], [B, T - 1, V]), [-1, V]); // [B·(T-1), V]
    const shiftLabels = tf.reshape(tf.slice(labels.toInt(), [0, 1], [B, T - 1]), [-1]); // [B·(T-1)]
    const sum = tokenNllSum(shiftLogits, shiftLabels);
    if (!leadingLogits) return sum;
    return tf.add(sum, tokenNllSum(leadingLogits, tf.reshape(tf.slice(labels.toInt(), [0, 0], [B, 1]), [-1]))) as tf.Scalar;
  });
}

/**
 * {@link causalLmNllSum} of the logits hidden · Wᵀ without materializing them: the same shift
 * (states at t predict labels at t + 1), then the LM head and the cross-entropy as one chunked op
 * (`lmHeadCrossEntropy` in @peftkit/models), which keeps only the hidden states for the backward
 * pass. Equal to `causalLmNllSum(hidden · Wᵀ, labels)` within float32.
 * @param hidden - [batch, seq, hidden] final hidden states.
 * @param weight - [vocab, hidden] the head's weight (the token embedding when tied).
 * @param labels - [batch, seq] int32, -100 where ignored.
 * @param chunkRows - positions per chunk (default: `defaultChunkRows(vocab)`, 32 MiB of logits).
 * @param hostLabels - the same labels on the host ([batch·seq], row-major), when the caller has them: then
 *   positions without a target are dropped before the head when they are more than half (the same sum; the
 *   head's products shrink to the targets' rows).
 * @returns a scalar: the sum of per-token NLL (nats) over the targets.
 */
export function causalLmHiddenNllSum(hidden: tf.Tensor, weight: tf.Tensor2D, labels: tf.Tensor, chunkRows?: number, hostLabels?: ArrayLike<number>): tf.Scalar {
  return tf.tidy(() => {
    const [B, T, C] = hidden.shape as [number, number, number];
    if (labels.shape[0] !== B || labels.shape[1] !== T) throw new Error(`labels [${labels.shape}] do not match hidden states [${hidden.shape}]`);
    const h = tf.reshape(tf.slice(hidden, [0, 0, 0], [B, T - 1, C]), [-1, C]) as tf.Tensor2D; // [B·(T-1), C]
    const scored = hostLabels ? scoredPositions(hostLabels, B, T) : undefined;
    if (scored) {
      // Few targets (a label word after each prompt): the head and the loss over those positions only.
      const idx = tf.tensor1d(scored.positions, 'int32');
      return lmHeadCrossEntropy(tf.gather(h, idx) as tf.Tensor2D, weight, tf.tensor1d(scored.targets, 'int32'), { chunkRows });
    }
    const y = tf.reshape(tf.slice(labels.toInt(), [0, 1], [B, T - 1]), [-1]) as tf.Tensor1D; // [B·(T-1)]
    return lmHeadCrossEntropy(h, weight, y, { chunkRows });
  });
}

/**
 * The shifted positions that have a target (labels[b, t + 1] ≠ -100), as rows of the [B·(T-1)] flattening,
 * with their targets; undefined when more than half the positions have one (then gathering saves little).
 * Why: a classification prompt scored by its label word has one target in a hundred positions, and the
 * LM head over the others (a [positions, vocab] product each way) was a third of the main job's fine-tuning step.
 */
function scoredPositions(labels: ArrayLike<number>, B: number, T: number): { positions: Int32Array; targets: Int32Array } | undefined {
  if (labels.length !== B * T) throw new Error(`host labels have ${labels.length} values, expected ${B} x ${T}`);
  const positions: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b * T + t + 1];
      if (y === IGNORE_INDEX) continue;
      positions.push(b * (T - 1) + t);
      targets.push(y);
    }
  }
  if (positions.length === 0 || 2 * positions.length > B * (T - 1)) return undefined;
  return { positions: Int32Array.from(positions), targets: Int32Array.from(targets) };
}

/** A model the causal-LM loss can run: a `PeftModel` or a bare `PreTrainedModel`. */
export interface CausalLm {
  forward(inputs: ModelInputs): ModelOutput;
  forwardHidden(inputs: ModelInputs): ModelOutput;
  outputHead(): LinearHead | undefined;
}

/**
 * The summed causal-LM NLL of `model` on `inputs` (HF's `ForCausalLMLoss`, `reduction="sum"`):
 * when the model's output head is a plain linear map (`outputHead()`: no adapter on or around
 * it), the hidden states and the fused chunked head + loss ({@link causalLmHiddenNllSum}), so that
 * no [tokens, vocab] tensor is kept for the backward pass; otherwise the logits and
 * {@link causalLmNllSum} (with prompt tuning's `leadingLogits`).
 * @param labels - [batch, seq] int32, -100 where ignored.
 * @returns a scalar in nats; divide by the target count for the mean.
 */
export function causalLmModelNllSum(model: CausalLm, inputs: ModelInputs, labels: tf.Tensor, opts: { chunkRows?: number; hostLabels?: ArrayLike<number> } = {}): tf.Scalar {
  return tf.tidy(() => {
    const head = model.outputHead();
    if (head) return causalLmHiddenNllSum(model.forwardHidden(inputs).lastHiddenState!, head.weight as tf.Variable<tf.Rank.R2>, labels, opts.chunkRows, opts.hostLabels);
    const { logits, leadingLogits } = model.forward(inputs);
    if (logits.rank !== 3) throw new Error(`task "causal-lm" needs logits [batch, seq, vocab], but the model returns [${logits.shape}] (a sequence classifier? set "task": "sequence-classification")`);
    return causalLmNllSum(logits, labels, leadingLogits);
  });
}

/**
 * Summed cross-entropy of one label per sequence (HF's single-label classification loss with
 * `reduction="sum"`). Labels equal to -100 are ignored.
 * @param logits - [batch, num_labels]. @param labels - [batch] int32.
 */
export function classificationNllSum(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tokenNllSum(logits as tf.Tensor2D, labels.toInt() as tf.Tensor1D));
}

/** Σ over rows with label ≠ -100 of −log softmax(logits)[label]. logits [N, C], labels [N]. */
function tokenNllSum(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  const C = logits.shape[1]!;
  const mask = tf.notEqual(labels, IGNORE_INDEX); // [N]
  const safe = tf.where(mask, labels, tf.zerosLike(labels)); // [N]
  const logp = tf.logSoftmax(logits); // [N, C]
  const picked = tf.sum(tf.mul(logp, tf.oneHot(safe, C)), -1); // [N]
  return tf.neg(tf.sum(tf.mul(picked, tf.cast(mask, 'float32')))) as tf.Scalar;
}

/**
 * Per-sequence summed NLL of the targets (causal LM, shifted), for scoring candidate continuations.
 * @param logits - [batch, seq, vocab]; @param labels - [batch, seq] with -100 outside the scored span.
 * @returns [batch] sums in nats.
 */
export function causalLmNllPerSequence(logits: tf.Tensor, labels: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const [B, T, V] = logits.shape as [number, number, number];
    const l = tf.slice(logits, [0, 0, 0], [B, T - 1, V]);
    const y = tf.slice(labels.toInt(), [0, 1], [B, T - 1]);
    const mask = tf.notEqual(y, IGNORE_INDEX);
    const safe = tf.where(mask, y, tf.zerosLike(y));
    const picked = tf.sum(tf.mul(tf.logSoftmax(l), tf.oneHot(safe, V)), -1); // [B, T-1]
    return tf.neg(tf.sum(tf.mul(picked, tf.cast(mask, 'float32')), -1)) as tf.Tensor1D;
  });
}
