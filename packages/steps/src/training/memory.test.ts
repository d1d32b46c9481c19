import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UserError, WasmHeapExhausted } from '@peftkit/core';
import { heapExhaustedError } from './memory.js';

test('a step that runs out of the WASM heap becomes a UserError naming the step, the heap and what to lower', () => {
  for (const cause of [new WasmHeapExhausted(3 * 2 ** 30, 3.5 * 2 ** 30), new Error('RuntimeError: memory access out of bounds')]) {
    const e = heapExhaustedError(cause, 7);
    assert.ok(e instanceof UserError);
    assert.match(e.message, /^step 7 does not fit in the WASM heap \(4 GiB, the backend's limit\): /);
    assert.match(e.details.hint ?? '', /lower per_device_train_batch_size .* lower the dataset's max_length/);
  }
  assert.match(heapExhaustedError(new WasmHeapExhausted(2 ** 30, 3 * 2 ** 30), 1)!.message, /allocating 1024\.0 MiB failed with the heap at 3072 MiB/);
  assert.equal(heapExhaustedError(new Error('shapes [2] and [3] do not match'), 1), undefined);
});
