import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from './backend.js';
import { isWasmHeapError, wasmHeapBytes, WasmHeapExhausted } from './wasm-heap.js';

test('an allocation the 4 GiB WASM heap cannot hold throws WasmHeapExhausted naming the heap, and the backend keeps working', async () => {
  await initBackend('wasm');
  const before = wasmHeapBytes()!;
  assert.ok(before > 0);
  // A kernel output of 1.1e9 float32 = 4.4 GB: more than the heap can ever hold, so malloc fails
  // without touching memory.
  const one = tf.ones([1]);
  assert.throws(() => tf.tile(one, [1_100_000_000]), (e: unknown) => {
    assert.ok(e instanceof WasmHeapExhausted, String(e));
    assert.match((e as Error).message, /the WASM heap is full: allocating 4196\.\d MiB failed with the heap at \d+ MiB of its 4096 MiB limit/);
    assert.ok(isWasmHeapError(e));
    return true;
  });
  assert.ok(isWasmHeapError(new Error('RuntimeError: memory access out of bounds')));
  assert.ok(!isWasmHeapError(new Error('shapes do not match')));
  assert.deepEqual(Array.from(tf.add(tf.tensor1d([1, 2]), 1).dataSync()), [2, 3]);
});
