import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ContainerModule } from 'inversify';
import { TYPES, UserError, createRegistry, initBackend, validatePipeline } from '@peftkit/core';
import stepsModule from '../module.js';
import { tinyLoraMethod } from '../training/testing/tiny-adapter.js';
import { tinyLm } from '../training/testing/tiny-models.js';
import { scratch, testContext } from '../training/testing/context.js';
import { formatParameterReport, injectStep } from './index.js';
import { fullMethod } from '../methods/full.js';
import type { PeftModel } from '@peftkit/models';

await initBackend('wasm');

const registry = createRegistry([
  { name: '@peftkit/steps', version: '0.1.0', module: stepsModule },
  { name: 'test', version: '0.0.0', module: new ContainerModule(({ bind }) => void bind(TYPES.PeftMethod).toConstantValue(tinyLoraMethod)) },
]);
const pipeline = (settings: Record<string, unknown>) => ({
  name: 'p',
  steps: { base: { kind: 'load', settings: { model: 'x' } }, peft: { kind: 'inject', inputs: { model: 'base' }, settings } },
});
const issues = (settings: Record<string, unknown>) => validatePipeline('p.json', pipeline(settings), registry).issues.filter((i) => i.pointer.startsWith('/steps/peft'));

test('config is validated against the chosen method: errors point at the field, defaults are filled in', () => {
  const bad = issues({ method: 'tiny-lora', config: { r: 0, lora_alfa: 4 } });
  assert.deepEqual(bad.map((i) => i.pointer).sort(), ['/steps/peft/settings/config/lora_alfa', '/steps/peft/settings/config/r']);
  assert.match(bad.find((i) => i.pointer.endsWith('lora_alfa'))!.hint!, /did you mean "lora_alpha"/);
  const doc = pipeline({ method: 'tiny-lora', config: { r: 4 } });
  assert.deepEqual(validatePipeline('p.json', doc, registry).issues, []);
  assert.deepEqual((doc.steps.peft.settings as any).config, { r: 4, lora_alpha: 4, target_modules: ['fc'] });
  assert.equal((doc.steps.peft.settings as any).adapter_name, 'default');
  // Another method's schema does not apply: `full` refuses LoRA's fields.
  assert.deepEqual(issues({ method: 'full', config: { r: 4 } }).map((i) => i.pointer), ['/steps/peft/settings/config/r']);
});

test('unknown method: did-you-mean with the registered methods; method.validateConfig issues under /config', () => {
  const [i] = issues({ method: 'tiny-lroa' });
  assert.equal(i.pointer, '/steps/peft/settings/method');
  assert.match(i.message, /unknown PEFT method "tiny-lroa"/);
  assert.match(i.hint!, /did you mean "tiny-lora"\? Known: full, tiny-lora/);
  const [j] = issues({ method: 'tiny-lora', config: { target_modules: [] } });
  assert.equal(j.pointer, '/steps/peft/settings/config/target_modules');
});

test('run: injects, outputs a PeftModel, logs and records the trainable-parameter report', async () => {
  const { dir, cleanup } = scratch();
  try {
    const ctx = testContext(dir, 'peft');
    const loaded = tinyLm();
    const out = await injectStep.run(ctx, { model: loaded }, { method: 'tiny-lora', config: { r: 2, lora_alpha: 4, target_modules: ['fc', 'proj'] }, adapter_name: 'mine' });
    const peft = out.model as PeftModel;
    assert.equal(peft.base, loaded);
    assert.deepEqual(peft.active, ['mine']);
    assert.equal(peft.activeAdapter!.name, 'mine');
    // LoRA r=2 on fc (8→16): A 2·8 + B 16·2 = 48; on proj (16→8): A 2·16 + B 8·2 = 48. Base: wte 128 + fc 144 + proj 136 + lm_head 128 = 536.
    assert.deepEqual(ctx.rows[0], { method: 'tiny-lora', adapter: 'mine', trainable_params: 96, all_params: 632, trainable_percent: (100 * 96) / 632 });
    assert.ok(ctx.lines.some((l) => l.includes('trainable params: 96 || all params: 632 || trainable%: 15.1899')), ctx.lines.join('\n'));
    assert.equal(formatParameterReport({ trainable: 294912, total: 124734720, percent: 0.23643 }), 'trainable params: 294,912 || all params: 124,734,720 || trainable%: 0.2364');
  } finally {
    cleanup();
  }
});

test('full: everything trainable; no base to switch to unless keep_base_copy; refused on a quantized base', async () => {
  const { dir, cleanup } = scratch();
  try {
    const ctx = testContext(dir, 'peft');
    const loaded = tinyLm();
    const peft = (await injectStep.run(ctx, { model: loaded }, { method: 'full', config: {} })).model as PeftModel;
    assert.equal(peft.parameterReport().percent, 100);
    assert.throws(() => peft.setActive([]), (e: Error) => e instanceof UserError && /keep_base_copy/.test((e as UserError).details.hint!));

    const kept = tinyLm();
    const p2 = (await injectStep.run(ctx, { model: kept }, { method: 'full', config: { keep_base_copy: true } })).model as PeftModel;
    const w = kept.model.namedParameters()[0][1];
    const original = Array.from(w.dataSync());
    w.assign(w.add(1)); // "training"
    p2.setActive([]);
    assert.deepEqual(Array.from(w.dataSync()), original);
    p2.setActive(['default']);
    assert.deepEqual(Array.from(w.dataSync()), original.map((x) => Math.fround(x + 1)));

    await assert.rejects(injectStep.run(ctx, { model: { ...tinyLm(), quantization: { quant_type: 'nf4' } } }, { method: 'full' }), /full fine-tuning needs full-precision weights/);
    assert.equal(fullMethod.family, 'full');
  } finally {
    cleanup();
  }
});

test('adapter: either method or adapter; a loaded adapter takes no config; is_trainable only with adapter', () => {
  assert.deepEqual(issues({ adapter: '../runs/x/latest/export/adapter', is_trainable: true }), []);
  const both = issues({ method: 'tiny-lora', adapter: 'a' });
  assert.deepEqual(both.map((i) => i.pointer), ['/steps/peft/settings/method']);
  assert.match(both[0].message, /either "method" \(a new adapter\) or "adapter"/);
  const config = issues({ adapter: 'a', config: { r: 4 } });
  assert.deepEqual(config.map((i) => i.pointer), ['/steps/peft/settings/config']);
  assert.match(config[0].message, /keeps its own config/);
  assert.deepEqual(issues({ method: 'tiny-lora', is_trainable: true }).map((i) => i.pointer), ['/steps/peft/settings/is_trainable']);
  const neither = issues({});
  assert.equal(neither.length, 1);
  assert.match(neither[0].message, /give "method" .* or "adapter"/);
  assert.match(neither[0].hint!, /full, tiny-lora/);
});

test('adapter: a folder that is not an adapter is refused naming the setting', async () => {
  const { dir, cleanup } = scratch();
  try {
    const ctx = testContext(dir, 'peft');
    await assert.rejects(injectStep.run(ctx, { model: tinyLm() }, { adapter: 'nowhere' }), (e: UserError) => {
      assert.match(e.message, /nowhere: no adapter_config\.json; not an adapter folder/);
      assert.equal(e.details.pointer, '/steps/peft/settings/adapter');
      return true;
    });
  } finally {
    cleanup();
  }
});
