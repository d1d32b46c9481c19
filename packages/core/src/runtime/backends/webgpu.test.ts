import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend.js';
import { webgpuUnavailable } from './webgpu.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU tests: ${reason}`);

test('an explicit webgpu choice starts on llvmpipe here and names the adapter', { skip: reason }, async () => {
  const info = await initBackend('webgpu');
  assert.equal(info.name, 'webgpu');
  assert.equal(tf.getBackend(), 'webgpu');
  assert.ok(info.adapter, 'the adapter is recorded');
  assert.match(info.detail, /tfjs-backend-webgpu 4\.22\.0 on Dawn \(webgpu 0\.6\.2, (opengles|vulkan)\)/);
  if (info.adapter.dawnBackend === 'opengles') {
    assert.equal(info.adapter.software, true);
    assert.match(info.adapter.device, /llvmpipe/);
    assert.match(info.adapter.description, /OpenGL ES/);
  }
  // A product that exercises a real kernel: equal to the CPU backend's.
  const a = [[1, 2, 3], [4, 5, 6]];
  const b = [[0.5, -1], [2, 0.25], [-3, 4]];
  const got = await tf.matMul(a, b).array();
  assert.deepEqual(got, [[-4.5, 11.5], [-6, 21.25]]);
});
