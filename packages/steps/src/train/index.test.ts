import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { initBackend } from '@peftkit/core';
import { inject, scratch, testContext, testRegistry } from '../training/testing/context.js';
import { example, memoryDataset } from '../training/testing/memory-dataset.js';
import { tinyLoraMethod } from '../training/testing/tiny-adapter.js';
import { tinyLm } from '../training/testing/tiny-models.js';
import { trainStep } from './index.js';

await initBackend('wasm');

const data = () => memoryDataset({ train: Array.from({ length: 6 }, (_, i) => example([i + 1, i + 2, i + 3, i + 4])), validation: [example([2, 3, 4, 5])] }, { vocabSize: 16 });

test('the step trains, writes loss.svg, records rows and outputs the same model and an arquero table', async () => {
  const { dir, cleanup } = scratch();
  try {
    const model = await inject(tinyLm(), tinyLoraMethod, { r: 2, lora_alpha: 4, target_modules: ['fc'] });
    const ctx = testContext(dir, 'fit');
    const out = await trainStep.run(ctx, { model, dataset: data() }, { learning_rate: 0.05, max_steps: 4, per_device_train_batch_size: 3, logging_steps: 2, eval_steps: 2 });
    assert.equal(out.model, model);
    const table = out.metrics as any;
    assert.deepEqual(table.columnNames(), ['global_step', 'loss', 'lr', 'grad_norm', 'tokens_per_s', 'epoch', 'eval_loss']);
    assert.deepEqual(table.objects().map((r: any) => r.global_step), [2, 2, 4, 4]);
    assert.deepEqual(ctx.rows.map((r) => r.global_step), [2, 2, 4, 4]);
    assert.ok(Number.isFinite(table.objects()[1].eval_loss));
    assert.match(readFileSync(join(dir, 'fit', 'loss.svg'), 'utf8'), /^<svg/);
    assert.ok(existsSync(join(dir, 'fit', 'checkpoints', 'step-4', 'model.safetensors')));
  } finally {
    cleanup();
  }
});

test('an aborted signal (Ctrl-C) before the run: nothing trained, clean return', async () => {
  const { dir, cleanup } = scratch();
  try {
    const model = await inject(tinyLm(), tinyLoraMethod, { r: 2, lora_alpha: 4, target_modules: ['fc'] });
    const ac = new AbortController();
    ac.abort();
    const ctx = testContext(dir, 'fit', { signal: ac.signal });
    const out = await trainStep.run(ctx, { model, dataset: data() }, { max_steps: 4, per_device_train_batch_size: 3 });
    assert.equal((out.metrics as any).numRows(), 0);
    assert.ok(ctx.lines.some((l) => /interrupted at step 0\/4/.test(l)));
  } finally {
    cleanup();
  }
});

test('validate: early stopping without eval_steps is reported at the field', () => {
  assert.deepEqual(trainStep.validate!({ early_stopping_patience: 2 }, testRegistry()).map((i) => i.pointer), ['/early_stopping_patience']);
  assert.deepEqual(trainStep.validate!({ early_stopping_patience: 2, eval_steps: 5 }, testRegistry()), []);
});
