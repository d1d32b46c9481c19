import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { createRegistry, initBackend, type StepContext } from '@peftkit/core';
import type { LoadedModel, PeftModel } from '@peftkit/models';
import stepsModule, { injectStep, quantizeStep } from '@peftkit/steps';
import qloraModule from './index.js';
import { QuantLinear } from './quant-linear.js';
import { tinyLlama } from './testing/tiny.js';

before(async () => {
  await initBackend('wasm');
});

const registry = createRegistry([
  { name: '@peftkit/steps', version: '0.1.0', module: stepsModule },
  { name: '@peftkit/qlora', version: '0.1.0', module: qloraModule },
]);

test('the plugin registers the nf4, fp4 and int8 schemes and the qlora method', () => {
  assert.deepEqual(registry.quantSchemes().map((s) => s.name), ['fp4', 'int8', 'nf4']);
  const m = registry.method('qlora')!;
  assert.equal(m.peftType, 'LORA');
  assert.equal(m.family, 'adapter-layers');
});

test('quantize step + inject step with the real plugin: NF4 + DQ base, QLoRA adapter, bits per parameter recorded', async () => {
  const metrics: Record<string, unknown>[] = [];
  const noop = () => {};
  const ctx = (step: string) =>
    ({
      pipeline: 'p', step, pipelineDir: '.', runDir: '.', stepDir: '.', seed: 3, backend: 'wasm', resume: false, signal: new AbortController().signal,
      logger: { error: noop, warn: noop, info: noop, debug: noop }, registry, recordMetrics: (r: Record<string, unknown>) => metrics.push(r),
    }) satisfies StepContext;
  const model = tinyLlama(1);
  const { model: q } = (await quantizeStep.run(ctx('q'), { model: { model, source: 'tiny' } }, { quant_type: 'nf4', blocksize: 64, double_quant: true, target_modules: null, modules_to_not_convert: null, keep_in_fp32_modules: [] })) as { model: LoadedModel };
  assert.equal(q.quantization?.quant_type, 'nf4');
  assert.deepEqual(q.quantization?.quantized_modules, ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.k_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.0.self_attn.o_proj', 'model.layers.0.mlp.gate_proj', 'model.layers.0.mlp.up_proj', 'model.layers.0.mlp.down_proj']);
  // 1920 values in 30 blocks of 64: 960 + 30 + 4·(one nested scale per layer, 7 layers) = 1018 bytes.
  assert.equal(q.quantization?.quantized_bytes, 960 + 30 + 7 * 4);
  assert.equal(metrics[0].bits_per_parameter, (8 * 1018) / 1920);
  assert.ok(model.getSubmodule('model.layers.0.mlp.up_proj') instanceof QuantLinear);

  const { model: peft } = (await injectStep.run(ctx('peft'), { model: q }, { method: 'qlora', config: { r: 4 }, adapter_name: 'default' })) as { model: PeftModel };
  const h = peft.activeAdapter!;
  assert.equal(h.method, 'qlora');
  // The report counts the 1920 quantized weights as parameters, as HF PEFT does for 4-bit bases.
  const row = metrics.find((m) => m.method === 'qlora')!;
  const floats = model.namedParameters().filter(([, v]) => !v.trainable).reduce((n, [, v]) => n + v.size, 0);
  assert.equal(row.trainable_params, h.trainableParameters().reduce((n, [, v]) => n + v.size, 0));
  assert.equal(row.all_params, floats + 1920 + (row.trainable_params as number));
  // Saved as an HF PEFT LoRA adapter: A [r, in] and B [out, r] for the 7 layers, peft_type LORA.
  const keys = [...h.stateDict().keys()];
  assert.equal(keys.length, 14);
  assert.ok(keys.every((k) => /^base_model\.model\.model\.layers\.0\..*\.lora_[AB]\.weight$/.test(k)), keys.join(', '));
  assert.deepEqual(h.stateDict().get('base_model.model.model.layers.0.mlp.down_proj.lora_A.weight')!.shape, [4, 24]);
  assert.equal(h.adapterConfig().peft_type, 'LORA');
  assert.equal(h.adapterConfig().lora_alpha, 16);
  const y = peft.forward({ inputIds: tf.tensor2d([[1, 2, 3]], [1, 3], 'int32') }).logits;
  assert.deepEqual(y.shape, [1, 3, 19]);
  y.dispose();
  model.dispose();
});
