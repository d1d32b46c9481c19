/**
 * Tiny models for the training tests: a token-wise causal LM and a mean-pooling classifier, both
 * with HF-style parameter names. Token embeddings are read with a one-hot product (not `gather`) so
 * that full fine-tuning works on the WASM backend, which lacks the gather gradient's kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { Dropout, Embedding, Linear, Module, PreTrainedModel, manualSeed, type LoadedModel, type ModelConfig, type ModelInputs, type ModelOutput, type ModelTask, type TransformerDims } from '@peftkit/models';
import { idTokenizer } from './memory-dataset.js';

class Mlp extends Module {
  fc: Linear;
  proj: Linear;
  constructor(d: number) {
    super();
    this.fc = this.registerModule('fc', new Linear(d, 2 * d));
    this.proj = this.registerModule('proj', new Linear(2 * d, d));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.proj.forward(tf.tanh(this.fc.forward(x))));
  }
}

class Block extends Module {
  mlp: Mlp;
  constructor(d: number) {
    super();
    this.mlp = this.registerModule('mlp', new Mlp(d));
  }
}

/** What {@link tinyLm} / {@link tinyClassifier} build. */
export interface TinyOptions {
  vocabSize?: number;
  hidden?: number;
  dropout?: number;
  seed?: number;
  numLabels?: number;
  /** Make `forward` return NaN logits from this many calls on (to test the NaN stop). */
  nanAfterCalls?: number;
}

/** A causal LM: embedding (one-hot product) + mean of the previous positions, one MLP block, LM head. */
export class TinyLm extends PreTrainedModel {
  readonly config: ModelConfig;
  readonly task: ModelTask;
  wte: Embedding;
  h: Module;
  drop: Dropout;
  lm_head?: Linear;
  score?: Linear;
  calls = 0;
  constructor(readonly o: Required<TinyOptions>, task: ModelTask) {
    super();
    this.task = task;
    this.config = { model_type: 'tiny', vocab_size: o.vocabSize, n_embd: o.hidden, num_labels: o.numLabels };
    this.wte = this.registerModule('wte', new Embedding(o.vocabSize, o.hidden));
    const h = new Module();
    h.registerModule('0', new Block(o.hidden));
    this.h = this.registerModule('h', h);
    this.drop = this.registerModule('drop', new Dropout(o.dropout));
    if (task === 'causal-lm') this.lm_head = this.registerModule('lm_head', new Linear(o.hidden, o.vocabSize, false));
    else this.score = this.registerModule('score', new Linear(o.hidden, o.numLabels, false));
  }
  dims(): TransformerDims {
    return { numLayers: 1, hiddenSize: this.o.hidden, numAttentionHeads: 1, numKeyValueHeads: 1, headDim: this.o.hidden, vocabSize: this.o.vocabSize };
  }
  getInputEmbeddings(): Embedding {
    return this.wte;
  }
  outputHeadNames(): string[] {
    return [this.task === 'causal-lm' ? 'lm_head' : 'score'];
  }
  adapterPoints() {
    return [{ layer: 0, attentionOutput: 'h.0.mlp.fc', feedForwardOutput: 'h.0.mlp.proj' }];
  }
  forward(inputs: ModelInputs): ModelOutput {
    this.calls++;
    const poison = this.o.nanAfterCalls > 0 && this.calls > this.o.nanAfterCalls;
    return tf.tidy(() => {
      const ids = inputs.inputIds!;
      const [B, T] = ids.shape;
      const emb = tf.reshape(tf.matMul(tf.oneHot(tf.reshape(ids.toInt(), [-1]), this.o.vocabSize), this.wte.weight), [B, T, this.o.hidden]); // [B, T, C]
      const mask = inputs.attentionMask ? tf.cast(inputs.attentionMask, 'float32') : tf.ones([B, T]); // [B, T]
      // Causal mixing: each position sees the (masked) mean of positions <= t.
      const tri = tf.linalg.bandPart(tf.ones([T, T]), -1, 0); // [T, T] lower triangular
      const w = tf.mul(tri.expandDims(0), mask.expandDims(1)); // [B, T, T]
      const mixed = tf.div(tf.matMul(w, emb), tf.maximum(tf.sum(w, -1, true), 1)); // [B, T, C]
      let x = tf.add(emb, mixed);
      x = this.drop.forward(x);
      x = tf.add(x, (this.h.getSubmodule('0.mlp') as Mlp).forward(x)); // [B, T, C]
      if (this.task === 'causal-lm') {
        const logits = this.lm_head!.forward(x); // [B, T, V]
        return { logits: poison ? tf.mul(logits, NaN) : logits };
      }
      const pooled = tf.div(tf.sum(tf.mul(x, mask.expandDims(-1)), 1), tf.maximum(tf.sum(mask, 1, true), 1)); // [B, C]
      const logits = this.score!.forward(pooled); // [B, num_labels]
      return { logits: poison ? tf.mul(logits, NaN) : logits };
    });
  }
}

function fill(o: TinyOptions): Required<TinyOptions> {
  return { vocabSize: 16, hidden: 8, dropout: 0, seed: 7, numLabels: 2, nanAfterCalls: 0, ...o };
}

/** A tiny causal LM wrapped as a loaded model (source `tiny-lm`), initialised from `seed`. */
export function tinyLm(o: TinyOptions = {}): LoadedModel {
  const f = fill(o);
  manualSeed(f.seed);
  return { model: new TinyLm(f, 'causal-lm'), tokenizer: idTokenizer(f.vocabSize), source: 'tiny-lm' };
}

/** A tiny sequence classifier wrapped as a loaded model (source `tiny-cls`). */
export function tinyClassifier(o: TinyOptions = {}): LoadedModel {
  const f = fill(o);
  manualSeed(f.seed);
  return { model: new TinyLm(f, 'sequence-classification'), tokenizer: idTokenizer(f.vocabSize), source: 'tiny-cls' };
}

/**
 * A model whose predictions are set by hand: a lookup table `table` [out, vocab] read at each
 * position (causal LM: logits[b, t] = table[:, ids[b, t]], a bigram model) or at the first position
 * (classifier: logits[b] = table[:, ids[b, 0]]). The table is the `score` / `lm_head` Linear.
 */
export class LookupModel extends PreTrainedModel {
  readonly config: ModelConfig;
  head: Linear;
  constructor(readonly task: ModelTask, readonly vocabSize: number, out: number) {
    super();
    this.config = { model_type: 'lookup', vocab_size: vocabSize };
    this.head = this.registerModule(task === 'causal-lm' ? 'lm_head' : 'score', new Linear(vocabSize, out, false));
  }
  /** Sets the head's weight [out, vocab]. */
  setTable(rows: number[][]): void {
    tf.tidy(() => this.head.weight.assign(tf.tensor2d(rows)));
  }
  dims(): TransformerDims {
    return { numLayers: 0, hiddenSize: this.vocabSize, numAttentionHeads: 1, numKeyValueHeads: 1, headDim: 1, vocabSize: this.vocabSize };
  }
  getInputEmbeddings(): Embedding {
    throw new Error('no embeddings');
  }
  outputHeadNames(): string[] {
    return [];
  }
  adapterPoints() {
    return [];
  }
  forward(inputs: ModelInputs): ModelOutput {
    return tf.tidy(() => {
      const ids = inputs.inputIds!.toInt();
      const [B, T] = ids.shape;
      const headModule = this.getSubmodule(this.task === 'causal-lm' ? 'lm_head' : 'score') as Linear;
      if (this.task === 'causal-lm') {
        const x = tf.reshape(tf.oneHot(tf.reshape(ids, [-1]), this.vocabSize), [B, T, this.vocabSize]);
        return { logits: headModule.forward(x) };
      }
      const first = tf.reshape(tf.slice(ids, [0, 0], [B, 1]), [B]);
      return { logits: headModule.forward(tf.oneHot(first, this.vocabSize)) };
    });
  }
}

/** A {@link LookupModel} as a loaded model. */
export function lookupModel(task: ModelTask, vocabSize: number, out: number, table: number[][]): LoadedModel & { model: LookupModel } {
  const model = new LookupModel(task, vocabSize, out);
  model.setTable(table);
  return { model, tokenizer: idTokenizer(vocabSize), source: `lookup-${task}` };
}
