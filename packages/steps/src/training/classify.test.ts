import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { PeftModel, manualSeed } from '@peftkit/models';
import { TINY_CONFIGS, tinyModel } from '@peftkit/models/testing';
import { labelWordLossAndPredictions, predictWithLabelWords } from './classify.js';
import { splitLoss } from './evaluation.js';
import { example, idTokenizer, memoryDataset } from './testing/memory-dataset.js';
import { tinyLm } from './testing/tiny-models.js';

await initBackend('wasm');

/** A tiny GPT-2 (plain tied head: the hidden-state paths) as a loaded model. */
function tinyGpt2(V: number, seed: number): PeftModel {
  manualSeed(seed);
  return new PeftModel({ model: tinyModel({ ...TINY_CONFIGS.gpt2, vocab_size: V }), tokenizer: idTokenizer(V), source: 'tiny-gpt2' });
}

for (const [name, make] of [['toy LM, logits', (V: number) => new PeftModel(tinyLm({ vocabSize: V, hidden: 8, seed: 5 }))], ['GPT-2, hidden states', (V: number) => tinyGpt2(V, 5)]] as const)
test(`single-token label words (${name}): one row per example predicts exactly what scoring each label row does`, async () => {
  const V = 16;
  const peft = make(V);
  peft.base.model.eval();
  // Embeddings of unit scale (HF's N(0, 0.02) makes every prompt look alike to this toy model).
  const wte = peft.base.model.getInputEmbeddings().weight;
  wte.assign(tf.randomNormal(wte.shape, 0, 1, 'float32', 9));
  // Prompts of different lengths (so padding and the last-prompt-position lookup matter), each followed by some label word.
  let seed = 11;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const labelWordIds = [[3], [7], [9]];
  const examples = Array.from({ length: 23 }, (_, i) => {
    const len = 2 + (i % 5);
    const prompt = Array.from({ length: len }, () => 1 + rand(V - 2));
    const label = i % 3;
    return example([...prompt, labelWordIds[label][0]], len, label);
  });
  const fast = await predictWithLabelWords(peft, examples, labelWordIds, 4, 0);
  const slow = await predictWithLabelWords(peft, examples, labelWordIds, 4, 0, { singleTokenFastPath: false });
  assert.deepEqual([...fast.predictions], [...slow.predictions]);
  assert.deepEqual([...fast.labels], [...slow.labels]);
  assert.ok(new Set(fast.predictions).size > 1, 'a random model should not answer one class for everything here');
});

test('labelWordLossAndPredictions: one pass gives splitLoss\'s loss and predictWithLabelWords\'s predictions (label word + EOS targets, padding, an example without a class label)', async () => {
  const V = 16;
  assert.equal(await labelWordLossAndPredictions(new PeftModel(tinyLm({ vocabSize: V })), memoryDataset({ test: [example([1, 2, 3], 2, 0)] }, { vocabSize: V, labelNames: ['a', 'b'] }), 'test', 4, [[3], [7]]), undefined, 'a model without a plain output head: not this path');
  const peft = tinyGpt2(V, 6);
  const wte = peft.base.model.getInputEmbeddings().weight;
  wte.assign(tf.randomNormal(wte.shape, 0, 1, 'float32', 10));
  let seed = 5;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2147483648), seed % n);
  const labelWordIds = [[3], [7]];
  const EOS = V - 1;
  const examples = Array.from({ length: 13 }, (_, i) => {
    const len = 2 + (i % 4);
    const prompt = Array.from({ length: len }, () => 1 + rand(V - 3));
    const label = i % 2;
    const e = example([...prompt, labelWordIds[label][0], EOS], len, label);
    return i === 4 ? { ...e, label: undefined } : e;
  });
  const data = memoryDataset({ test: examples }, { vocabSize: V, labelNames: ['a', 'b'], labelWordIds, padTokenId: 0 });
  peft.base.model.train(); // restored afterwards; the scores themselves are taken in eval mode
  const both = await labelWordLossAndPredictions(peft, data, 'test', 4, labelWordIds);
  assert.ok(both, 'applies: one-token label words, a plain head');
  assert.equal(peft.base.model.training, true);
  const ref = await splitLoss(peft, data, 'test', 4, 'causal-lm');
  peft.base.model.eval(); // predictWithLabelWords runs in the mode it is given (the evaluate step sets eval)
  const preds = await predictWithLabelWords(peft, examples, labelWordIds, 4, 0);
  assert.equal(both.loss.count, ref.count);
  assert.equal(ref.count, 2 * 13, 'label word and EOS of every example');
  assert.ok(Math.abs(both.loss.nllSum - ref.nllSum) / ref.nllSum < 1e-5, `${both.loss.nllSum} vs ${ref.nllSum}`);
  assert.deepEqual([...both.predictions.predictions], [...preds.predictions]);
  assert.deepEqual([...both.predictions.labels], [...preds.labels]);
  assert.equal(both.predictions.labels.length, 12);
  assert.ok(new Set(preds.predictions).size > 1, 'a random model should not answer one class for everything here');
  // Label words of two tokens: not this path.
  assert.equal(await labelWordLossAndPredictions(peft, data, 'test', 4, [[3, 4], [7]]), undefined);
});
