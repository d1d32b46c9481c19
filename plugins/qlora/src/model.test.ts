import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Conv1D, Linear } from '@peftkit/models';
import { LoraLayer, injectLora } from '@peftkit/lora';
import { QLORA_DEFAULTS, injectQLora, qloraConfigSchema } from './model.js';
import { qloraMethod } from './method.js';
import { QuantLinear } from './quant-linear.js';
import { quantizeModel, quantizedLayers } from './quantize-model.js';
import { Weight4bit } from './quantized-weight.js';
import { tinyGpt2, tinyLlama } from './testing/tiny.js';

before(async () => {
  await initBackend('wasm');
});

const ids = () => tf.tensor2d([[1, 5, 2, 7, 3, 4]], [1, 6], 'int32');
const logits = (m: { forward(i: { inputIds: tf.Tensor2D }): { logits: tf.Tensor } }) => m.forward({ inputIds: ids() }).logits;
const diff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

test('QLoRA defaults are the recipe (all linear layers, r 64, alpha 16, dropout 0.1) on LoRA\'s schema', () => {
  assert.deepEqual({ ...QLORA_DEFAULTS }, { r: 64, lora_alpha: 16, lora_dropout: 0.1, target_modules: 'all-linear' });
  assert.equal(qloraConfigSchema.properties.r.default, 64);
  assert.equal(qloraConfigSchema.properties.use_rslora.default, false); // the rest is LoRA's
  assert.equal(qloraMethod.peftType, 'LORA');
  assert.deepEqual(qloraMethod.validateConfig!({ target_modules: '(' }).map((i) => i.pointer), ['/target_modules']);
});

test('inject: LoRA wraps every quantized linear layer; adapters are float32, the only trainable tensors; output unchanged at init', () => {
  const m = tinyLlama(1);
  quantizeModel(m, {});
  const y0 = logits(m);
  const h = injectQLora(m, { r: 4 }, { seed: 1 });
  assert.equal(h.method, 'qlora');
  assert.equal(h.config.r, 4);
  assert.equal(h.config.lora_alpha, 16); // QLoRA default
  assert.equal(h.config.lora_dropout, 0.1);
  assert.deepEqual([...h.lora.layers.keys()].map((k) => k.split('.').pop()), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  for (const l of h.lora.layers.values()) assert.ok(l.baseLayer instanceof QuantLinear);
  const trainable = m.trainableParameters();
  assert.equal(trainable.length, 14);
  assert.ok(trainable.every(([n, v]) => /lora_[AB]/.test(n) && v.dtype === 'float32'));
  assert.ok(diff(y0, logits(m)) < 1e-6); // B = 0
  const r = h.parameterReport();
  assert.equal(r.total - h.lora.parameterReport().total, 1920); // quantized weights counted as parameters
  assert.equal(h.adapterConfig().peft_type, 'LORA');
  h.dispose();
  m.dispose();
});

test('on a quantized GPT-2 (Conv1D layers) the config records fan_in_fan_out: true, as for the float model, without a warning', () => {
  const m = tinyGpt2(1);
  quantizeModel(m, {});
  const h = injectQLora(m, { r: 2 }, { seed: 1 });
  assert.ok([...h.lora.layers.values()].every((l) => l.baseLayer instanceof QuantLinear));
  assert.equal(h.adapterConfig().fan_in_fan_out, true);
  assert.deepEqual(h.lora.warnings, []);
  h.dispose();
  m.dispose();
});

test('a QLoRA training step: gradients reach A and B through the 4-bit layers, the packed weights do not change', () => {
  const m = tinyGpt2(1);
  quantizeModel(m, { blocksize: 32 });
  const h = injectQLora(m, { r: 2, lora_dropout: 0, init_lora_weights: false }, { seed: 2 });
  const packed = quantizedLayers(m).map(([, q]) => Array.from((q.weight as Weight4bit).packed));
  const opt = tf.train.sgd(0.5);
  const loss = () => tf.mean(tf.square(logits(m))) as tf.Scalar;
  const l0 = loss().dataSync()[0];
  for (let i = 0; i < 3; i++) opt.minimize(loss, false, h.trainableParameters().map(([, v]) => v));
  const l1 = loss().dataSync()[0];
  assert.ok(l1 < l0, `loss ${l0} → ${l1}`);
  assert.deepEqual(quantizedLayers(m).map(([, q]) => Array.from((q.weight as Weight4bit).packed)), packed);
  h.dispose();
  m.dispose();
});

test('merge(): float32 merge through a held float copy; unmerge() restores the exact quantized layers', () => {
  const m = tinyGpt2(1);
  quantizeModel(m, { blocksize: 32 });
  const h = injectQLora(m, { r: 2, init_lora_weights: false }, { seed: 3 });
  m.eval();
  const y = logits(m);
  h.merge();
  for (const l of h.lora.layers.values()) assert.ok((l.baseLayer as QuantLinear).isMaterialized);
  assert.ok(diff(y, logits(m)) < 1e-4, 'merged output = adapter output');
  h.unmerge();
  for (const l of h.lora.layers.values()) assert.ok(!(l.baseLayer as QuantLinear).isMaterialized);
  assert.ok(diff(y, logits(m)) < 1e-6, 'unmerged: as before');
  h.dispose();
  m.dispose();
});

test('merging into packed storage directly is refused with a clear error; mergeAndUnload needs a float32 (or requantize) target', () => {
  const m = tinyGpt2(1);
  quantizeModel(m, { blocksize: 32 });
  const lora = injectLora(m, { target_modules: ['c_attn'], r: 2, init_lora_weights: false }, { seed: 4 }); // plain LoRA on a 4-bit base
  assert.ok((m.getSubmodule('transformer.h.0.attn.c_attn') as LoraLayer).baseLayer instanceof QuantLinear);
  assert.throws(() => lora.merge(), (e: unknown) => e instanceof UserError && /cannot add a float update to transformer\.h\.0\.attn\.c_attn: its weight is stored as nf4 codes/.test(e.message));
  lora.dispose();
  const h = injectQLora(m, { r: 2 }, { seed: 5 });
  assert.throws(() => h.mergeAndUnload({ target: 'nf4' as never }), (e: unknown) => e instanceof UserError && /merge target "nf4" is not supported/.test(e.message) && /never add a float update into 4-bit storage/.test(e.details.hint ?? ''));
  h.dispose();
  m.dispose();
});

test('mergeAndUnload(): a float32 model (Conv1D back for GPT-2) with the same outputs; "requantize" = quantizing that float32 merge', () => {
  const build = () => {
    const m = tinyGpt2(1);
    quantizeModel(m, { blocksize: 32 });
    const h = injectQLora(m, { r: 2, init_lora_weights: false, target_modules: ['c_attn', 'c_fc'] }, { seed: 6 });
    m.eval();
    return { m, h };
  };
  const a = build();
  const y = logits(a.m);
  assert.equal(a.h.mergeAndUnload({ target: 'float32' }), a.m);
  assert.equal(a.m.trainableParameters().length, 0);
  assert.equal(quantizedLayers(a.m).length, 0);
  for (const n of ['attn.c_attn', 'attn.c_proj', 'mlp.c_fc', 'mlp.c_proj']) assert.ok(a.m.getSubmodule(`transformer.h.0.${n}`) instanceof Conv1D, n);
  assert.ok(diff(y, logits(a.m)) < 1e-4, `float32 merge changes the outputs by ${diff(y, logits(a.m))}`);

  const b = build(); // the same model and adapter again
  const warnings: string[] = [];
  b.h.mergeAndUnload({ target: 'requantize' }, { warn: (s: string) => void warnings.push(s), info() {}, debug() {}, error() {} });
  assert.match(warnings.join('\n'), /rounded to the quantization grid/);
  assert.equal(quantizedLayers(b.m).length, 4);
  for (const n of ['attn.c_attn', 'mlp.c_fc']) {
    const q = b.m.getSubmodule(`transformer.h.0.${n}`) as QuantLinear;
    const merged = a.m.getSubmodule(`transformer.h.0.${n}`) as Conv1D; // [in, out]
    const wT = tf.tidy(() => merged.weight.transpose().dataSync().slice()) as Float32Array;
    const expected = Weight4bit.quantize(wT, q.weight.shape, { quantType: 'nf4', blocksize: 32, doubleQuant: true });
    assert.deepEqual(Array.from((q.weight as Weight4bit).packed), Array.from(expected.packed), n);
  }
  a.m.dispose();
  b.m.dispose();
});

test('inject without a quantize step: UserError pointing at the missing step', () => {
  const m = tinyLlama(1);
  assert.throws(() => injectQLora(m, {}), (e: unknown) => e instanceof UserError && /needs a quantized base/.test(e.message) && /quantize step/.test(e.details.hint ?? ''));
  assert.ok(m.getSubmodule('model.layers.0.self_attn.q_proj') instanceof Linear);
  m.dispose();
});

test('use_dora on a quantized base: UserError at /use_dora, the model left as it was', () => {
  const m = tinyLlama(1);
  quantizeModel(m, {});
  assert.throws(() => injectQLora(m, { r: 2, use_dora: true }), (e: unknown) => e instanceof UserError && e.details.pointer === '/use_dora' && /use_dora/.test(e.message) && /method "lora"/.test(e.details.hint ?? ''));
  assert.ok(m.getSubmodule('model.layers.0.self_attn.q_proj') instanceof QuantLinear);
  m.dispose();
});

test('a DoRA adapter loaded with method lora onto a 4-bit base: the norm uses the dequantized weight (at init it equals LoRA with the same A, B); merging is refused', () => {
  const m = tinyLlama(1);
  quantizeModel(m, {});
  const plain = injectLora(m, { target_modules: ['q_proj', 'v_proj'], r: 2, init_lora_weights: false }, { adapterName: 'plain', seed: 4 });
  const dora = injectLora(m, { target_modules: ['q_proj', 'v_proj'], r: 2, init_lora_weights: false, use_dora: true }, { adapterName: 'dora', seed: 4 });
  const q = m.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLayer;
  assert.ok(q.baseLayer instanceof QuantLinear);
  assert.equal(diff(q.loraWeights('plain').B, q.loraWeights('dora').B), 0, 'same seed, same A and B');
  dora.setEnabled(false);
  const yPlain = logits(m);
  plain.setEnabled(false);
  dora.setEnabled(true);
  const yDora = logits(m);
  dora.setEnabled(false);
  assert.ok(diff(yPlain, logits(m)) > 1e-4, 'the adapters change the output');
  assert.ok(diff(yDora, yPlain) < 1e-5, `DoRA at init = LoRA: ${diff(yDora, yPlain)}`);
  dora.setEnabled(true);
  assert.throws(() => dora.merge(), (e: unknown) => e instanceof UserError && /cannot add a float update/.test(e.message));
  m.dispose();
});
