/**
 * Growing or shrinking a model's token embedding (and its output head) to a new vocabulary size,
 * as transformers' `PreTrainedModel.resize_token_embeddings` (modeling_utils.py): for a tokenizer
 * with added tokens (a pad token at id = vocab_size), or for an adapter whose saved embedding or
 * head has the added rows.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { Embedding, Linear } from '../nn/layers.js';
import type { PreTrainedModel } from '../model.js';
import { TiedLinear } from './shared.js';

/**
 * `weight` [rows, dim] cut or extended to `n` rows; new rows are the mean of the old ones
 * (transformers' `mean_resizing`, whose added noise has covariance 1e-9 × the rows' covariance,
 * negligible at float32).
 */
function resizedRows(weight: tf.Tensor, n: number): tf.Tensor {
  return tf.tidy(() => {
    const rows = weight.shape[0];
    if (n <= rows) return tf.slice(weight, 0, n);
    const mean = tf.mean(weight, 0, true); // [1, ...]
    return tf.concat([weight, tf.tile(mean, [n - rows, ...Array(weight.rank - 1).fill(1)])], 0);
  });
}

/** The dotted name of `target` in `model`. */
function nameOf(model: PreTrainedModel, target: unknown): string | undefined {
  return model.namedModules().find(([, m]) => m === target)?.[0];
}

/**
 * Resizes the input embedding to `numTokens` rows, and an output head over the vocabulary with it
 * (a tied head shares the new table; an untied one gets its rows resized the same way), and sets
 * `config.vocab_size`. Kept rows are unchanged; added rows are the mean of the old ones. The new
 * parameters keep the old ones' trainable flags. Nothing happens when the size is already right.
 * Call it before injecting adapters (their wrappers hold the old modules).
 * @throws UserError when `numTokens` is not a positive integer.
 */
export function resizeTokenEmbeddings(model: PreTrainedModel, numTokens: number): void {
  if (!Number.isInteger(numTokens) || numTokens < 1) throw new UserError(`resizeTokenEmbeddings: the new vocabulary size must be a positive integer, got ${numTokens}`);
  const emb = model.getInputEmbeddings();
  const old = emb.numEmbeddings;
  if (numTokens === old) return;
  const embName = nameOf(model, emb);
  if (embName === undefined) throw new Error('resizeTokenEmbeddings: the input embedding is not a submodule of the model');
  const next = new Embedding(numTokens, emb.dim);
  tf.tidy(() => next.weight.assign(resizedRows(emb.weight, numTokens)));
  next.weight.trainable = emb.weight.trainable;
  next.training = emb.training;
  for (const head of model.outputHeadNames()) {
    const m = model.getSubmodule(head);
    if (m instanceof TiedLinear && m.weight === emb.weight) {
      model.setSubmodule(head, new TiedLinear(next.weight));
    } else if (m instanceof Linear && m.outFeatures === old) {
      const lin = new Linear(m.inFeatures, numTokens, !!m.bias);
      tf.tidy(() => {
        lin.weight.assign(resizedRows(m.weight, numTokens));
        if (m.bias) lin.bias!.assign(resizedRows(m.bias, numTokens));
      });
      lin.weight.trainable = m.weight.trainable;
      if (m.bias) lin.bias!.trainable = m.bias.trainable;
      lin.training = m.training;
      model.setSubmodule(head, lin);
      m.dispose();
    }
  }
  model.setSubmodule(embName, next);
  emb.dispose();
  model.config.vocab_size = numTokens;
}
