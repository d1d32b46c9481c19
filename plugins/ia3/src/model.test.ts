import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ContainerModule } from 'inversify';
import { UserError, createRegistry, importPlugin, initBackend } from '@peftkit/core';
import { createModel, manualSeed, writeSafetensors } from '@peftkit/models';
import { logitsOf, maxAbsDiff, repoRoot, sampleIds, scratch, tinyModel } from '@peftkit/models/testing';
import ia3Module, { Ia3AdapterHandle, Ia3Layer, ia3ConfigFromHf, ia3ConfigSchema, injectIa3, loadHfIa3Adapter, resolveIa3Config, validateConfig } from './index.js';

const tmp = scratch('peftkit-ia3-');
before(async () => {
  await initBackend('wasm');
  manualSeed(2);
});
after(() => tmp.cleanup());

const wrapped = (m: { namedModules(): [string, unknown][] }) => m.namedModules().filter(([, x]) => x instanceof Ia3Layer).map(([k, x]) => [k, (x as Ia3Layer).isFeedforward]);
const ids = sampleIds(2, 5, 32);

test('the package is a peftkit plugin that registers the "ia3" method (HF PEFT\'s IA3)', async () => {
  const plugin = await importPlugin('@peftkit/ia3', repoRoot());
  assert.equal(plugin.name, '@peftkit/ia3');
  assert.ok(plugin.module instanceof ContainerModule);
  const registry = createRegistry([plugin]);
  const ia3 = registry.method('ia3')!;
  assert.deepEqual([ia3.peftType, ia3.family, typeof ia3.loadAdapter], ['IA3', 'adapter-layers', 'function']);
  assert.deepEqual(ia3.configSchema, ia3ConfigSchema);
  assert.ok(ia3.recognizesAdapterConfig!({ peft_type: 'IA3' }) && !ia3.recognizesAdapterConfig!({ peft_type: 'LORA' }));
  assert.throws(() => createRegistry([plugin, { name: 'copy', version: '0', module: ia3Module }]), /registered twice/);
});

test('null targets take HF PEFT\'s per-architecture defaults (gpt2: c_attn, mlp.c_proj feed-forward; llama: k/v_proj, down_proj feed-forward)', () => {
  const gpt2 = tinyModel('gpt2');
  const warnings: string[] = [];
  const h = injectIa3(gpt2, {}, { logger: { warn: (m) => warnings.push(m), info() {}, debug() {}, error() {} } });
  assert.deepEqual(wrapped(gpt2).filter(([k]) => (k as string).includes('.h.0.')), [['transformer.h.0.attn.c_attn', false], ['transformer.h.0.mlp.c_proj', true]]);
  assert.deepEqual([h.config.target_modules, h.config.feedforward_modules, h.config.fan_in_fan_out, h.config.task_type], [['c_attn', 'mlp.c_proj'], ['mlp.c_proj'], true, 'CAUSAL_LM']);
  assert.match(warnings[0], /fan_in_fan_out is set to False but the target module is `Conv1D`/);

  const llama = tinyModel('llama');
  injectIa3(llama, {});
  const l0 = wrapped(llama).filter(([k]) => (k as string).includes('layers.0.'));
  assert.deepEqual(l0, [['model.layers.0.self_attn.k_proj', false], ['model.layers.0.self_attn.v_proj', false], ['model.layers.0.mlp.down_proj', true]]);
});

test('at init the model computes the base; only the vectors train; shapes [out, 1] and [1, in]', () => {
  const model = tinyModel('llama');
  const before = logitsOf(model, ids);
  const h = injectIa3(model, { target_modules: ['q_proj', 'down_proj'], feedforward_modules: ['down_proj'] });
  assert.equal(maxAbsDiff(logitsOf(model, ids), before), 0);
  const trainable = model.trainableParameters().map(([k]) => k);
  assert.ok(trainable.length > 0 && trainable.every((k) => /\.ia3_l\.default$/.test(k)), trainable.join(', '));
  const shapes = Object.fromEntries(h.trainableParameters().map(([k, v]) => [k.replace(/^.*layers\.0\./, ''), v.shape]));
  const cfg = model.config as Record<string, number>;
  assert.deepEqual(shapes['self_attn.q_proj.ia3_l'], [cfg.hidden_size, 1]);
  assert.deepEqual(shapes['mlp.down_proj.ia3_l'], [1, cfg.intermediate_size]);
  // Scaling a vector changes the output; disabling restores the base; unloading gives the plain model back.
  h.trainableParameters()[0][1].assign(tf.fill(h.trainableParameters()[0][1].shape, 1.5));
  assert.ok(maxAbsDiff(logitsOf(model, ids), before) > 1e-4);
  h.setEnabled(false);
  assert.equal(maxAbsDiff(logitsOf(model, ids), before), 0);
  assert.ok(h.trainableParameters().every(([, v]) => !v.trainable));
  h.setEnabled(true);
  h.dispose();
  assert.deepEqual(wrapped(model), []);
  assert.equal(maxAbsDiff(logitsOf(model, ids), before), 0);
});

test('regex targets, "all-linear" (not the head), exclude_modules, and a feed-forward regex', () => {
  const a = tinyModel('gpt2');
  injectIa3(a, { target_modules: '.*\\.h\\.1\\.mlp\\.c_(fc|proj)', feedforward_modules: '.*c_proj' });
  assert.deepEqual(wrapped(a), [['transformer.h.1.mlp.c_fc', false], ['transformer.h.1.mlp.c_proj', true]]);
  const b = tinyModel('llama');
  const h = injectIa3(b, { target_modules: 'all-linear', feedforward_modules: ['down_proj'], exclude_modules: ['o_proj', 'gate_proj', 'up_proj'] });
  assert.ok(!wrapped(b).some(([k]) => k === 'lm_head'));
  assert.deepEqual(h.config.target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  assert.deepEqual([...new Set(wrapped(b).map(([k]) => (k as string).split('.').pop()))], ['q_proj', 'k_proj', 'v_proj', 'down_proj']);
});

test('bad configs and models are refused with the field named', () => {
  const m = tinyModel('gpt2');
  const err = (re: RegExp, pointer?: string) => (e: unknown) => e instanceof UserError && re.test(e.message) && (pointer === undefined || e.details.pointer === pointer);
  assert.throws(() => injectIa3(m, { target_modules: ['q_proj'] }), err(/found no module to wrap.*transformer\.h\.N\.attn\.c_attn/s, '/target_modules'));
  assert.throws(() => injectIa3(m, { target_modules: ['c_attn'], feedforward_modules: ['c_fc'] }), err(/subset of target_modules/, '/feedforward_modules'));
  assert.throws(() => injectIa3(m, { target_modules: ['c_attn'], r: 8 } as never), err(/r/));
  assert.throws(() => injectIa3(m, { target_modules: ['wte'] }), err(/a Embedding; IA3 wraps linear layers/));
  assert.deepEqual(validateConfig({ target_modules: '(' }).map((i) => i.pointer), ['/target_modules']);
  assert.deepEqual(wrapped(m), [], 'a refused config leaves the model alone');
  const distil = tinyModel('distilbert');
  assert.throws(() => injectIa3(distil, {}), err(/no IA3 default for model_type "distilbert"/, '/target_modules'));
  const cls = createModel({ model_type: 'llama', hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 11, num_labels: 2, pad_token_id: 0 }, 'sequence-classification');
  assert.throws(() => injectIa3(cls, {}), err(/modules_to_save/));
  injectIa3(m, { target_modules: ['c_attn'] });
  assert.throws(() => injectIa3(m, { target_modules: ['c_attn'] }), err(/already has an adapter named "default"/));
  assert.throws(() => injectIa3(m, { target_modules: ['c_attn'], feedforward_modules: ['c_attn'] }, { adapterName: 'two' }), err(/scale its output.*would scale its input/s, '/feedforward_modules'));
});

test('loadStateDict takes HF\'s names (with or without the adapter name and prefix) and names what does not fit', () => {
  const m = tinyModel('gpt2');
  const h = injectIa3(m, { target_modules: ['c_attn', 'mlp.c_proj'], feedforward_modules: ['mlp.c_proj'] });
  const sd = new Map([...h.stateDict()].map(([k, t]) => [k.replace('base_model.model.', '') + '.default', tf.fill(t.shape, 0.5)]));
  h.loadStateDict(sd);
  assert.ok([...h.stateDict().values()].every((t) => (t.dataSync() as Float32Array).every((v) => v === 0.5)));
  const [first] = [...h.stateDict().keys()];
  const swapped = new Map([...h.stateDict()].map(([k, t]) => [k, k === first ? tf.ones([t.shape[1]!, t.shape[0]!]) : t.clone()]));
  assert.throws(() => h.loadStateDict(swapped), (e: Error) => e instanceof UserError && e.message.includes(`${first}: expected [`) && e.message.includes('feed-forward in one and not in the other'));
  const extra = new Map([...h.stateDict()].map(([k, t]) => [k, t.clone()]));
  extra.set('base_model.model.transformer.h.9.attn.c_attn.ia3_l', tf.ones([3, 1]));
  extra.delete(first);
  assert.throws(() => h.loadStateDict(extra), (e: Error) => /missing tensors: .*h\.0\.attn\.c_attn\.ia3_l.*no place for: base_model\.model\.transformer\.h\.9/s.test(e.message));
  assert.ok([...h.stateDict().values()].every((t) => (t.dataSync() as Float32Array).every((v) => v === 0.5)), 'nothing assigned when something does not fit');
});

test('adapter_config.json: IA3 fields kept, other methods and modules_to_save refused, unknown empty fields warned about', () => {
  const base = { peft_type: 'IA3', target_modules: ['c_attn'], feedforward_modules: [], fan_in_fan_out: true, init_ia3_weights: true, modules_to_save: null, task_type: 'CAUSAL_LM', base_model_name_or_path: 'gpt2', peft_version: '0.21.0' };
  const { config, warnings } = ia3ConfigFromHf({ ...base, some_new_flag: false }, 'a/adapter_config.json');
  assert.deepEqual(resolveIa3Config(config), resolveIa3Config({ target_modules: ['c_attn'], feedforward_modules: [], fan_in_fan_out: true, init_ia3_weights: true, task_type: 'CAUSAL_LM' }));
  assert.match(warnings[0], /a\/adapter_config\.json: ignoring fields .*some_new_flag/);
  const refused = (raw: Record<string, unknown>, pointer: string) => assert.throws(() => ia3ConfigFromHf(raw, 'f.json'), (e: unknown) => e instanceof UserError && e.details.pointer === pointer && e.message.startsWith('f.json: '));
  refused({ ...base, peft_type: 'LORA' }, '/peft_type');
  refused({ ...base, modules_to_save: ['score'] }, '/modules_to_save');
  refused({ ...base, use_magic: 'yes' }, '/use_magic');
  refused({ ...base, feedforward_modules: ['c_fc'] }, '/feedforward_modules');

  // A folder whose tensors belong to a bigger model: the error names the tensors, the model is left as it was.
  const dir = join(tmp.dir, 'wrong');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(base));
  const m = tinyModel('gpt2');
  const n = (m.config as Record<string, number>).n_embd;
  writeSafetensors(join(dir, 'adapter_model.safetensors'), new Map([0, 1].map((i) => [`base_model.model.transformer.h.${i}.attn.c_attn.ia3_l`, tf.ones([3 * n + 3, 1])])), { format: 'pt' });
  assert.throws(() => loadHfIa3Adapter(m, dir), (e: Error) => e instanceof UserError && /wrong shapes: base_model\.model\.transformer\.h\.0\.attn\.c_attn\.ia3_l: expected \[\d+, 1\], got \[\d+, 1\]/.test(e.message));
  assert.deepEqual(wrapped(m), []);
});

test('the method\'s inject uses the context\'s adapter name and seed', async () => {
  const method = createRegistry([{ name: '@peftkit/ia3', version: '0.1.0', module: ia3Module }]).method('ia3')!;
  const quiet = { warn() {}, info() {}, debug() {}, error() {} };
  const draw = async () => {
    const h = (await method.inject(tinyModel('gpt2'), { target_modules: ['c_attn'], init_ia3_weights: false }, { logger: quiet, seed: 4, adapterName: 'x' })) as Ia3AdapterHandle;
    assert.equal(h.name, 'x');
    return h.trainableParameters()[0][1].dataSync().slice();
  };
  assert.deepEqual(await draw(), await draw());
});
