import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { startWasm } from './wasm-threads.js';

test('a threaded start that fails falls back to one thread, says why, and computes', async () => {
  // A worker that dies on load: the threaded build never becomes ready.
  const started = await startWasm({ threads: 2, workerScript: () => 'throw new Error("no worker here")' });
  assert.equal(started.threads, 1);
  assert.equal(started.pool, 1);
  assert.match(started.fallback ?? '', /a pthread worker failed: no worker here/);
  assert.equal(tf.getBackend(), 'wasm');
  assert.deepEqual(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()), [11]);
});
