import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContainerModule } from 'inversify';
import { TYPES, UserError, createRegistry, validatePipeline, type QuantScheme, type StepContext } from '@peftkit/core';
import stepsModule from '../module.js';
import { quantizeStep } from './index.js';

/** A stand-in for a plugin's scheme: records what it was asked to do. */
function fakeSchemes(calls: unknown[][]) {
  const scheme = (name: string): QuantScheme => ({
    name,
    description: `fake ${name}`,
    configSchema: { type: 'object' },
    quantize(model, config) {
      calls.push([name, model, config]);
      return { quantized_modules: ['a', 'b'], bits_per_parameter: 4.126953125, quantized_parameters: 2048 };
    },
  });
  return { name: 'fake-qlora', version: '0.0.0', module: new ContainerModule(({ bind }) => { for (const n of ['nf4', 'fp4']) bind(TYPES.QuantScheme).toConstantValue(scheme(n)); }) };
}

const calls: unknown[][] = [];
const registry = createRegistry([{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }, fakeSchemes(calls)]);
const bare = createRegistry([{ name: '@peftkit/steps', version: '0.1.0', module: stepsModule }]);

const pipeline = (steps: Record<string, unknown>) => ({ name: 'q', steps });
const load = { kind: 'load', settings: { model: './m' } };

test('load → quantize → inject validates; defaults are filled in', () => {
  const doc = pipeline({ base: load, q: { kind: 'quantize', inputs: { model: 'base' } }, peft: { kind: 'inject', inputs: { model: 'q' }, settings: { method: 'full' } } });
  const { issues, validated } = validatePipeline('p.json', doc, registry);
  assert.deepEqual(issues, []);
  assert.deepEqual((doc.steps.q as { settings: unknown }).settings, { quant_type: 'nf4', blocksize: 64, double_quant: true, target_modules: null, modules_to_not_convert: null, keep_in_fp32_modules: [] });
  assert.deepEqual(validated!.plan, ['base', 'q', 'peft']);
});

test('quantize after inject is a port-type error with the engine hint', () => {
  const doc = pipeline({ base: load, peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'full' } }, q: { kind: 'quantize', inputs: { model: 'peft' } } });
  const { issues } = validatePipeline('p.json', doc, registry);
  assert.equal(issues.length, 1);
  assert.equal(issues[0].pointer, '/steps/q/inputs/model');
  assert.match(issues[0].message, /port type mismatch: input "model" of "quantize" accepts base-model, but "peft.model" \(inject\) produces peft-model/);
  assert.match(issues[0].hint!, /quantize the base model before injecting a method/);
});

test('blocksize: not a power of two, or out of range → errors at /settings/blocksize', () => {
  for (const [b, re] of [[100, /blocksize 100 is not a power of two/], [16, /must be >= 32/], [8192, /must be <= 4096/]] as const) {
    const { issues } = validatePipeline('p.json', pipeline({ base: load, q: { kind: 'quantize', inputs: { model: 'base' }, settings: { blocksize: b } } }), registry);
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.equal(issues[0].pointer, '/steps/q/settings/blocksize');
    assert.match(issues[0].message, re);
  }
  const { issues } = validatePipeline('p.json', pipeline({ base: load, q: { kind: 'quantize', inputs: { model: 'base' }, settings: { blocksize: 100 } } }), registry);
  assert.match(issues[0].hint!, /32, 64, 128, 256, 512, 1024, 2048, 4096/);
});

test('a quant_type no plugin registers: the hint names the plugin to add', () => {
  const { issues } = validatePipeline('p.json', pipeline({ base: load, q: { kind: 'quantize', inputs: { model: 'base' }, settings: { quant_type: 'int8' } } }), bare);
  assert.equal(issues.length, 1);
  assert.equal(issues[0].pointer, '/steps/q/settings/quant_type');
  assert.match(issues[0].message, /no quantization scheme "int8" is registered/);
  assert.match(issues[0].hint!, /@peftkit\/qlora/);
});

test('run: finds the scheme in the registry, passes the settings, outputs the model with `quantization` and records metrics', async () => {
  calls.length = 0;
  const metrics: Record<string, unknown>[] = [];
  const noop = () => {};
  const ctx = {
    pipeline: 'q', step: 'q', pipelineDir: '.', runDir: '.', stepDir: '.', seed: 1, backend: 'wasm', resume: false, signal: new AbortController().signal,
    logger: { error: noop, warn: noop, info: noop, debug: noop }, registry, recordMetrics: (r: Record<string, unknown>) => metrics.push(r),
  } satisfies StepContext;
  const model = { name: 'the model' };
  const settings = { quant_type: 'fp4' as const, blocksize: 128, double_quant: false, target_modules: null, modules_to_not_convert: null, keep_in_fp32_modules: [] };
  const out = (await quantizeStep.run(ctx, { model: { model, source: 'x' } }, settings)) as { model: { model: unknown; source: string; quantization: Record<string, unknown> } };
  assert.deepEqual(calls, [['fp4', model, { quant_type: 'fp4', blocksize: 128, double_quant: false, target_modules: null, modules_to_not_convert: null, keep_in_fp32_modules: [] }]]);
  assert.equal(out.model.model, model);
  assert.deepEqual(out.model.quantization, { quant_type: 'fp4', blocksize: 128, double_quant: false, quantized_modules: ['a', 'b'], bits_per_parameter: 4.126953125, quantized_parameters: 2048 });
  assert.deepEqual(metrics, [{ quant_type: 'fp4', quantized_parameters: 2048, bits_per_parameter: 4.126953125, quantized_layers: 2 }]);
  await assert.rejects(quantizeStep.run(ctx, { model: { model, source: 'x', quantization: { quant_type: 'nf4' } } }, settings), (e: unknown) => e instanceof UserError && /already quantized/.test(e.message));
});
