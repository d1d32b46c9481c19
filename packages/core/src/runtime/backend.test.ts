import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, onBackendReady } from './backend.js';

test('auto falls back past the uninstalled native backends to WASM and says why', async () => {
  const seen: string[] = [];
  onBackendReady((b) => {
    seen.push(b);
    return b === 'wasm' ? 'a note from an installer' : undefined;
  });
  const info = await initBackend('auto');
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.match(info.detail, /tfjs-backend-wasm 4\.22\.0 .*; a note from an installer$/);
  // This machine has no GPU: WebGPU is tried and skipped (llvmpipe is software, never picked by auto).
  assert.deepEqual(info.skipped.map((s) => s.split(':')[0]), ['tensorflow-gpu', 'webgpu', 'tensorflow']);
  assert.match(info.skipped[1], /no GPU adapter|only a software adapter/);
  assert.equal(info.adapter, undefined);
  assert.match(info.skipped[0], /@tensorflow\/tfjs-node-gpu is not installed/);
  assert.equal(seen.at(-1), 'wasm');
});

test('an explicit backend that is not installed is an error naming the package', async () => {
  await assert.rejects(initBackend('tensorflow'), /@tensorflow\/tfjs-node is not installed/);
  const cpu = await initBackend('cpu');
  assert.equal(cpu.name, 'cpu');
});
