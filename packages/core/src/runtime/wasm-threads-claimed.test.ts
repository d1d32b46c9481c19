import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { claimWasmThreads } from './wasm-threads.js';
import { initBackend } from './backend.js';

test('a package that claims the WASM threads gets them all while XNNPACK\'s pool runs one, on shared memory', async () => {
  const prev = process.env.PEFTKIT_WASM_THREADS;
  process.env.PEFTKIT_WASM_THREADS = '2';
  let asked = 0;
  claimWasmThreads(() => (asked++, true));
  try {
    const info = await initBackend('wasm');
    assert.equal(asked, 1, 'the claim is asked once, as the backend starts');
    assert.equal(info.threads, 2);
    assert.equal(info.poolThreads, 1);
    assert.match(info.detail, /\(SIMD, 2 threads, XNNPACK's pool 1\)/);
    // Still the threaded build: its memory is shared, which the claimant's workers need.
    const backend = tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } };
    assert.ok(backend.wasm.HEAPU8.buffer instanceof SharedArrayBuffer, 'the heap is a SharedArrayBuffer');
    assert.deepEqual(Array.from(tf.matMul(tf.tensor2d([[1, 2]]), tf.tensor2d([[3], [4]])).dataSync()), [11]);
  } finally {
    if (prev === undefined) delete process.env.PEFTKIT_WASM_THREADS;
    else process.env.PEFTKIT_WASM_THREADS = prev;
  }
});
