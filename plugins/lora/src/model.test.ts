import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Conv1D, Linear, ModulesToSaveWrapper, PeftModel, manualSeed, random, type LoadedModel, type PreTrainedModel } from '@peftkit/models';
import { LoraEmbedding, LoraLayer } from './layer.js';
import { loadHfLoraAdapter, writeHfAdapter } from './hf-format.js';
import { injectLora, summarizeNames } from './model.js';
import { maxAbsDiff, sampleIds, scratch } from '@peftkit/models/testing';
import { tinyGpt2, tinyLlama, tinyLlamaForSequenceClassification } from './testing/tiny-models.js';

before(async () => {
  await initBackend('wasm');
  manualSeed(11);
});

const wrapped = (m: { namedModules(): [string, unknown][] }) => m.namedModules().filter(([, x]) => x instanceof LoraLayer).map(([k]) => k);
const logits = (m: PreTrainedModel, ids: tf.Tensor2D) => m.forward({ inputIds: ids }).logits;
const VOCAB = 11;

test('a list of target_modules matches by suffix: c_proj is attn.c_proj and mlp.c_proj', () => {
  const m = tinyGpt2();
  const h = injectLora(m, { target_modules: ['c_attn', 'c_proj'], r: 2 });
  assert.deepEqual(wrapped(m), [
    'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj',
    'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj',
  ]);
  // The model's forward goes through the wrappers (fields follow setSubmodule).
  assert.ok(m.transformer.h.at(0).attn.c_attn instanceof LoraLayer);
  assert.equal(h.layers.size, 6);
});

test('a string target_modules is a regular expression matching the whole name', () => {
  const m = tinyLlama();
  injectLora(m, { target_modules: 'model\\.layers\\.1\\.self_attn\\.(q|v)_proj' });
  assert.deepEqual(wrapped(m), ['model.layers.1.self_attn.q_proj', 'model.layers.1.self_attn.v_proj']);
  assert.throws(() => injectLora(tinyLlama(), { target_modules: 'q_proj' }), (e: Error) => e instanceof UserError && /matched no module name in full/.test(e.message));
});

test('all-linear wraps every linear layer but the output head', () => {
  const m = tinyLlama();
  const h = injectLora(m, { target_modules: 'all-linear' });
  const names = wrapped(m);
  assert.equal(names.length, 2 * 7);
  assert.ok(!names.includes('lm_head'));
  assert.ok(!(m.lm_head instanceof LoraLayer));
  assert.deepEqual(h.adapterConfig().target_modules, ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj']);
  const g = tinyGpt2();
  injectLora(g, { target_modules: 'ALL-LINEAR' });
  assert.equal(wrapped(g).length, 2 * 4);
});

test('nothing matched: the error lists the linear layers and suggests all-linear', () => {
  const m = tinyLlama();
  const before = m.namedParameters().map(([n]) => n);
  assert.throws(
    () => injectLora(m, { target_modules: ['c_attn', 'query'] }),
    (e: Error) =>
      e instanceof UserError &&
      e.message.includes('model.layers.N.self_attn.q_proj (2×)') &&
      e.message.includes('model.layers.N.mlp.down_proj (2×)') &&
      e.message.includes('lm_head') &&
      /all-linear/.test(e.details.hint ?? '') &&
      e.details.pointer === '/target_modules',
  );
  assert.deepEqual(m.namedParameters().map(([n]) => n), before, 'the model is left as it was');
  assert.equal(summarizeNames(['a.0.b', 'a.1.b', 'c']), 'a.N.b (2×), c');
  // A match on a module that is not linear is an error too.
  assert.throws(() => injectLora(tinyGpt2(), { target_modules: ['attn'] }), /matched transformer\.h\.0\.attn, a GPT2Attention; LoRA wraps linear layers/);
});

test('exclude_modules, layers_to_transform and layers_pattern narrow the targets', () => {
  const a = tinyLlama();
  injectLora(a, { target_modules: 'all-linear', exclude_modules: ['mlp.down_proj', 'k_proj'] });
  assert.equal(wrapped(a).length, 2 * 5);
  assert.ok(!wrapped(a).some((n) => n.endsWith('down_proj') || n.endsWith('k_proj')));
  const b = tinyLlama(3);
  injectLora(b, { target_modules: ['q_proj', 'v_proj'], layers_to_transform: [0, 2], layers_pattern: 'layers' });
  assert.deepEqual(wrapped(b), ['model.layers.0.self_attn.q_proj', 'model.layers.0.self_attn.v_proj', 'model.layers.2.self_attn.q_proj', 'model.layers.2.self_attn.v_proj']);
  const c = tinyGpt2(3);
  injectLora(c, { target_modules: ['c_attn'], layers_to_transform: 1 });
  assert.deepEqual(wrapped(c), ['transformer.h.1.attn.c_attn']);
});

test('target_modules null uses HF PEFT\'s default for the architecture', () => {
  const g = tinyGpt2();
  const h = injectLora(g, {});
  assert.deepEqual(wrapped(g), ['transformer.h.0.attn.c_attn', 'transformer.h.1.attn.c_attn']);
  assert.deepEqual(h.adapterConfig().target_modules, ['c_attn']);
  const l = tinyLlama();
  injectLora(l, {});
  assert.deepEqual(wrapped(l).map((n) => n.split('.').pop()), ['q_proj', 'v_proj', 'q_proj', 'v_proj']);
});

test('rank_pattern / alpha_pattern keys that match no wrapped module are warned about, by name', () => {
  const h = injectLora(tinyLlama(), { target_modules: ['q_proj', 'v_proj'], rank_pattern: { q_proj: 2, qproj: 4 }, alpha_pattern: { 'layers\\.9\\.self_attn\\.v_proj': 32, v_proj: 8 } });
  assert.equal(h.warnings.length, 2, h.warnings.join('\n'));
  assert.match(h.warnings[0], /^rank_pattern keys that matched no LoRA module \(they change nothing\): "qproj";/);
  assert.match(h.warnings[1], /^alpha_pattern keys that matched no LoRA module \(they change nothing\): "layers\\\\.9\\\\.self_attn\\\\.v_proj";/);
  assert.match(h.warnings[1], /wrapped: model\.layers\.N\.self_attn\.q_proj/);
  assert.deepEqual(injectLora(tinyLlama(), { target_modules: ['q_proj'], rank_pattern: { q_proj: 2 } }).warnings, []);
});

test('rank_pattern and alpha_pattern set per-module rank and scaling', () => {
  const m = tinyLlama();
  const h = injectLora(m, { target_modules: ['q_proj', 'v_proj'], r: 4, lora_alpha: 8, rank_pattern: { 'layers\\.1\\.self_attn\\.q_proj': 2 }, alpha_pattern: { v_proj: 32 }, use_rslora: false });
  const info = (k: string) => h.layers.get(k)!.adapterInfo('default');
  assert.deepEqual([info('model.layers.0.self_attn.q_proj').r, info('model.layers.0.self_attn.q_proj').scaling], [4, 2]);
  assert.deepEqual([info('model.layers.1.self_attn.q_proj').r, info('model.layers.1.self_attn.q_proj').scaling], [2, 4]);
  assert.deepEqual([info('model.layers.0.self_attn.v_proj').r, info('model.layers.0.self_attn.v_proj').scaling], [4, 8]);
  assert.deepEqual(h.stateDict().get('base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight')!.shape, [2, 8]);
  const rs = injectLora(tinyLlama(), { target_modules: ['q_proj'], r: 4, lora_alpha: 8, use_rslora: true });
  assert.equal(rs.layers.get('model.layers.0.self_attn.q_proj')!.adapterInfo('default').scaling, 4);
});

test('fan_in_fan_out is set for Conv1D (and cleared for Linear); HF\'s warning only when the user set the wrong value', () => {
  // Left unset (null, every default run on GPT-2): taken from the layers without a warning; the exported config says true.
  const g = injectLora(tinyGpt2(), { target_modules: ['c_attn'] });
  assert.equal(g.config.fan_in_fan_out, true);
  assert.deepEqual(g.warnings, []);
  assert.equal(g.adapterConfig().fan_in_fan_out, true);
  const wrong = injectLora(tinyGpt2(), { target_modules: ['c_attn'], fan_in_fan_out: false });
  assert.deepEqual(wrong.warnings, ['fan_in_fan_out is set to False but the target module is `Conv1D`. Setting fan_in_fan_out to True.']);
  assert.equal(wrong.adapterConfig().fan_in_fan_out, true);
  const l = injectLora(tinyLlama(), { target_modules: ['q_proj'], fan_in_fan_out: true });
  assert.equal(l.config.fan_in_fan_out, false);
  assert.match(l.warnings[0], /fan_in_fan_out is set to True but the target module is `torch.nn.Linear`/);
  assert.deepEqual(injectLora(tinyGpt2(), { target_modules: ['c_attn'], fan_in_fan_out: true }).warnings, []);
});

test('injection leaves outputs unchanged, freezes the base, and counts parameters', () => {
  const m = tinyGpt2();
  const ids = sampleIds(2, 5, VOCAB);
  const y0 = logits(m, ids);
  const baseCount = m.numParameters();
  const h = injectLora(m, { target_modules: ['c_attn', 'c_proj'], r: 2 });
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0);
  const trainable = m.trainableParameters().map(([n]) => n);
  assert.ok(trainable.length === 12 && trainable.every((n) => /\.lora_[AB]\.default\.weight$/.test(n)), trainable.join());
  // A [2, in] + B [out, 2] per layer: c_attn 8→24, attn.c_proj 8→8, mlp.c_proj 32→8.
  const perLayer = 2 * 8 + 24 * 2 + (2 * 8 + 8 * 2) + (2 * 32 + 8 * 2);
  const report = h.parameterReport();
  assert.equal(report.trainable, 2 * perLayer);
  assert.equal(report.total, baseCount + 2 * perLayer);
  assert.ok(Math.abs(report.percent - (100 * report.trainable) / report.total) < 1e-12);
  // The base checkpoint names still resolve: a base state dict loads (non-strict: the LoRA tensors are not in it).
  const baseSd = new Map([...tinyGpt2().stateDict()].filter(([k]) => !k.startsWith('lm_head')));
  const rep = m.loadStateDict(baseSd, false);
  assert.deepEqual(rep.unexpected, []);
  assert.deepEqual(rep.mismatched, []);
  assert.ok(rep.missing.every((k) => k.includes('.lora_')));
  assert.equal(maxAbsDiff(m.getSubmodule('transformer.h.0.attn.c_attn')!.parameter('weight')!, baseSd.get('transformer.h.0.attn.c_attn.weight')!), 0);
});

test('gradients of a model loss reach only the LoRA weights', () => {
  const m = tinyLlama();
  const h = injectLora(m, { target_modules: 'all-linear', init_lora_weights: false });
  const ids = sampleIds(2, 4, VOCAB);
  const { grads } = tf.variableGrads(() => logits(m, ids).square().mean() as tf.Scalar);
  const own = new Set(h.trainableParameters().map(([, v]) => v.name));
  assert.equal(Object.keys(grads).length, own.size);
  assert.ok(Object.keys(grads).every((n) => own.has(n)));
});

test('state dict keys are HF PEFT\'s: A [r, in], B [out, r], also on Conv1D', () => {
  const h = injectLora(tinyGpt2(), { target_modules: ['c_attn', 'c_proj'], r: 2 });
  const sd = h.stateDict();
  assert.equal(sd.size, 12);
  assert.deepEqual(sd.get('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight')!.shape, [2, 8]);
  assert.deepEqual(sd.get('base_model.model.transformer.h.0.attn.c_attn.lora_B.weight')!.shape, [24, 2]);
  assert.deepEqual(sd.get('base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight')!.shape, [2, 32]);
  assert.deepEqual(sd.get('base_model.model.transformer.h.1.mlp.c_proj.lora_B.weight')!.shape, [8, 2]);
  const l = injectLora(tinyLlama(), { target_modules: ['v_proj'], r: 3 });
  assert.deepEqual([...l.stateDict().keys()], ['base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight', 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight', 'base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight', 'base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight']);
  assert.deepEqual(l.stateDict().get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.shape, [4, 3], 'grouped-query v_proj has kv outputs');
});

test('loadStateDict takes keys with or without base_model.model. and refuses wrong shapes by name', () => {
  const src = injectLora(tinyLlama(), { target_modules: ['q_proj', 'v_proj'], init_lora_weights: false });
  const dst = injectLora(tinyLlama(), { target_modules: ['q_proj', 'v_proj'] });
  const stripped = new Map([...src.stateDict()].map(([k, v]) => [k.replace('base_model.model.', ''), v] as [string, tf.Tensor]));
  dst.loadStateDict(stripped);
  for (const [k, v] of src.stateDict()) assert.equal(maxAbsDiff(dst.stateDict().get(k)!, v), 0);
  // With the adapter name in the key (a PEFT model's own state_dict()).
  const named = new Map([...src.stateDict()].map(([k, v]) => [k.replace(/lora_([AB])\.weight$/, 'lora_$1.default.weight'), v] as [string, tf.Tensor]));
  dst.loadStateDict(named);
  const wrong = new Map(src.stateDict());
  wrong.set('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight', tf.zeros([8, 5]));
  const before = dst.stateDict().get('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')!.clone();
  assert.throws(() => dst.loadStateDict(wrong), (e: Error) => e instanceof UserError && e.message.includes('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight: expected [8, 8], got [8, 5]'));
  const missing = new Map(src.stateDict());
  missing.delete('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight');
  missing.set('base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight', tf.zeros([8, 8]));
  assert.throws(() => dst.loadStateDict(missing), (e: Error) => /missing tensors: base_model\.model\.model\.layers\.1\.self_attn\.v_proj\.lora_B\.weight/.test(e.message) && /no place for: base_model\.model\.model\.layers\.1\.self_attn\.k_proj\.lora_A\.weight/.test(e.message));
  assert.equal(maxAbsDiff(dst.stateDict().get('base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight')!, before), 0, 'nothing assigned on failure');
});

test('merge, unmerge, disable and merge-and-unload on a model', () => {
  const m = tinyGpt2();
  const ids = sampleIds(2, 5, VOCAB);
  const y0 = logits(m, ids);
  const w0 = (m.getSubmodule('transformer.h.0.attn.c_attn') as Conv1D).weight.clone();
  const h = injectLora(m, { target_modules: ['c_attn', 'c_proj', 'c_fc'], init_lora_weights: false, r: 2 });
  const y1 = logits(m, ids);
  assert.ok(maxAbsDiff(y1, y0) > 1e-3);
  h.setEnabled(false);
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0, 'disabled: the base output');
  assert.ok(h.trainableParameters().every(([, v]) => !v.trainable));
  h.setEnabled(true);
  h.merge();
  assert.ok(maxAbsDiff(logits(m, ids), y1) < 1e-4, 'merged output = adapter output');
  h.unmerge();
  const c = m.getSubmodule('transformer.h.0.attn.c_attn') as LoraLayer;
  assert.ok(maxAbsDiff(c.weight!, w0) < 1e-6, 'unmerge restores the weight');
  const out = h.mergeAndUnload();
  assert.equal(out, m);
  assert.ok(m.getSubmodule('transformer.h.0.attn.c_attn') instanceof Conv1D);
  assert.ok(m.transformer.h.at(0).attn.c_attn instanceof Conv1D);
  assert.ok(!m.namedParameters().some(([n]) => n.includes('lora_')));
  assert.ok(maxAbsDiff(logits(m, ids), y1) < 1e-4, 'the unloaded base carries the adapter');
  assert.throws(() => h.stateDict(), /unloaded or disposed/);
});

test('dispose removes the adapter and restores the base layers', () => {
  const m = tinyLlama();
  const ids = sampleIds(1, 3, VOCAB);
  const y0 = logits(m, ids);
  const h = injectLora(m, { target_modules: 'all-linear', init_lora_weights: false });
  h.dispose();
  assert.ok(m.getSubmodule('model.layers.0.self_attn.q_proj') instanceof Linear);
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0);
});

test('modules_to_save: SEQ_CLS trains a copy of the head, saved under its own name', () => {
  const m = tinyLlamaForSequenceClassification();
  const ids = sampleIds(2, 4, VOCAB);
  const y0 = logits(m, ids);
  const h = injectLora(m, { target_modules: ['q_proj', 'v_proj'] });
  assert.equal(h.config.task_type, 'SEQ_CLS');
  assert.deepEqual(h.adapterConfig().modules_to_save, ['score']);
  assert.ok(m.score instanceof ModulesToSaveWrapper);
  const sd = h.stateDict();
  assert.deepEqual(sd.get('base_model.model.score.weight')!.shape, [3, 8]);
  assert.equal(sd.size, 9);
  assert.ok(sd.get('base_model.model.score.weight') instanceof tf.Variable && (sd.get('base_model.model.score.weight') as tf.Variable).trainable);
  assert.ok(!m.namedParameters().find(([n]) => n === 'score.weight')![1].trainable, 'the original head is frozen');
  assert.ok(m.namedParameters().some(([n]) => n === 'score.modules_to_save.default.weight'));
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0);
  // Training the copy changes the output; disabling the adapter brings the original back.
  const copy = sd.get('base_model.model.score.weight') as tf.Variable;
  copy.assign(tf.add(copy, 1));
  assert.ok(maxAbsDiff(logits(m, ids), y0) > 1e-3);
  h.setEnabled(false);
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0);
  h.setEnabled(true);
  const adapted = logits(m, ids);
  h.mergeAndUnload();
  assert.ok(m.score instanceof Linear);
  assert.ok(maxAbsDiff(logits(m, ids), adapted) < 1e-5, 'merge-and-unload keeps the trained head');
});

test('bias "all" and "lora_only": trainable biases with HF\'s keys', () => {
  const all = tinyGpt2();
  const h = injectLora(all, { target_modules: ['c_attn'], bias: 'all', r: 2 });
  const keys = [...h.stateDict().keys()];
  assert.ok(keys.includes('base_model.model.transformer.h.0.attn.c_attn.base_layer.bias'));
  assert.ok(keys.includes('base_model.model.transformer.h.0.attn.c_proj.bias'));
  assert.ok(keys.includes('base_model.model.transformer.h.1.ln_2.bias'));
  assert.ok(keys.includes('base_model.model.transformer.ln_f.bias'));
  assert.equal(keys.filter((k) => k.endsWith('bias')).length, 2 * 6 + 1);
  assert.ok(all.trainableParameters().every(([n]) => n.includes('.lora_') || n.endsWith('.bias')));
  const only = injectLora(tinyGpt2(), { target_modules: ['c_attn'], bias: 'lora_only', r: 2 });
  const biasKeys = [...only.stateDict().keys()].filter((k) => k.endsWith('bias'));
  assert.deepEqual(biasKeys, ['base_model.model.transformer.h.0.attn.c_attn.base_layer.bias', 'base_model.model.transformer.h.1.attn.c_attn.base_layer.bias']);
  // Loading accepts the pre-base_layer key too.
  const sd = new Map([...only.stateDict()].map(([k, v]) => [k.replace('.base_layer.bias', '.bias'), v.clone()] as [string, tf.Tensor]));
  only.loadStateDict(sd);
});

test('two adapters on one model: PeftModel switches between them', () => {
  const m = tinyLlama();
  const ids = sampleIds(2, 4, VOCAB);
  const y0 = logits(m, ids);
  const a = injectLora(m, { target_modules: ['q_proj', 'v_proj'], init_lora_weights: false }, { adapterName: 'a', seed: 1 });
  const ya = logits(m, ids);
  const b = injectLora(m, { target_modules: ['q_proj', 'o_proj'], init_lora_weights: false, r: 2 }, { adapterName: 'b', seed: 2 });
  const q = m.getSubmodule('model.layers.0.self_attn.q_proj') as LoraLayer;
  assert.deepEqual(q.adapterNames(), ['a', 'b']);
  assert.throws(() => injectLora(m, { target_modules: ['k_proj'] }, { adapterName: 'a' }), /already has an adapter named "a"/);
  const pm = new PeftModel({ model: m, source: 'tiny' });
  pm.addAdapter(a);
  pm.addAdapter(b); // active: b only
  const yb = logits(m, ids);
  assert.ok(maxAbsDiff(yb, ya) > 1e-3);
  pm.setActive(['a']);
  assert.ok(maxAbsDiff(logits(m, ids), ya) < 1e-6);
  assert.ok(a.trainableParameters().every(([, v]) => v.trainable) && b.trainableParameters().every(([, v]) => !v.trainable));
  pm.setActive([]);
  assert.equal(maxAbsDiff(logits(m, ids), y0), 0);
  pm.setActive(['a', 'b']);
  assert.ok(maxAbsDiff(logits(m, ids), ya) > 1e-3);
  assert.deepEqual(pm.trainableParameters().length, a.trainableParameters().length + b.trainableParameters().length);
  // Each adapter saves only its own tensors, without its name.
  assert.ok([...b.stateDict().keys()].every((k) => /\.(q|o)_proj\.lora_[AB]\.weight$/.test(k)));
  // Removing one leaves the other working.
  b.dispose();
  pm.setActive(['a']);
  assert.ok(maxAbsDiff(logits(m, ids), ya) < 1e-6);
  assert.ok(m.getSubmodule('model.layers.0.self_attn.o_proj') instanceof Linear);
});

test('seed: the same seed gives the same A, and the shared random stream is left where it was', () => {
  const model1 = tinyLlama();
  manualSeed(5);
  const h1 = injectLora(model1, { target_modules: ['q_proj'] }, { seed: 123 });
  const after1 = random();
  const model2 = tinyLlama();
  manualSeed(5);
  const h2 = injectLora(model2, { target_modules: ['q_proj'] }, { seed: 123 });
  const after2 = random();
  const k = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
  assert.equal(maxAbsDiff(h1.stateDict().get(k)!, h2.stateDict().get(k)!), 0);
  assert.equal(after1, after2);
});

test('invalid configs fail before anything changes, naming the field', () => {
  const m = tinyLlama();
  assert.throws(() => injectLora(m, { r: 0 } as never), (e: Error) => e instanceof UserError && e.details.pointer === '/r');
  assert.throws(() => injectLora(m, { target_modules: ['q_proj'], rank_pattern: { 'q_(': 2 } }), (e: Error) => e instanceof UserError && e.details.pointer === '/rank_pattern/q_(');
  assert.throws(() => injectLora(m, { target_modules: ['q_proj'], modules_to_save: ['q_proj'] }), /found no module to wrap.*modules in modules_to_save are never LoRA targets/);
  assert.equal(wrapped(m).length, 0);
});

test('DoRA on GPT-2 (Conv1D) and LoRA+DoRA on its tied wte: HF keys, training, merge, export and reload, what is refused', () => {
  const m = tinyGpt2();
  const baseSd = new Map([...m.stateDict()].map(([k, v]) => [k, v.clone()]));
  const h = injectLora(m, { target_modules: ['c_attn', 'wte'], r: 2, use_dora: true, init_lora_weights: false }, { seed: 5 });
  assert.ok(m.transformer.wte instanceof LoraEmbedding);
  const shapes = Object.fromEntries([...h.stateDict()].filter(([k]) => k.includes('.h.0.') || k.includes('wte')).map(([k, v]) => [k, v.shape]));
  assert.deepEqual(shapes, {
    'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': [2, 8],
    'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': [24, 2],
    'base_model.model.transformer.h.0.attn.c_attn.lora_magnitude_vector': [24],
    'base_model.model.transformer.wte.lora_embedding_A': [2, VOCAB],
    'base_model.model.transformer.wte.lora_embedding_B': [8, 2],
    'base_model.model.transformer.wte.lora_magnitude_vector': [8],
  }); // no wte.base_layer.weight: HF saves embedding tables only for embed_tokens / lm_head targets
  assert.equal(h.adapterConfig().use_dora, true);
  // Random A and B, and m moved off its init, so that every part matters.
  for (const [k, v] of h.trainableParameters()) if (k.endsWith('lora_magnitude_vector')) v.assign(tf.mul(v, tf.randomUniform(v.shape, 0.5, 1.5, 'float32', 9)));
  const ids = sampleIds(2, 5, VOCAB, 4);
  const y = logits(m, ids);
  assert.ok(maxAbsDiff(y, (h.setEnabled(false), logits(m, ids))) > 1e-3, 'the adapter changes the output');
  h.setEnabled(true);

  // One training step: every trainable tensor gets a gradient, the base none.
  const vars = h.trainableParameters().map(([, v]) => v);
  const { grads } = tf.variableGrads(() => tf.mean(tf.square(logits(m, ids))) as tf.Scalar, vars);
  for (const [k, v] of h.trainableParameters()) assert.ok(tf.max(tf.abs(grads[v.name])).dataSync()[0] > 0, `gradient of ${k}`);
  assert.ok(!(m.transformer.h.at(0).attn.c_attn as LoraLayer).weight!.trainable);

  // Merging folds the update into wte's table, which lm_head shares (tied), so the logits change
  // as in HF PEFT (which warns); each wrapped layer's own output is the same merged and unmerged.
  const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 3);
  const c0 = m.transformer.h.at(0).attn.c_attn.forward(x);
  const e0 = m.transformer.wte.forward(ids);
  h.merge();
  assert.ok(maxAbsDiff(m.transformer.h.at(0).attn.c_attn.forward(x), c0) < 1e-5, 'merged c_attn (Conv1D)');
  assert.ok(maxAbsDiff(m.transformer.wte.forward(ids), e0) < 1e-5, 'merged wte');
  assert.match(h.warnings.join("\n"), /merging LoRA into transformer\.wte, whose weight is tied/);
  h.unmerge();
  for (const [k, v] of baseSd) if (!k.includes('lora_')) assert.ok(maxAbsDiff(m.stateDict().get(k)!, v) < 1e-5, `${k} restored`);

  // Mixed batches and weighted combinations refuse DoRA, as HF PEFT does for mixed batches.
  const peft = new PeftModel({ model: m, source: 'tiny' } as LoadedModel);
  peft.addAdapter(h);
  assert.throws(() => peft.forward({ inputIds: ids }, { adapterNames: ['default', 'default'] }), /DoRA/);
  assert.throws(() => peft.addWeightedAdapter(['default'], [1], 'w', 'linear'), (e: Error) => e instanceof UserError && /DoRA/.test(e.message));

  const tmp = scratch();
  try {
    writeHfAdapter(h, tmp.dir, null);
    const m2 = tinyGpt2();
    m2.loadStateDict(baseSd);
    loadHfLoraAdapter(m2, tmp.dir);
    assert.ok(maxAbsDiff(logits(m2, ids), y) < 1e-6, 'reloaded');
    // A DoRA file onto a plain-LoRA injection names the mismatch.
    const m3 = tinyGpt2();
    const plain = injectLora(m3, { target_modules: ['c_attn', 'wte'], r: 2 });
    assert.throws(() => plain.loadStateDict(h.stateDict()), (e: Error) => e instanceof UserError && /DoRA magnitude vectors/.test(e.message) && /use_dora/.test(e.details.hint ?? ''));
  } finally {
    tmp.cleanup();
  }
});
