import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import type { PeftModel } from '@peftkit/models';
import { inject, scratch, testContext } from '../training/testing/context.js';
import { example, memoryDataset } from '../training/testing/memory-dataset.js';
import { tinyLoraMethod } from '../training/testing/tiny-adapter.js';
import { lookupModel, tinyLm } from '../training/testing/tiny-models.js';
import { splitLoss } from '../training/evaluation.js';
import { evaluateStep } from './index.js';

await initBackend('wasm');

const V = 16;
// Gold labels and the predictions the "with adapter" model must make (see metrics.test.ts):
// TP 3, FN 1, FP 2, TN 4 → accuracy 0.7, precision 0.6, recall 0.75, F1 2/3.
const GOLD = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
const PRED = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0];

/**
 * Sets the adapter so that token 2 reads as class 1 (and as label word 11); the base alone says
 * class 0 (word 10) for everything. `path` is the wrapped head.
 */
function steer(peft: PeftModel, path: string, row: number) {
  for (const [n, v] of peft.trainableParameters()) {
    tf.tidy(() => {
      if (n === `base_model.model.${path}.lora_A.weight`) {
        const a = new Float32Array(v.size); // A [1, V]: reads token 2
        a[2] = 1;
        v.assign(tf.tensor(a, v.shape));
      }
      if (n === `base_model.model.${path}.lora_B.weight`) {
        const b = new Float32Array(v.size);
        b[row * v.shape[1]!] = 20; // scaling 2 · 20 on output `row`, first rank component
        v.assign(tf.tensor(b, v.shape));
      }
    });
  }
}

test('classification head: accuracy, precision, recall, F1 with and without the adapter, majority baseline, report files', async () => {
  const { dir, cleanup } = scratch();
  try {
    // Base: class 0 scores 1 for every token, class 1 scores 0.
    const loaded = lookupModel('sequence-classification', V, 2, [Array(V).fill(1), Array(V).fill(0)]);
    const peft = await inject(loaded, tinyLoraMethod, { r: 1, lora_alpha: 2, target_modules: ['score'] });
    steer(peft, 'score', 1);
    const test_ = GOLD.map((y, i) => example([PRED[i] ? 2 : 1, 5, 6], 3, y));
    const train = [0, 0, 0, 1, 1].map((y) => example([1, 5], 2, y));
    const data = memoryDataset({ train, test: test_ }, { vocabSize: V, labelNames: ['neg', 'pos'] });
    const ctx = testContext(dir, 'eval');
    const out = await evaluateStep.run(ctx, { model: peft, dataset: data }, { split: 'test', batch_size: 4, baselines: true, num_samples: 0 });
    const rows = Object.fromEntries((out.metrics as any).objects().map((r: any) => [r.metric, r]));
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
    close(rows.accuracy.with_adapter, 0.7);
    close(rows.precision.with_adapter, 0.6);
    close(rows.recall.with_adapter, 0.75);
    close(rows.f1.with_adapter, 2 / 3);
    // Without the adapter everything is "neg": accuracy 6/10, no positive prediction → precision, recall, F1 0.
    close(rows.accuracy.without_adapter, 0.6);
    close(rows.f1.without_adapter, 0);
    close(rows.accuracy.change, 0.1);
    close(rows['majority_class_accuracy (always "neg")'].with_adapter, 0.6);
    // The loss is the mean cross-entropy of the head, as computed by splitLoss.
    const ref = await splitLoss(peft, data, 'test', 3, 'sequence-classification');
    assert.ok(Math.abs(rows.loss.with_adapter / ref.loss - 1) < 1e-6);
    assert.equal(peft.active.join(), 'default', 'the active adapter is restored');
    const md = readFileSync(join(dir, 'eval', 'report.md'), 'utf8');
    assert.match(md, /\|metric\|with_adapter\|without_adapter\|change\|/);
    assert.match(md, /\|precision\|0\.6\|0\|0\.6\|/);
    const json = JSON.parse(readFileSync(join(dir, 'eval', 'report.json'), 'utf8'));
    assert.equal(json.classification.average, 'binary');
    assert.equal(ctx.rows[0].base_accuracy, 0.6);
    // positive_label by name: class 0 as positive → TP 4, FP 1, FN 2.
    const out0 = await evaluateStep.run(testContext(dir, 'eval0'), { model: peft, dataset: data }, { split: 'test', positive_label: 'neg', num_samples: 0 });
    const r0 = Object.fromEntries((out0.metrics as any).objects().map((r: any) => [r.metric, r]));
    close(r0.precision.with_adapter, 4 / 5);
    close(r0.recall.with_adapter, 4 / 6);
  } finally {
    cleanup();
  }
});

test('causal LM: label-word classification, perplexity = exp(mean NLL), reference perplexity (forgetting)', async () => {
  const { dir, cleanup } = scratch();
  try {
    // Bigram table: after any token, word 10 scores 1 and word 11 scores 0; the adapter makes token 2 → 11.
    const table = Array.from({ length: V }, (_, out) => Array(V).fill(out === 10 ? 1 : 0));
    const loaded = lookupModel('causal-lm', V, V, table);
    const peft = await inject(loaded, tinyLoraMethod, { r: 1, lora_alpha: 2, target_modules: ['lm_head'] });
    steer(peft, 'lm_head', 11);
    // Prompts [5, t]; the label word (10 = neg, 11 = pos) follows.
    const test_ = GOLD.map((y, i) => example([5, PRED[i] ? 2 : 1, y ? 11 : 10], 2, y));
    const data = memoryDataset({ train: test_.slice(0, 4), test: test_ }, { vocabSize: V, labelNames: ['neg', 'pos'], labelWordIds: [[10], [11]] });
    const refData = memoryDataset({ train: [example([1, 2, 3, 4]), example([4, 3, 2, 1, 0])] }, { vocabSize: V });
    const ctx = testContext(dir, 'eval');
    const out = await evaluateStep.run(ctx, { model: peft, dataset: data, reference: refData }, { split: 'test', batch_size: 3, num_samples: 0 });
    const rows = Object.fromEntries((out.metrics as any).objects().map((r: any) => [r.metric, r]));
    const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) < tol, `${a} vs ${b}`);
    close(rows.accuracy.with_adapter, 0.7);
    close(rows.f1.with_adapter, 2 / 3);
    close(rows.accuracy.without_adapter, 0.6);
    const ppl = await splitLoss(peft, data, 'test', 8, 'causal-lm');
    assert.ok(Math.abs(rows.perplexity.with_adapter / Math.exp(ppl.loss) - 1) < 1e-5);
    const refLoss = await splitLoss(peft, refData, 'train', 8, 'causal-lm');
    assert.ok(Math.abs(rows.reference_perplexity.with_adapter / Math.exp(refLoss.loss) - 1) < 1e-5);
    // Explicit label_words (tokenized by the dataset's tokenizer) give the same predictions.
    const out2 = await evaluateStep.run(testContext(dir, 'eval2'), { model: peft, dataset: data }, { split: 'test', label_words: ['<10>', '<11>'], num_samples: 0, baselines: false });
    const r2 = Object.fromEntries((out2.metrics as any).objects().map((r: any) => [r.metric, r]));
    close(r2.accuracy.with_adapter, 0.7);
    assert.equal(r2.accuracy.without_adapter, null);
  } finally {
    cleanup();
  }
});

test('a missing split is a clear error', async () => {
  const { dir, cleanup } = scratch();
  try {
    const peft = await inject(tinyLm(), tinyLoraMethod, { r: 1, lora_alpha: 1, target_modules: ['fc'] });
    const data = memoryDataset({ train: [example([1, 2, 3])] }, { vocabSize: V });
    await assert.rejects(evaluateStep.run(testContext(dir, 'e'), { model: peft, dataset: data }, { split: 'test' }), /the dataset has no "test" split \(it has train\)/);
  } finally {
    cleanup();
  }
});
