import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { PeftModel } from '@peftkit/models';
import { predictWithLabelWords } from './classify.js';
import { example } from './testing/memory-dataset.js';
import { tinyLm } from './testing/tiny-models.js';

await initBackend('wasm');

test('single-token label words: one row per example predicts exactly what scoring each label row does', async () => {
  const V = 16;
  const peft = new PeftModel(tinyLm({ vocabSize: V, hidden: 8, seed: 5 }));
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
