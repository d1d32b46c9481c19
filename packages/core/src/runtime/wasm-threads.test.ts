import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { busyCores, requestedWasmThreads, startWasm, WASM_THREADS_ENV } from './wasm-threads.js';
import { initBackend } from './backend.js';

test('the thread count comes from PEFTKIT_WASM_THREADS, else the idle cores, and a bad value names the variable', async () => {
  const load = (busy: number, cores = 2) => async () => ({ busy, cores });
  const never = async () => assert.fail('a number in the variable measures nothing');
  assert.equal(await requestedWasmThreads({ [WASM_THREADS_ENV]: '3' }, never), 3);
  assert.equal(await requestedWasmThreads({ [WASM_THREADS_ENV]: '64' }, never), 8); // the backend pre-starts 8 workers
  // Unset or auto: cores minus the busy ones, rounded, within [1, 8].
  assert.equal(await requestedWasmThreads({}, load(0.3)), 2);
  assert.equal(await requestedWasmThreads({ [WASM_THREADS_ENV]: 'auto' }, load(0.6)), 1);
  assert.equal(await requestedWasmThreads({}, load(2)), 1);
  assert.equal(await requestedWasmThreads({}, load(1, 32)), 8);
  await assert.rejects(requestedWasmThreads({ [WASM_THREADS_ENV]: 'two' }), /PEFTKIT_WASM_THREADS=two: must be a positive integer/);
  await assert.rejects(requestedWasmThreads({ [WASM_THREADS_ENV]: '0' }), /positive integer/);
});

test('the threaded build starts in Node with 2 threads, runs them, and computes products as exactly the same bits every time', async () => {
  const started = await startWasm({ threads: 2 });
  assert.deepEqual(started, { threads: 2, pool: 2 });
  assert.equal(tf.getBackend(), 'wasm');
  // 256 x 512 · 512 x 384 (XNNPACK splits the rows between the threads).
  const a = tf.tensor2d(Float32Array.from({ length: 256 * 512 }, (_, i) => Math.sin(i)), [256, 512]);
  const b = tf.tensor2d(Float32Array.from({ length: 512 * 384 }, (_, i) => Math.cos(i * 0.7)), [512, 384]);
  const y1 = tf.matMul(a, b).dataSync();
  const backend = tf.backend() as unknown as { wasm: { PThread: { runningWorkers: unknown[] } } };
  assert.ok(backend.wasm.PThread.runningWorkers.length >= 1, 'a pthread worker runs next to the main thread');
  const y2 = tf.matMul(a, b).dataSync();
  assert.deepEqual(y2, y1);
  // Against a float64 product: rows 0 and 255, every column.
  const av = a.dataSync();
  const bv = b.dataSync();
  for (const r of [0, 255]) {
    for (let c = 0; c < 384; c++) {
      let s = 0;
      for (let k = 0; k < 512; k++) s += av[r * 512 + k] * bv[k * 384 + c];
      assert.ok(Math.abs(y1[r * 384 + c] - s) < 1e-3, `[${r}, ${c}] ${y1[r * 384 + c]} vs ${s}`);
    }
  }
  // initBackend reports the running backend's threads (the backend is already set: it starts once).
  const info = await initBackend('wasm');
  assert.equal(info.threads, 2);
  assert.equal(info.poolThreads, 2);
  assert.match(info.detail, /tfjs-backend-wasm 4\.22\.0 \(SIMD, 2 threads\)/);
});

test('busyCores sees a core kept busy by a spinning worker', async () => {
  const { Worker } = await import('node:worker_threads');
  const idle = await busyCores(200);
  assert.equal(idle.cores, (await import('node:os')).availableParallelism());
  assert.ok(idle.busy >= 0 && idle.busy <= idle.cores);
  const w = new Worker('const end = Date.now() + 1500; while (Date.now() < end);', { eval: true });
  await new Promise((r) => setTimeout(r, 100));
  const spinning = await busyCores(400);
  await w.terminate();
  assert.ok(spinning.busy >= 0.7, `one spinning thread: ${spinning.busy.toFixed(2)} busy cores`);
});
