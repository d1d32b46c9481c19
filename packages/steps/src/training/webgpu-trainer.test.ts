// The trainer's on-device figures on WebGPU (llvmpipe through Dawn where there is no GPU): the global gradient
// norm over more gradients than a shader may bind (tfjs-webgpu's AddN does not split them), and a run that
// reads only at logging steps giving the losses and gradient norms of the same run on WASM. Own process:
// tfjs's backend is global.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import { loadPretrained } from '@peftkit/models';
import { hfFixture } from '@peftkit/models/testing';
import { fullMethod } from '../methods/full.js';
import { clipGradNorm } from './clip.js';
import { inject, memoryLogger, scratch } from './testing/context.js';
import { example, memoryDataset } from './testing/memory-dataset.js';
import { runTraining } from './trainer.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU trainer: ${reason}`);

test('on webgpu, clipping 20 gradients gives the host-computed norm and scaled gradients', { skip: reason }, async () => {
  await initBackend('webgpu');
  const shapes = [[16, 8], [8], [8, 24], [24]];
  const grads = new Map<string, tf.Tensor>(Array.from({ length: 20 }, (_, i) => [`p${i}`, tf.randomNormal(shapes[i % 4], 0, 0.5, 'float32', i + 1)]));
  const raw = new Map<string, Float32Array>();
  for (const [n, t] of grads) raw.set(n, (await t.data()) as Float32Array);
  const total = Math.sqrt([...raw.values()].reduce((s, v) => s + v.reduce((a, x) => a + x * x, 0), 0));
  const normT = clipGradNorm(grads, 1);
  const norm = (await normT.data())[0];
  normT.dispose();
  assert.ok(Math.abs(norm - total) < 1e-5 * total, `norm ${norm} vs ${total}`);
  const coef = 1 / (total + 1e-6);
  for (const [n, t] of grads) {
    const got = (await t.data()) as Float32Array;
    raw.get(n)!.forEach((x, j) => assert.ok(Math.abs(got[j] - x * coef) <= 1e-6 * Math.abs(x * coef) + 1e-9, `${n}[${j}]: ${got[j]} vs ${x * coef}`));
    t.dispose();
  }
});

test('full fine-tuning (16 trainable tensors, dropout, clipping) logging every 3 steps: the losses and grad norms of WASM', { skip: reason }, async () => {
  const { dir, cleanup } = scratch();
  try {
    const runOn = async (backend: 'webgpu' | 'wasm') => {
      await initBackend(backend);
      const model = await inject(await loadPretrained(hfFixture('ckpt-gpt2-tiny-vocab'), { task: 'causal-lm' }), fullMethod, {});
      assert.equal(model.trainableParameters().length, 16);
      const data = memoryDataset({ train: Array.from({ length: 8 }, (_, i) => example([1 + i, 2, 3 + (i % 3), 4, 5 + i, 6])) }, { vocabSize: 21 });
      const rows: Record<string, number>[] = [];
      const r = await runTraining(model, data, { learning_rate: 0.05, max_steps: 6, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, logging_steps: 3, save_steps: 0, max_grad_norm: 0.5 }, {
        checkpointDir: join(dir, backend), resume: false, signal: new AbortController().signal, logger: memoryLogger(), recordMetrics: (x) => void rows.push(x as Record<string, number>), seed: 5, backend, progressBar: false,
      });
      return { losses: r.lossHistory, rows };
    };
    const gpu = await runOn('webgpu');
    const cpu = await runOn('wasm');
    assert.equal(gpu.losses.length, 6);
    gpu.losses.forEach((l, i) => assert.ok(Math.abs(l - cpu.losses[i]) <= 1e-4 * cpu.losses[i], `step ${i + 1}: loss ${l} on webgpu vs ${cpu.losses[i]} on wasm`));
    assert.deepEqual(gpu.rows.map((x) => x.global_step), [3, 6]);
    gpu.rows.forEach((x, i) => assert.ok(Math.abs(x.grad_norm - cpu.rows[i].grad_norm) <= 1e-4 * cpu.rows[i].grad_norm, `step ${x.global_step}: grad_norm ${x.grad_norm} vs ${cpu.rows[i].grad_norm}`));
    // Clipping engaged (so a wrong norm would show in the losses).
    assert.ok(cpu.rows.every((x) => x.grad_norm > 0.5), `grad norms ${cpu.rows.map((x) => x.grad_norm)}`);
  } finally {
    cleanup();
  }
});
