// Every PEFT method on the WebGPU backend (llvmpipe where there is no GPU): the logits and the gradients of the
// trainable tensors equal the CPU backend's, on a tiny GPT-2 and a tiny Llama. LoRA and QLoRA have their own
// WebGPU tests (plugins/lora, plugins/qlora). Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable, type PeftMethod } from '@peftkit/core';
import { createModel, manualSeed } from '@peftkit/models';
import { TINY_CONFIGS, sampleIds } from '@peftkit/models/testing';
import { houlsbyMethod, parallelAdapterMethod, pfeifferMethod } from '@peftkit/adapter';
import { prefixTuningMethod, promptTuningMethod } from '@peftkit/prefix-tuning';
import { fullMethod } from '../../packages/steps/src/methods/full.js';
import { inject } from '../../packages/steps/src/training/testing/context.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU methods: ${reason}`);

const METHODS: [string, PeftMethod, Record<string, unknown>][] = [
  ['houlsby', houlsbyMethod as unknown as PeftMethod, { reduction_factor: 4 }],
  ['pfeiffer', pfeifferMethod as unknown as PeftMethod, { reduction_factor: 4 }],
  ['parallel-adapter', parallelAdapterMethod as unknown as PeftMethod, { reduction_factor: 4 }],
  ['prefix-tuning', prefixTuningMethod as unknown as PeftMethod, { num_virtual_tokens: 3 }],
  ['prompt-tuning', promptTuningMethod as unknown as PeftMethod, { num_virtual_tokens: 3 }],
  ['full', fullMethod as unknown as PeftMethod, {}],
];

/** Logits and the gradient of every trainable tensor of a loss that weighs each logit differently. */
async function run(method: PeftMethod, config: Record<string, unknown>, arch: 'gpt2' | 'llama'): Promise<Float32Array[]> {
  manualSeed(3);
  const model = createModel(TINY_CONFIGS[arch], 'causal-lm');
  const peft = await inject({ model, source: 'tiny' }, method, config, 5);
  const ids = sampleIds(2, 6, 50, 9);
  const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], [2, 6], 'int32');
  const vars = peft.trainableParameters().map(([, v]) => v);
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => {
    const logits = peft.forward({ inputIds: ids, attentionMask: mask }).logits;
    return tf.sum(tf.mul(logits, tf.sin(tf.range(0, logits.size).reshape(logits.shape)))) as tf.Scalar;
  }), vars);
  const logits = tf.tidy(() => peft.forward({ inputIds: ids, attentionMask: mask }).logits);
  const out = [(await logits.data()) as Float32Array, (await value.data()) as Float32Array];
  for (const v of vars) out.push((await grads[v.name].data()) as Float32Array);
  tf.dispose([ids, mask, logits, value, ...Object.values(grads)]);
  model.dispose();
  return out;
}

for (const [name, method, config] of METHODS) {
  for (const arch of ['gpt2', 'llama'] as const) {
    test(`${name} on ${arch}: logits and gradients on webgpu equal the CPU backend's (relative 1e-4)`, { skip: reason }, async () => {
      await initBackend('cpu');
      const cpu = await run(method, config, arch);
      assert.equal((await initBackend('webgpu')).name, 'webgpu');
      const gpu = await run(method, config, arch);
      assert.equal(tf.getBackend(), 'webgpu');
      assert.equal(gpu.length, cpu.length);
      assert.ok(cpu.length >= 3, 'at least one trainable tensor');
      cpu.forEach((want, k) => {
        const got = gpu[k];
        const scale = Math.max(...Array.from(want, Math.abs));
        const diff = Math.max(...Array.from(want, (w, i) => Math.abs(w - got[i])));
        // Absolute floor 1e-6: key biases' gradients are zero in exact arithmetic (rounding noise on both backends).
        assert.ok(diff <= 1e-4 * scale + 1e-6, `${k === 0 ? 'logits' : k === 1 ? 'loss' : `gradient ${k - 2}`}: max |diff| ${diff} vs scale ${scale}`);
      });
    });
  }
}
