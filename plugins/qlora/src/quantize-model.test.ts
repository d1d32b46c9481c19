import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Conv1D, Linear, createModel, manualSeed, type ModelConfig } from '@peftkit/models';
import { createQuantizedModel, dequantizeModel, quantConfigIssues, quantizeModel, quantizedLayers } from './quantize-model.js';
import type { Weight4bit } from './quantized-weight.js';
import { QuantLinear } from './quant-linear.js';
import { tinyGpt2, tinyLlama } from './testing/tiny.js';

before(async () => {
  await initBackend('wasm');
});

const ids = () => tf.tensor2d([[1, 5, 2, 7, 3]], [1, 5], 'int32');

test('default selection: every Linear/Conv1D but the output head; tied heads are never touched', () => {
  const gpt = tinyGpt2(1);
  const r = quantizeModel(gpt, {});
  assert.deepEqual(r.quantized_modules, ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_fc', 'transformer.h.0.mlp.c_proj']);
  assert.deepEqual(r.skipped_modules, []); // lm_head is tied to wte (not a Linear)
  assert.equal(r.quant_type, 'nf4');
  assert.equal(r.blocksize, 64);
  assert.equal(r.double_quant, true);
  assert.ok(gpt.getSubmodule('transformer.wte')!.parameter('weight')!.size > 0);

  const llama = tinyLlama(1);
  const rl = quantizeModel(llama, { quant_type: 'fp4', double_quant: false });
  assert.deepEqual(rl.quantized_modules.map((n) => n.split('.').pop()), ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
  assert.deepEqual(rl.skipped_modules, [{ name: 'lm_head', reason: 'output head' }]);
  assert.ok(llama.getSubmodule('lm_head') instanceof Linear);
  assert.equal(rl.quantization_config.bnb_4bit_quant_type, 'fp4');
  assert.equal(rl.quantization_config.load_in_4bit, true);
  // 1920 values (q 256, k 128, v 128, o 256, gate/up/down 384 each), all in full blocks of 64:
  // 960 packed bytes + 30 float32 absmax = 1080 bytes = 4.5 bits per parameter.
  assert.equal(rl.quantized_parameters, 1920);
  assert.equal(rl.quantized_bytes, 1080);
  assert.equal(rl.bits_per_parameter, 4.5);
  assert.equal(rl.float32_bytes, 1920 * 4);
  gpt.dispose();
  llama.dispose();
});

test('quantized outputs stay close to float32 outputs; dequantizeModel restores Linear/Conv1D with code·absmax weights', () => {
  const m = tinyGpt2(1);
  const y0 = m.forward({ inputIds: ids() }).logits;
  quantizeModel(m, { blocksize: 32 });
  const y1 = m.forward({ inputIds: ids() }).logits;
  const err = tf.tidy(() => tf.max(tf.abs(tf.sub(y0, y1))).dataSync()[0]);
  assert.ok(err > 0 && err < 0.02, `NF4 error ${err}`);
  const q = m.getSubmodule('transformer.h.0.mlp.c_fc') as QuantLinear;
  const dense = q.denseWeight();
  const names = dequantizeModel(m);
  assert.equal(names.length, 4);
  const c = m.getSubmodule('transformer.h.0.mlp.c_fc');
  assert.ok(c instanceof Conv1D);
  assert.equal(tf.tidy(() => tf.max(tf.abs(tf.sub((c as Conv1D).weight, dense.transpose()))).dataSync()[0]), 0);
  const y2 = m.forward({ inputIds: ids() }).logits;
  assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(y1, y2))).dataSync()[0]) < 1e-5);
  assert.equal(quantizedLayers(m).length, 0);
  tf.dispose([y0, y1, y2, dense]);
  m.dispose();
});

test('target_modules, modules_to_not_convert (replaces the head default) and keep_in_fp32_modules', () => {
  const a = tinyLlama(1);
  const r = quantizeModel(a, { target_modules: ['q_proj', 'v_proj', 'lm_head'], modules_to_not_convert: [], keep_in_fp32_modules: ['v_proj'] });
  assert.deepEqual(r.quantized_modules, ['model.layers.0.self_attn.q_proj', 'lm_head']); // [] replaces the default: the head is quantized
  assert.deepEqual(r.skipped_modules.find((s) => s.name.endsWith('v_proj')), { name: 'model.layers.0.self_attn.v_proj', reason: 'modules_to_not_convert / keep_in_fp32_modules' });
  const b = tinyLlama(1);
  const rb = quantizeModel(b, { modules_to_not_convert: ['model.layers.0.mlp', 'lm_head'], target_modules: '.*layers\\.0\\..*' });
  assert.deepEqual(rb.quantized_modules.map((n) => n.split('.').pop()), ['q_proj', 'k_proj', 'v_proj', 'o_proj']);
  assert.ok(b.getSubmodule('model.layers.0.mlp.up_proj') instanceof Linear);
  a.dispose();
  b.dispose();
});

test('bad settings: clear errors naming the field', () => {
  assert.deepEqual(quantConfigIssues({ blocksize: 96 }).map((i) => [i.pointer, i.message]), [['/blocksize', 'blocksize 96 is not a power of two']]);
  assert.match(quantConfigIssues({ target_modules: '(' })[0].message, /not a valid regular expression/);
  const m = tinyGpt2(1);
  assert.throws(() => quantizeModel(m, { blocksize: 48 }), (e: unknown) => e instanceof UserError && /\/blocksize: blocksize 48 is not a power of two/.test(e.message) && /32, 64/.test(e.details.hint ?? ''));
  assert.throws(() => quantizeModel(m, { target_modules: ['nope'] }), (e: unknown) => e instanceof UserError && /no linear layer to quantize/.test(e.message) && /transformer\.h\.0\.attn\.c_attn/.test(e.details.hint ?? ''));
  assert.equal(quantizedLayers(m).length, 0); // nothing changed
  m.dispose();
});

test('createQuantizedModel builds block by block and gives what quantizeModel gives on the float32 model', () => {
  const cfgLlama = { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 19, max_position_embeddings: 32, tie_word_embeddings: false };
  const cfgGpt2 = { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 23, n_positions: 16 };
  const cases: [Record<string, unknown>, Record<string, unknown>][] = [
    [cfgLlama, {}],
    [cfgLlama, { quant_type: 'fp4', double_quant: false, modules_to_not_convert: [], keep_in_fp32_modules: ['v_proj'] }], // lm_head (outside the blocks) quantized after the build
    [cfgGpt2, { blocksize: 32 }], // Conv1D layers
  ];
  for (const [config, quant] of cases) {
    manualSeed(11);
    const ref = createModel(config as ModelConfig, 'causal-lm');
    const refReport = quantizeModel(ref, quant);
    manualSeed(11);
    const done: string[] = [];
    const { model, report } = createQuantizedModel(config as ModelConfig, quant, { task: 'causal-lm', onBlockDone: (p) => done.push(p) });
    assert.deepEqual(report, refReport, `${config.model_type} ${JSON.stringify(quant)}`);
    assert.deepEqual(done, config.model_type === 'gpt2' ? ['transformer.h.0.', 'transformer.h.1.'] : ['model.layers.0.', 'model.layers.1.', 'model.layers.2.']);
    const a = quantizedLayers(ref);
    const b = quantizedLayers(model);
    assert.deepEqual(b.map(([n]) => n), a.map(([n]) => n));
    for (let i = 0; i < a.length; i++) {
      const [wa, wb] = [a[i][1].weight as Weight4bit, b[i][1].weight as Weight4bit];
      assert.deepEqual(wb.packed, wa.packed, `${a[i][0]}: the same codes`);
      assert.deepEqual(wb.blockAbsmax(), wa.blockAbsmax(), `${a[i][0]}: the same scales`);
    }
    // No float32 copy of a quantized layer is left: the remaining tensors are the float parameters only.
    assert.deepEqual(model.namedParameters().map(([n]) => n), ref.namedParameters().map(([n]) => n));
    const [ya, yb] = [ref.forward({ inputIds: ids() }).logits, model.forward({ inputIds: ids() }).logits];
    assert.deepEqual(yb.dataSync(), ya.dataSync());
    tf.dispose([ya, yb]);
    ref.dispose();
    model.dispose();
  }
});

test('createQuantizedModel checks the settings before building anything', () => {
  const before = tf.memory().numTensors;
  assert.throws(() => createQuantizedModel({ model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, vocab_size: 23, n_positions: 16 }, { blocksize: 48 }), (e: unknown) => e instanceof UserError && /\/blocksize/.test(e.message));
  assert.throws(() => createQuantizedModel({ model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, vocab_size: 23, n_positions: 16 }, { target_modules: ['nope'] }), (e: unknown) => e instanceof UserError && /no linear layer to quantize/.test(e.message));
  assert.equal(tf.memory().numTensors, before, 'nothing left behind');
});
