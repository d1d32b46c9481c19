// QLoRA storage on the WebGPU backend (llvmpipe where there is no GPU): through the registered schemes, weights that
// already live on the device are downloaded (readToHost), quantized on the host, and dequantized by the forward pass on the device, with the CPU
// backend's logits. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import { quantizeModel, quantizedLayers } from './quantize-model.js';
import { int8Scheme, nf4Scheme } from './schemes.js';
import { tinyGpt2, tinyLlama } from './testing/tiny.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU QLoRA: ${reason}`);

const ids = () => tf.tensor2d([[1, 5, 9, 2, 7, 3], [4, 4, 8, 0, 6, 1]], [2, 6], 'int32');

for (const [name, make, quant_type] of [['GPT-2 (Conv1D), nf4', () => tinyGpt2(2, 7), 'nf4'], ['Llama (Linear), int8', () => tinyLlama(2, 7), 'int8']] as const) {
  test(`${name}: quantized on webgpu after a forward pass, the logits equal the CPU backend's`, { skip: reason }, async () => {
    await initBackend('cpu');
    const ref = make();
    quantizeModel(ref, { quant_type });
    const want = await tf.tidy(() => ref.forward({ inputIds: ids() }).logits).data();
    ref.dispose();

    await initBackend('webgpu');
    const model = make();
    tf.dispose(model.forward({ inputIds: ids() }).logits); // the weights are on the device now
    await (quant_type === 'nf4' ? nf4Scheme : int8Scheme).quantize(model, {});
    assert.ok(quantizedLayers(model).length >= 4, 'linear layers are quantized');
    const got = await tf.tidy(() => model.forward({ inputIds: ids() }).logits).data();
    model.dispose();
    const scale = Math.max(...Array.from(want, Math.abs));
    const diff = Math.max(...Array.from(want, (w, i) => Math.abs(w - got[i])));
    assert.ok(diff <= 1e-4 * scale, `max |diff| ${diff} vs scale ${scale}`);
  });
}
