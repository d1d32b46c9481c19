import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import type { Dataset } from '@peftkit/data';
import { clearFrozenTransposes, readSafetensors, type PeftModel } from '@peftkit/models';
import { fullMethod } from '../methods/full.js';
import { memoryLogger, inject, scratch } from './testing/context.js';
import { example, memoryDataset } from './testing/memory-dataset.js';
import { tinyLoraMethod } from './testing/tiny-adapter.js';
import { tinyClassifier, tinyLm, type TinyOptions } from './testing/tiny-models.js';
import { countHostReads } from './testing/host-reads.js';
import { runTraining, type TrainEnv } from './trainer.js';
import { lrMultiplier } from './schedules.js';

await initBackend('wasm');

const LORA = { r: 2, lora_alpha: 4, target_modules: ['fc', 'proj'] };

/** 8 sequences of 6 tokens counting up from different starts (mod 12, ids 1..12). */
function countingData(opts: { prompt?: boolean; validation?: boolean } = {}) {
  const seqs = Array.from({ length: 8 }, (_, i) => Array.from({ length: 6 }, (_, k) => ((i + k) % 12) + 1));
  // With `prompt`, odd examples only score their last 2 tokens, so micro-batches differ in target counts.
  const train = seqs.map((s, i) => example(s, opts.prompt && i % 2 ? 4 : 0));
  const validation = opts.validation ? [example([3, 4, 5, 6, 7, 8]), example([9, 10, 11, 12, 1, 2])] : undefined;
  return memoryDataset({ train, ...(validation ? { validation } : {}) }, { vocabSize: 16 });
}

function env(dir: string, o: Partial<TrainEnv> = {}): TrainEnv {
  return { checkpointDir: join(dir, 'checkpoints'), resume: false, signal: new AbortController().signal, logger: memoryLogger(), recordMetrics: () => {}, seed: 42, backend: 'wasm', progressBar: false, ...o };
}

async function loraModel(o: TinyOptions = {}) {
  return inject(tinyLm(o), tinyLoraMethod, LORA);
}

const weights = (p: { trainableParameters(): [string, tf.Variable][] }) => p.trainableParameters().map(([n, v]) => [n, Array.from(v.dataSync())] as const);

test('training lowers the loss, logs lr as the schedule says, and leaves no tensors behind', async () => {
  const { dir, cleanup } = scratch();
  try {
    const model = await loraModel();
    const rows: Record<string, unknown>[] = [];
    const before = tf.memory().numTensors;
    const r = await runTraining(model, countingData(), { learning_rate: 0.1, max_steps: 30, per_device_train_batch_size: 4, logging_steps: 1, warmup_steps: 3, lr_scheduler_type: 'cosine', save_steps: 0 }, env(dir, { recordMetrics: (x) => void rows.push(x) }));
    assert.equal(r.globalStep, 30);
    assert.equal(r.lossHistory.length, 30);
    assert.ok(r.lossHistory[29] < r.lossHistory[0] * 0.75, `loss ${r.lossHistory[0]} -> ${r.lossHistory[29]}`);
    for (const row of rows.slice(0, 10)) {
      const k = (row.global_step as number) - 1;
      assert.ok(Math.abs((row.lr as number) - 0.1 * lrMultiplier(k, { type: 'cosine', warmupSteps: 3, totalSteps: 30 })) < 1e-12);
    }
    assert.equal(rows[0].lr, 0); // HF: the first warmup update uses lr 0
    clearFrozenTransposes(); // the frozen base's cached transposes are kept on purpose (nn/layers.ts)
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    // The final checkpoint is written even with save_steps 0.
    assert.equal(readFileSync(join(dir, 'checkpoints', 'latest'), 'utf8').trim(), 'step-30');
  } finally {
    cleanup();
  }
});

test('gradient accumulation: 2 micro-batches of 2 give the same update as one batch of 4', async () => {
  const { dir, cleanup } = scratch();
  try {
    const data = countingData({ prompt: true });
    const common = { learning_rate: 0.01, max_steps: 2, save_steps: 0, max_grad_norm: 1.0, seed: 3 };
    const a = await loraModel();
    const ra = await runTraining(a, data, { ...common, per_device_train_batch_size: 4, gradient_accumulation_steps: 1 }, env(join(dir, 'a')));
    const b = await loraModel();
    const rb = await runTraining(b, data, { ...common, per_device_train_batch_size: 2, gradient_accumulation_steps: 2 }, env(join(dir, 'b')));
    for (let i = 0; i < 2; i++) assert.ok(Math.abs(ra.lossHistory[i] - rb.lossHistory[i]) < 1e-5, `step ${i + 1}: ${ra.lossHistory[i]} vs ${rb.lossHistory[i]}`);
    const wa = weights(a);
    const wb = weights(b);
    for (let i = 0; i < wa.length; i++) {
      const d = Math.max(...wa[i][1].map((x, j) => Math.abs(x - wb[i][1][j])));
      assert.ok(d < 1e-5, `${wa[i][0]} differs by ${d}`);
    }
  } finally {
    cleanup();
  }
});

test('same seed, same loss curve; another seed, another curve (dropout and data order are seeded)', async () => {
  const { dir, cleanup } = scratch();
  try {
    const run = async (seed: number, sub: string) => {
      const m = await loraModel({ dropout: 0.2 });
      return (await runTraining(m, countingData(), { learning_rate: 0.02, max_steps: 5, per_device_train_batch_size: 2, save_steps: 0 }, env(join(dir, sub), { seed }))).lossHistory;
    };
    const x = await run(42, 'x');
    const y = await run(42, 'y');
    const z = await run(7, 'z');
    assert.deepEqual(x, y);
    assert.notDeepEqual(x, z);
  } finally {
    cleanup();
  }
});

test('abort writes a checkpoint and returns; resume continues with exactly the uninterrupted losses', async () => {
  const { dir, cleanup } = scratch();
  try {
    const settings = { learning_rate: 0.02, max_steps: 8, per_device_train_batch_size: 3, gradient_accumulation_steps: 1, save_steps: 5, logging_steps: 1, warmup_steps: 2, weight_decay: 0.1 };
    const full = await runTraining(await loraModel({ dropout: 0.1 }), countingData(), settings, env(join(dir, 'full')));

    const ac = new AbortController();
    const cut = join(dir, 'cut');
    const first = await runTraining(await loraModel({ dropout: 0.1 }), countingData(), settings, env(cut, {
      signal: ac.signal,
      recordMetrics: (row) => {
        if (row.global_step === 3) ac.abort();
      },
    }));
    assert.equal(first.interrupted, true);
    assert.equal(first.globalStep, 3);
    assert.equal(readFileSync(join(cut, 'checkpoints', 'latest'), 'utf8').trim(), 'step-3');
    for (const f of ['model.safetensors', 'optimizer.safetensors', 'trainer_state.json']) assert.ok(existsSync(join(cut, 'checkpoints', 'step-3', f)), f);
    assert.deepEqual(first.lossHistory, full.lossHistory.slice(0, 3));

    // A fresh process would rebuild the model from the same seed; resume restores the rest.
    const resumed = await loraModel({ dropout: 0.1 });
    const second = await runTraining(resumed, countingData(), settings, env(cut, { resume: true }));
    assert.equal(second.globalStep, 8);
    assert.equal(second.lossHistory.length, 8);
    for (let i = 0; i < 8; i++) assert.ok(Math.abs(second.lossHistory[i] - full.lossHistory[i]) < 1e-6, `step ${i + 1}: ${second.lossHistory[i]} vs ${full.lossHistory[i]}`);
    // Checkpoints: step-3 (interrupt), step-5 (save_steps), step-8 (end).
    assert.deepEqual(readdirSync(join(cut, 'checkpoints')).filter((n) => n.startsWith('step-')).sort(), ['step-3', 'step-5', 'step-8']);
  } finally {
    cleanup();
  }
});

test('a NaN loss stops with an error naming the step; the last good checkpoint survives pruning', async () => {
  const { dir, cleanup } = scratch();
  try {
    const model = await loraModel({ nanAfterCalls: 5 });
    await assert.rejects(
      runTraining(model, countingData(), { learning_rate: 0.01, max_steps: 10, per_device_train_batch_size: 2, save_steps: 2, save_total_limit: 1 }, env(dir)),
      (e: Error) => e instanceof UserError && /loss is NaN at step 6/.test(e.message) && /step-4/.test(e.message) && /lower learning_rate/.test((e as UserError).details.hint ?? ''),
    );
    const ck = join(dir, 'checkpoints');
    assert.equal(readFileSync(join(ck, 'latest'), 'utf8').trim(), 'step-4');
    assert.deepEqual(readdirSync(ck).filter((n) => n.startsWith('step-')), ['step-4']);
    // The kept checkpoint holds the weights before the bad step (the model in memory took the updates
    // made until the read that found it: the trainer does not read every step).
    const { tensors: kept } = readSafetensors(join(ck, 'step-4', 'model.safetensors'));
    assert.equal(kept.size, model.trainableParameters().length);
    for (const [n, t] of kept) {
      assert.ok(Array.from(t.dataSync()).every(Number.isFinite), `${n} in step-4 is not finite`);
      t.dispose();
    }
  } finally {
    cleanup();
  }
});

test('a NaN at a step between reads is reported at the next read with that step; nothing is logged or saved after it', async () => {
  const { dir, cleanup } = scratch();
  try {
    const rows: Record<string, unknown>[] = [];
    // 2 forward passes are fine, the third (step 3, no logging, eval or save there) gives NaN; the first read is at step 5.
    // The message names step 3 with its own learning rate (linear decay: 0.01 * 8/10).
    const model = await loraModel({ nanAfterCalls: 2 });
    await assert.rejects(
      runTraining(model, countingData(), { learning_rate: 0.01, max_steps: 10, per_device_train_batch_size: 2, logging_steps: 5, save_steps: 0 }, env(dir, { recordMetrics: (x) => void rows.push(x) })),
      (e: Error) => e instanceof UserError && /^the loss is NaN at step 3 \(learning rate 8\.00e-3\): training stopped at step 5, where it was read/.test(e.message) && /No checkpoint was written before this step/.test(e.message),
    );
    assert.deepEqual(rows, []);
    assert.ok(!existsSync(join(dir, 'checkpoints', 'latest')), 'a checkpoint was written after the bad step');
    // Found at the step-5 read: 5 steps ran, not 10 (the model counts its forward passes).
    assert.equal((model.base.model as unknown as { calls: number }).calls, 5);
  } finally {
    cleanup();
  }
});

test('host reads happen only at logging, evaluation and checkpoint steps (one read per logging step)', async () => {
  const { dir, cleanup } = scratch();
  let runs = 0;
  /** Reads done during each optimizer step (reads at its logging/eval/save point included), steps 1..max_steps-1. */
  const readsPerStep = async (settings: Record<string, unknown>, data: Dataset, model?: PeftModel) => {
    const accum = (settings.gradient_accumulation_steps as number) ?? 1;
    const batches = data.batches.bind(data);
    const reads = countHostReads();
    const starts: number[] = []; // reads.count when each step takes its first micro-batch
    let calls = 0;
    data.batches = (split, o) => {
      const it = batches(split, o);
      if (split !== 'train') return it;
      const next = it.next.bind(it);
      it.next = () => {
        if (calls++ % accum === 0) starts.push(reads.count);
        return next();
      };
      return it;
    };
    try {
      await runTraining(model ?? (await loraModel()), data, { learning_rate: 0.01, max_steps: 10, per_device_train_batch_size: 2, ...settings }, env(join(dir, `run-${++runs}`)));
    } finally {
      reads.stop();
    }
    assert.equal(starts.length, 10);
    return starts.slice(1).map((c, i) => c - starts[i]);
  };
  try {
    // Logging at 5 and 10, 2 micro-batches a step: one read at step 5 (and the rest after step 10: its log row and the final checkpoint).
    assert.deepEqual(await readsPerStep({ logging_steps: 5, save_steps: 0, gradient_accumulation_steps: 2 }, countingData()), [0, 0, 0, 0, 1, 0, 0, 0, 0]);
    // With evaluation every 3 steps and a checkpoint every 4: reads at steps 3, 4, 5, 6, 8, 9 only.
    const r = await readsPerStep({ logging_steps: 5, save_steps: 4, eval_steps: 3 }, countingData({ validation: true }));
    assert.deepEqual(r.map((n, i) => (n > 0 ? i + 1 : 0)).filter(Boolean), [3, 4, 5, 6, 8, 9], `reads per step: ${r}`);
    assert.equal(r[4], 1, 'a logging step reads once');
    // A real GPT-2 (full fine-tuning, dropout 0.1 on WASM's dropout kernel, clipping on): its forward and backward read nothing either.
    const { loadPretrained } = await import('@peftkit/models');
    const { hfFixture } = await import('@peftkit/models/testing');
    const gpt2 = await inject(await loadPretrained(hfFixture('ckpt-gpt2-tiny-vocab'), { task: 'causal-lm' }), fullMethod, {});
    const text = memoryDataset({ train: Array.from({ length: 4 }, (_, i) => example([1 + i, 2, 3, 4, 5 + i, 6])) }, { vocabSize: 21 });
    assert.deepEqual(await readsPerStep({ logging_steps: 5, save_steps: 0, max_grad_norm: 1e-3 }, text, gpt2), [0, 0, 0, 0, 1, 0, 0, 0, 0]);
  } finally {
    cleanup();
  }
});

test('early stopping on the validation loss', async () => {
  const { dir, cleanup } = scratch();
  try {
    const rows: Record<string, unknown>[] = [];
    // A learning rate of 0 never improves the validation loss: stop after `patience` evaluations past the first.
    const r = await runTraining(await loraModel(), countingData({ validation: true }), { learning_rate: 1e-12, max_steps: 20, per_device_train_batch_size: 4, eval_steps: 2, early_stopping_patience: 2, save_steps: 0 }, env(dir, { recordMetrics: (x) => void rows.push(x) }));
    assert.equal(r.earlyStopped, true);
    assert.equal(r.globalStep, 6);
    assert.equal(rows.filter((x) => 'eval_loss' in x).length, 3);
  } finally {
    cleanup();
  }
});

test('full fine-tuning trains every parameter (embeddings included); sequence classification task', async () => {
  const { dir, cleanup } = scratch();
  try {
    const model = await inject(tinyLm(), fullMethod, {});
    const before = weights(model);
    assert.equal(model.trainableParameters().length, model.base.model.namedParameters().length);
    await runTraining(model, countingData(), { learning_rate: 0.01, max_steps: 2, per_device_train_batch_size: 4, save_steps: 0 }, env(join(dir, 'full')));
    const after = weights(model);
    for (let i = 0; i < before.length; i++) assert.notDeepEqual(after[i][1], before[i][1], `${before[i][0]} did not change`);

    const cls = await inject(tinyClassifier(), tinyLoraMethod, LORA);
    const data = memoryDataset({ train: Array.from({ length: 8 }, (_, i) => example([i % 2 ? 3 : 9, 5, 6], 3, i % 2)) }, { vocabSize: 16, labelNames: ['a', 'b'] });
    const r = await runTraining(cls, data, { learning_rate: 0.1, max_steps: 15, per_device_train_batch_size: 8, save_steps: 0 }, env(join(dir, 'cls')));
    assert.equal(r.task, 'sequence-classification');
    assert.ok(r.lossHistory[14] < r.lossHistory[0] / 2, `${r.lossHistory[0]} -> ${r.lossHistory[14]}`);
  } finally {
    cleanup();
  }
});

test('the memory guard stops with a clear message', async () => {
  const { dir, cleanup } = scratch();
  try {
    await assert.rejects(
      runTraining(await loraModel(), countingData(), { max_steps: 3, per_device_train_batch_size: 2, max_memory_mb: 1e-6, save_steps: 0 }, env(dir)),
      /exceeds max_memory_mb = 0.000001 at step 1/,
    );
  } finally {
    cleanup();
  }
});

test('full fine-tuning of a real GPT-2 checkpoint on WASM trains the (tied) embeddings too', async () => {
  const { dir, cleanup } = scratch();
  try {
    const { loadPretrained } = await import('@peftkit/models');
    const { hfFixture } = await import('@peftkit/models/testing');
    const loaded = await loadPretrained(hfFixture('ckpt-gpt2-tiny-vocab'), { task: 'causal-lm' });
    const model = await inject(loaded, fullMethod, {});
    const wte = loaded.model.getInputEmbeddings().weight;
    const before = Array.from(wte.dataSync());
    const data = memoryDataset({ train: [example([1, 2, 3, 4, 5]), example([6, 7, 8, 9, 10, 11])] }, { vocabSize: 21 });
    const r = await runTraining(model, data, { learning_rate: 0.01, max_steps: 2, per_device_train_batch_size: 2, save_steps: 0 }, env(dir));
    assert.ok(r.lossHistory.every(Number.isFinite));
    assert.notDeepEqual(Array.from(wte.dataSync()), before);
  } finally {
    cleanup();
  }
});
