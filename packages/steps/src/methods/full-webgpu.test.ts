// The `full` method with keep_base_copy on WebGPU (llvmpipe where there is no GPU): injecting it and switching to the
// base weights and back read nothing synchronously, with weights that live only on the GPU (as after a training
// step: tfjs keeps a host copy only of values it uploaded). Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import { createModel, manualSeed, type PreTrainedModel } from '@peftkit/models';
import { TINY_CONFIGS, sampleIds } from '@peftkit/models/testing';
import { fullMethod } from './full.js';
import { inject } from '../training/testing/context.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP full method on WebGPU: ${reason}`);

before(async () => {
  if (!reason) await initBackend('webgpu');
});

const ids = () => sampleIds(2, 6, 50, 9);

/** One plain SGD step (lr 0.05) on every parameter, computed on the device: afterwards no weight has host values. */
function sgdStep(model: PreTrainedModel): void {
  const x = ids();
  const vars = model.namedParameters().map(([, v]) => v);
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
    const logits = model.forward({ inputIds: x }).logits as tf.Tensor3D;
    return tf.sum(tf.mul(logits, tf.sin(tf.range(0, logits.size).reshape(logits.shape)))) as tf.Scalar;
  }), vars);
  for (const v of vars) tf.tidy(() => v.assign(tf.sub(v, tf.mul(grads[v.name], 0.05))));
  tf.dispose([x, value, ...Object.values(grads)]);
}

/** The logits of a fixed batch, read back asynchronously. */
async function logits(forward: (x: tf.Tensor2D) => tf.Tensor): Promise<number[]> {
  const x = ids();
  const y = tf.tidy(() => forward(x));
  const out = Array.from(await y.data());
  tf.dispose([x, y]);
  return out;
}

test('keep_base_copy on webgpu: injected after a device step, trained on the device, then switched to the base and back', { skip: reason }, async () => {
  manualSeed(3);
  const model = createModel(TINY_CONFIGS.gpt2, 'causal-lm');
  model.requiresGrad(true);
  sgdStep(model); // weights now live only on the GPU
  const w = model.namedParameters()[0][1];
  assert.throws(() => w.dataSync(), /synchronous read/, 'the weights have no host copy (else this test would not test anything)');
  const base = await logits((x) => model.forward({ inputIds: x }).logits!);

  const peft = await inject({ model, source: 'tiny' }, fullMethod, { keep_base_copy: true });
  sgdStep(model);
  const trained = await logits((x) => peft.forward({ inputIds: x }).logits!);
  assert.notDeepEqual(trained, base, 'the step changed the model');

  const tensors = tf.memory().numTensors;
  peft.setActive([]);
  assert.deepEqual(await logits((x) => peft.forward({ inputIds: x }).logits!), base, 'disabled: the base weights, bit for bit');
  peft.setActive(['default']);
  assert.deepEqual(await logits((x) => peft.forward({ inputIds: x }).logits!), trained, 'enabled again: the trained weights, bit for bit');
  assert.equal(tf.memory().numTensors, tensors, 'switching leaves no tensors behind');
  model.dispose();
});
