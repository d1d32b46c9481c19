import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { disposeCheckpoint, latestCheckpointFolder, listCheckpoints, loadCheckpoint, saveCheckpoint, type Checkpoint } from './checkpoints.js';
import { scratch } from './testing/context.js';

await initBackend('wasm');

function ckpt(step: number): Checkpoint {
  return {
    step,
    weights: new Map([['base_model.model.h.0.lora_A.weight', tf.fill([2, 3], step)]]),
    optimizer: { step, expAvg: new Map([['base_model.model.h.0.lora_A.weight', tf.fill([2, 3], 0.5)]]), expAvgSq: new Map([['base_model.model.h.0.lora_A.weight', tf.fill([2, 3], 0.25)]]) },
    state: { global_step: step, epoch: step / 4, scheduler_last_step: step, data_state: { epoch: 0, batch: step }, rng_state: 1234 + step, log_history: [{ global_step: step, loss: 1 / step }], loss_history: [1, 0.5], best_eval_loss: null, patience_counter: 0, tokens_seen: 10 * step },
  };
}

test('save / load round trip; latest pointer; pruning keeps the newest save_total_limit', () => {
  const { dir, cleanup } = scratch();
  try {
    for (const s of [2, 4, 6]) {
      const c = ckpt(s);
      saveCheckpoint(dir, c, 2);
      disposeCheckpoint(c);
    }
    assert.deepEqual(listCheckpoints(dir).map((c) => c.step), [4, 6]);
    assert.equal(readFileSync(join(dir, 'latest'), 'utf8'), 'step-6\n');
    assert.deepEqual(readdirSync(dir).filter((n) => n.startsWith('.')), [], 'no temporary folders left');
    const back = loadCheckpoint(latestCheckpointFolder(dir)!);
    assert.equal(back.step, 6);
    assert.equal(back.optimizer.step, 6);
    assert.deepEqual(Array.from(back.weights.get('base_model.model.h.0.lora_A.weight')!.dataSync()), Array(6).fill(6));
    assert.deepEqual(Array.from(back.optimizer.expAvgSq.get('base_model.model.h.0.lora_A.weight')!.dataSync()), Array(6).fill(0.25));
    assert.deepEqual(back.state.data_state, { epoch: 0, batch: 6 });
    assert.equal(back.state.rng_state, 1240);
    disposeCheckpoint(back);
  } finally {
    cleanup();
  }
});

test('a half-written checkpoint (no trainer_state.json) or a dangling pointer is skipped for the last complete one', () => {
  const { dir, cleanup } = scratch();
  try {
    const c = ckpt(3);
    saveCheckpoint(dir, c);
    disposeCheckpoint(c);
    // A crash mid-write leaves a folder without its state file, and maybe a pointer to it.
    mkdirSync(join(dir, 'step-5'));
    writeFileSync(join(dir, 'step-5', 'model.safetensors'), 'partial');
    writeFileSync(join(dir, 'latest'), 'step-5\n');
    assert.equal(latestCheckpointFolder(dir), join(dir, 'step-3'));
    rmSync(join(dir, 'latest'));
    assert.equal(latestCheckpointFolder(dir), join(dir, 'step-3'));
    assert.equal(latestCheckpointFolder(join(dir, 'none')), undefined);
    assert.ok(!existsSync(join(dir, 'none')));
  } finally {
    cleanup();
  }
});
