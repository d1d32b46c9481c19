/**
 * Small pieces every architecture uses: HF's activation functions (from nn/activations.ts), an output head tied to the
 * token embedding, sequence-classification pooling and state-dict key normalisation.
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { Module, ModuleList } from '../nn/module.js';
import { Linear, matMulLast } from '../nn/layers.js';
import { nextSeed } from '../nn/rng.js';
import type { LinearHead, ModelBuildOptions, ModelOutput } from '../model.js';

/** `tf.tidy` for a forward pass: keeps the tensors of the returned {@link ModelOutput}, frees the rest. */
export function tidyOutput(fn: () => ModelOutput): ModelOutput {
  return tf.tidy(fn as unknown as () => tf.TensorContainer) as unknown as ModelOutput;
}

/** HF's activation functions, each one op that keeps only its input for the backward pass (nn/activations.ts). */
export { activation } from '../nn/activations.js';

/**
 * An output projection that shares its weight with the token embedding (`lm_head` when
 * `tie_word_embeddings`, GPT-2's LM head): `y = x Eᵀ`, E [vocab, hidden]. The shared variable is
 * listed once by `namedParameters` (under the embedding's name) and under both names by `stateDict`.
 * Shapes: x [..., hidden] → [..., vocab].
 */
export class TiedLinear extends Module {
  readonly weight: tf.Variable;
  readonly bias = undefined;
  readonly inFeatures: number;
  readonly outFeatures: number;
  constructor(embeddingWeight: tf.Variable<tf.Rank.R2> | tf.Variable) {
    super();
    this.weight = this.registerParameter('weight', embeddingWeight, embeddingWeight.trainable);
    this.outFeatures = embeddingWeight.shape[0];
    this.inFeatures = embeddingWeight.shape[1]!;
  }
  forward(x: tf.Tensor): tf.Tensor {
    return matMulLast(x, this.weight, true);
  }
}

/**
 * `head` as a {@link LinearHead} when it is a plain linear map: a {@link TiedLinear}, or a
 * {@link Linear} without bias (no architecture here has an LM head bias). Undefined for anything
 * that replaced it (LoRA / IA3 layers, `modules_to_save` wrappers, quantized layers).
 */
export function plainLinearHead(head: Module): LinearHead | undefined {
  if (head instanceof TiedLinear || (head instanceof Linear && !head.bias)) return { weight: head.weight };
  return undefined;
}

/** Re-draws a new head's weight from N(0, std) and zeroes its bias, as HF's `_init_weights` does for `nn.Linear`. */
export function initNormal(layer: { weight: tf.Variable; bias?: tf.Variable }, std: number): void {
  tf.tidy(() => {
    layer.weight.assign(tf.randomNormal(layer.weight.shape, 0, std, 'float32', nextSeed()));
    layer.bias?.assign(tf.zerosLike(layer.bias));
  });
}

/**
 * The hidden state of each row's last non-padding token, as HF's `*ForSequenceClassification`
 * of decoder models (modeling_gpt2.py, modeling_llama.py): the rightmost position whose id is
 * not `pad_token_id` (0 when all are padding); with `inputs_embeds` or without a pad token, the
 * last position.
 * @param hidden - [B, T, C]
 * @param inputIds - [B, T] or undefined when the model was given embeddings
 * @returns [B, C]
 * @throws UserError when the batch has more than one row and there is no pad token (HF raises too).
 */
export function poolLastNonPadToken(hidden: tf.Tensor3D, inputIds: tf.Tensor2D | undefined, padTokenId: number | null | undefined): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T] = hidden.shape;
    if (padTokenId === null || padTokenId === undefined) {
      if (B > 1) {
        throw new UserError(`sequence classification of a batch of ${B} rows needs pad_token_id: the model pools each row's last token that is not padding, and config.json has no pad_token_id`, {
          pointer: '/pad_token_id', hint: 'load the model with the load step (it sets the tokenizer\'s pad or EOS token), give "pad_token_id" in its settings, or classify one row at a time',
        });
      }
    }
    let last: tf.Tensor1D;
    if (inputIds && padTokenId !== null && padTokenId !== undefined) {
      const nonPad = tf.notEqual(inputIds.cast('int32'), padTokenId).cast('int32'); // [B, T]
      last = tf.argMax(tf.mul(nonPad, tf.range(0, T, 1, 'int32')), -1) as tf.Tensor1D; // [B]
    } else {
      last = tf.fill([B], T - 1, 'int32') as tf.Tensor1D;
    }
    // A one-hot weighted sum instead of gather: its gradient needs no scatter kernel. Built with
    // equal() rather than tf.oneHot, which refuses a depth of 1 (one-token inputs).
    const pick = tf.equal(tf.range(0, T, 1, 'int32').expandDims(0), last.expandDims(1)).cast('float32').expandDims(-1); // [B, T, 1]
    return tf.sum(tf.mul(hidden, pick), 1) as tf.Tensor2D; // [B, C]
  });
}

/**
 * Renames and filters checkpoint keys the way HF's `from_pretrained` does before loading:
 * adds or strips the base model prefix (`transformer.`, `model.`, `bert.`, `distilbert.`) when
 * only that separates a key from the model's own name, and drops non-parameter buffers that older
 * checkpoints carry (`_keys_to_ignore_on_load_unexpected`).
 */
export function normalizeStateDict(own: Set<string>, sd: Map<string, tf.Tensor>, prefix: string, ignore: RegExp[]): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of sd) {
    let key = name;
    if (!own.has(key)) {
      if (own.has(`${prefix}.${key}`)) key = `${prefix}.${key}`;
      else if (key.startsWith(`${prefix}.`) && own.has(key.slice(prefix.length + 1))) key = key.slice(prefix.length + 1);
    }
    if (!own.has(key) && ignore.some((r) => r.test(key))) continue;
    out.set(key, t);
  }
  return out;
}

/**
 * `n` transformer blocks built in order, each handed to `build.onBlock` (with its name `prefix` + i + `.`)
 * before the next is built (see {@link ModelBuildOptions.onBlock}).
 */
export function buildBlocks<M extends Module>(n: number, make: (i: number) => M, prefix: string, build?: ModelBuildOptions): ModuleList<M> {
  return new ModuleList(
    Array.from({ length: n }, (_, i) => {
      const block = make(i);
      build?.onBlock?.(block, `${prefix}${i}.`);
      return block;
    }),
  );
}

/** `build` for a sub-model registered under `prefix` (e.g. `model.`): block names get the prefix. */
export function nestedBuild(build: ModelBuildOptions | undefined, prefix: string): ModelBuildOptions | undefined {
  const onBlock = build?.onBlock;
  return onBlock ? { ...build, onBlock: (block, p) => onBlock(block, `${prefix}${p}`) } : build;
}
