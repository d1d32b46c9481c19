// PeftkitDropout on WebGPU (llvmpipe where there is no GPU) against Random123's known answers and the plain-TypeScript
// reference (../reference/philox.ts). Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import '../../index.js'; // registers peftkit's kernels when a backend starts
import { dropoutReference } from '../reference/philox.js';
import { DROPOUT_KERNEL, PHILOX_WGSL } from './dropout.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU dropout kernel: ${reason}`);

before(async () => {
  if (!reason) await initBackend('webgpu');
});

/** Runs the WGSL Philox on one counter and key and returns its four words (a test-only program). */
async function philoxOnDevice(counter: number[], key: number[]): Promise<number[]> {
  const program = {
    outputShape: [4], shaderKey: 'peftkit_philox_kat', dispatchLayout: { x: [0] }, dispatch: [1, 1, 1] as [number, number, number],
    variableNames: [], workgroupSize: [1, 1, 1] as [number, number, number], size: true,
    uniforms: 'c0 : u32, c1 : u32, c2 : u32, c3 : u32, k0 : u32, k1 : u32,',
    getUserCode: () => `${PHILOX_WGSL}
fn main(index : i32) {
  if (index == 0) {
    let w = philox4x32_10(vec4<u32>(uniforms.c0, uniforms.c1, uniforms.c2, uniforms.c3), vec2<u32>(uniforms.k0, uniforms.k1));
    for (var j = 0; j < 4; j++) { result[j] = bitcast<i32>(w[j]); }
  }
}`,
  };
  const backend = tf.backend() as unknown as { runWebGPUProgram(p: unknown, i: tf.TensorInfo[], d: tf.DataType, u: unknown[]): tf.TensorInfo };
  const info = backend.runWebGPUProgram(program, [], 'int32', [...counter, ...key].map((v) => ({ type: 'uint32', data: [v] })));
  const t = tf.engine().makeTensorFromTensorInfo(info);
  const words = Array.from(await t.data(), (v) => v >>> 0);
  t.dispose();
  return words;
}

const dropout = (x: tf.Tensor, rate: number, seed0: number, seed1: number) => tf.engine().runKernel(DROPOUT_KERNEL, { x }, { rate, seed0, seed1 }) as tf.Tensor;

test('the WGSL Philox4x32-10 gives Random123\'s known answers (kat_vectors)', { skip: reason }, async () => {
  assert.deepEqual(await philoxOnDevice([0, 0, 0, 0], [0, 0]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
  assert.deepEqual(await philoxOnDevice([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
  assert.deepEqual(await philoxOnDevice([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]), [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]);
});

test('PeftkitDropout equals the TypeScript reference bit for bit (sizes not a multiple of 4, several rates and seeds)', { skip: reason }, async () => {
  const n = 4099;
  const xs = Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37) * 3 + 0.1);
  const x = tf.tensor2d(xs, [1, n]);
  for (const [rate, s0, s1] of [[0.1, 0, 0], [0.5, 123, 0xdeadbeef], [0.9, 0xffffffff, 7], [0, 5, 5]] as const) {
    const y = dropout(x, rate, s0, s1);
    assert.deepEqual(y.shape, [1, n]);
    const got = (await y.data()) as Float32Array;
    y.dispose();
    const want = dropoutReference(xs, rate, s0, s1);
    let mismatches = 0;
    for (let i = 0; i < n; i++) if (got[i] !== want[i]) mismatches++;
    assert.equal(mismatches, 0, `rate ${rate}, seeds ${s0}/${s1}: ${mismatches} of ${n} elements differ`);
    const dropped = want.filter((v) => v === 0).length / n;
    assert.ok(Math.abs(dropped - rate) < 0.03, `rate ${rate}: dropped ${dropped}`);
  }
  x.dispose();
});

test('the gradient is the same mask times the scale, redrawn from the counter', { skip: reason }, async () => {
  const x = tf.randomNormal([3, 37], 0, 1, 'float32', 1);
  const g = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(dropout(t, 0.3, 9, 10), 2)))(x);
  const want = dropoutReference(new Float32Array(3 * 37).fill(2), 0.3, 9, 10);
  assert.deepEqual(Array.from(await g.data()), Array.from(want));
  tf.dispose([x, g]);
});
