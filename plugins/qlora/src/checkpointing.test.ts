import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { manualSeed, type PreTrainedModel } from '@peftkit/models';
import { injectQLora } from './model.js';
import { nf4Scheme } from './schemes.js';
import { tinyGpt2 } from './testing/tiny.js';

await initBackend('wasm');

/** Loss and LoRA gradients of a QLoRA model (NF4 base, LoRA dropout 0.2) in training mode, the stream seeded. */
async function lossAndGrads(checkpointing: boolean): Promise<{ loss: number; grads: Float32Array[] }> {
  const model: PreTrainedModel = tinyGpt2(2, 5);
  await nf4Scheme.quantize(model, { quant_type: 'nf4', blocksize: 64, double_quant: true });
  const h = injectQLora(model, { r: 2, lora_alpha: 4, lora_dropout: 0.2, target_modules: 'all-linear' }, { seed: 3 });
  // Non-zero B, so that A's gradients are not all zero.
  let s = 1;
  for (const [n, v] of h.trainableParameters()) if (n.includes('lora_B')) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', s++));
  if (checkpointing) assert.equal(model.gradientCheckpointingEnable(), 1);
  model.train();
  manualSeed(11);
  const ids = tf.tensor2d([[1, 4, 9, 2, 7, 3, 12, 5]], [1, 8], 'int32');
  const vars = h.trainableParameters().map(([, v]) => v);
  const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(model.forward({ inputIds: ids }).logits)) as tf.Scalar, vars);
  const out = { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync() as Float32Array) };
  tf.dispose([value, ids, ...Object.values(grads)]);
  model.dispose();
  return out;
}

test('QLoRA: gradient checkpointing over quantized blocks gives the same loss and LoRA gradients (dropout on)', async () => {
  const a = await lossAndGrads(false);
  const b = await lossAndGrads(true);
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
  assert.equal(a.grads.length, b.grads.length);
  for (let i = 0; i < a.grads.length; i++) {
    let d = 0;
    for (let j = 0; j < a.grads[i].length; j++) d = Math.max(d, Math.abs(a.grads[i][j] - b.grads[i][j]));
    assert.ok(d < 1e-5, `gradient ${i} differs by ${d}`);
    assert.ok(a.grads[i].some((x) => x !== 0), `gradient ${i} is zero`);
  }
});
