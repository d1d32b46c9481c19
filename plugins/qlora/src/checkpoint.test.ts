import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Conv1D, Linear, createModel, savePretrained, writeSafetensors, type PreTrainedModel, type WritableTensor } from '@peftkit/models';
import { freeStoredQuantized, loadQuantizedPretrained, quantizedStateDict, saveQuantizedPretrained } from './checkpoint.js';
import { quantizeModel, quantizedLayers } from './quantize-model.js';
import { Weight4bit } from './quantized-weight.js';
import { scratch, tinyGpt2, tinyLlama } from './testing/tiny.js';

before(async () => {
  await initBackend('wasm');
});

const ids = () => tf.tensor2d([[3, 1, 4, 1, 5]], [1, 5], 'int32');
const out = (m: PreTrainedModel) => tf.tidy(() => m.forward({ inputIds: ids() }).logits.dataSync().slice());

test('bnb serialized form: save → load → save is bit-identical, and the loaded model computes the same', async () => {
  const { dir, cleanup } = scratch();
  try {
    const settings = [
      ['llama', { quant_type: 'nf4', double_quant: true }],
      ['gpt2', { quant_type: 'fp4', double_quant: false, blocksize: 32 }],
      ['llama', { quant_type: 'int8' }],
    ] as const;
    for (const [i, [arch, cfg]] of settings.entries()) {
      const m = arch === 'llama' ? tinyLlama(1) : tinyGpt2(1);
      const rep = quantizeModel(m, cfg);
      const a = join(dir, `a${i}`);
      const b = join(dir, `b${i}`);
      saveQuantizedPretrained({ model: m, source: 'tiny', quantization: rep }, a);
      const config = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8'));
      assert.equal(config.quantization_config.quant_method, 'bitsandbytes');
      assert.equal(config.quantization_config.load_in_4bit, cfg.quant_type !== 'int8');
      const loaded = await loadQuantizedPretrained(a);
      assert.deepEqual(loaded.report.quantized, rep.quantized_modules);
      assert.deepEqual(loaded.report.missing, []);
      assert.deepEqual(loaded.report.unexpected, []);
      assert.equal(loaded.quantization?.quant_type, cfg.quant_type);
      assert.deepEqual(out(loaded.model), out(m), `${arch}/${cfg.quant_type}: same logits`);
      saveQuantizedPretrained(loaded, b);
      assert.ok(readFileSync(join(a, 'model.safetensors')).equals(readFileSync(join(b, 'model.safetensors'))), `${arch}/${cfg.quant_type}: model.safetensors differs after a round trip`);
      assert.equal(readFileSync(join(a, 'config.json'), 'utf8'), readFileSync(join(b, 'config.json'), 'utf8'));
      m.dispose();
      loaded.model.dispose();
    }
  } finally {
    cleanup();
  }
});

test('a GPT-2 checkpoint stored without the `transformer.` prefix (as GPT2Model saves) loads its quantized layers', async () => {
  const { dir, cleanup } = scratch();
  try {
    const m = tinyGpt2(1);
    quantizeModel(m, { blocksize: 64 });
    const sd = quantizedStateDict(m);
    const renamed = new Map<string, WritableTensor>();
    for (const [k, t] of sd) if (k !== 'lm_head.weight') renamed.set(k.replace(/^transformer\./, ''), t);
    mkdirSync(dir, { recursive: true });
    writeSafetensors(join(dir, 'model.safetensors'), renamed, { format: 'pt' });
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...m.config, quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true } }));
    const loaded = await loadQuantizedPretrained(dir);
    assert.deepEqual(loaded.report.quantized.sort(), quantizedLayers(m).map(([n]) => n).sort());
    assert.deepEqual(out(loaded.model), out(m));
    const q = quantizedLayers(loaded.model)[0][1].weight as Weight4bit;
    assert.equal(q.blocksize, 64);
    assert.ok(q.nested);
    m.dispose();
    loaded.model.dispose();
  } finally {
    cleanup();
  }
});

test('bad checkpoints: clear errors naming the file and the layer', async () => {
  const { dir, cleanup } = scratch();
  try {
    // A float checkpoint: not quantized.
    const f = tinyLlama(1);
    savePretrained({ model: f, source: 'tiny' }, join(dir, 'float'));
    await assert.rejects(loadQuantizedPretrained(join(dir, 'float')), (e: unknown) => e instanceof UserError && /no bitsandbytes-quantized layer/.test(e.message) && /quantize step/.test(e.details.hint ?? ''));
    // config.json says hidden 16, the checkpoint was made for intermediate 24 → change it to 32.
    const m = tinyLlama(1);
    quantizeModel(m, {});
    saveQuantizedPretrained({ model: m, source: 'tiny' }, join(dir, 'q'));
    const cfgFile = join(dir, 'q', 'config.json');
    writeFileSync(cfgFile, JSON.stringify({ ...JSON.parse(readFileSync(cfgFile, 'utf8')), intermediate_size: 32 }));
    await assert.rejects(loadQuantizedPretrained(join(dir, 'q')), (e: unknown) => e instanceof UserError && /model\.safetensors: model\.layers\.0\.mlp\.gate_proj is quantized with shape \[24, 16\], but model\.layers\.0\.mlp\.gate_proj is \[out 32, in 16\]/.test(e.message));
    f.dispose();
    m.dispose();
  } finally {
    cleanup();
  }
});

test('loading frees, block by block, the float32 weights of the layers the checkpoint stores quantized', () => {
  const llama = createModel(
    { model_type: 'llama', hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 19 },
    'causal-lm',
    'config.json',
    // As a LlamaForCausalLM saves them, and as a bare LlamaModel does (no `model.` prefix).
    freeStoredQuantized(new Set(['model.layers.0.self_attn.q_proj', 'layers.1.mlp.down_proj'])),
  );
  const freed = llama.namedModules().filter(([, m]) => m instanceof Linear && m.weight.isDisposed).map(([n]) => n);
  assert.deepEqual(freed, ['model.layers.0.self_attn.q_proj', 'model.layers.1.mlp.down_proj']);
  assert.equal((llama.getSubmodule('model.layers.0.self_attn.q_proj') as Linear).outFeatures, 16, 'the shell keeps its shape for loadBnbWeights');
  llama.dispose();
  const gpt = createModel({ model_type: 'gpt2', n_embd: 16, n_layer: 1, n_head: 2, vocab_size: 23, n_positions: 16 }, 'causal-lm', 'config.json', freeStoredQuantized(new Set(['h.0.attn.c_attn'])));
  assert.deepEqual(gpt.namedModules().filter(([, m]) => m instanceof Conv1D && m.weight.isDisposed).map(([n]) => n), ['transformer.h.0.attn.c_attn']);
  gpt.dispose();
});
