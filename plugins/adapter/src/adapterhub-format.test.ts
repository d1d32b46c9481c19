import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { StateDictError, inspectAdapter, readSafetensors } from '@peftkit/models';
import {
  ADAPTERHUB_CONFIG_NAME,
  ADAPTERHUB_HEAD_CONFIG_NAME,
  ADAPTERHUB_HEAD_WEIGHTS_NAME,
  ADAPTERHUB_WEIGHTS_NAME,
  configFromAdapterHub,
  houlsbyMethod,
  injectBottleneckAdapter,
  isAdapterHubBottleneckConfig,
  loadAdapterHub,
} from './index.js';
import { TINY_CONFIGS, cloneModel, logitsOf, maxAbsDiff, sampleIds, scratch, tinyModel } from '@peftkit/models/testing';

const tmp = scratch();
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

const ctx = { seed: 7 };

/** The Pfeiffer config as AdapterHub writes it (the `config` of a real adapter_config.json, SeqBnConfig defaults). */
const SEQ_BN = {
  adapter_residual_before_ln: false, cross_adapter: false, factorized_phm_W: true, factorized_phm_rule: false,
  hypercomplex_nonlinearity: 'glorot-uniform', init_weights: 'bert', inv_adapter: null, inv_adapter_reduction_factor: null,
  is_parallel: false, learn_phm: true, leave_out: [], ln_after: false, ln_before: false, mh_adapter: false,
  non_linearity: 'relu', original_ln_after: true, original_ln_before: true, output_adapter: true, phm_bias: true,
  phm_c_init: 'normal', phm_dim: 4, phm_init_range: 0.0001, phm_layer: false, phm_rank: 1, reduction_factor: 16,
  residual_before_ln: true, scaling: 1.0, shared_W_phm: false, shared_phm_rule: true, use_gating: false,
};

describe('AdapterHub format: keys', () => {
  const cases: [Parameters<typeof tinyModel>[0], string[]][] = [
    ['gpt2', ['transformer.h.0.attention_adapters.adapters.sst.adapter_down.0.weight', 'transformer.h.0.output_adapters.adapters.sst.adapter_up.bias']],
    ['llama', ['model.layers.1.attention_adapters.adapters.sst.adapter_down.0.bias', 'model.layers.1.output_adapters.adapters.sst.adapter_up.weight']],
    ['bert', ['encoder.layer.0.attention.output.adapters.sst.adapter_down.0.weight', 'encoder.layer.1.output.adapters.sst.adapter_up.weight']],
    ['distilbert', ['transformer.layer.0.attention_adapters.adapters.sst.adapter_up.weight', 'transformer.layer.1.output_adapters.adapters.sst.adapter_down.0.weight']],
  ];
  for (const [type, keys] of cases) {
    it(`${type}: AdapterHub's module paths, the adapter's name in every key`, () => {
      const h = injectBottleneckAdapter(tinyModel(type), { reduction_factor: 4 }, { ...ctx, adapterName: 'sst' }, 'houlsby');
      const sd = h.stateDict();
      for (const k of keys) assert.ok(sd.has(k), `${type}: missing ${k}; have ${[...sd.keys()].slice(0, 4).join(', ')} ...`);
      assert.equal(sd.size, 4 * 4); // 2 layers × 2 adapters × 4 tensors
      assert.deepEqual(sd.get(keys[0].replace(/adapter_(up|down)\.(0\.)?(weight|bias)$/, 'adapter_down.0.weight'))!.shape, [4, 16]);
    });
  }

  it('keys follow a name set after injection (the inject step sets handle.name)', () => {
    const h = injectBottleneckAdapter(tinyModel('gpt2'), {}, ctx, 'pfeiffer');
    h.name = 'renamed';
    assert.ok([...h.stateDict().keys()].every((k) => k.includes('.adapters.renamed.')));
  });
});

describe('AdapterHub format: save and load', () => {
  it('round trip: the files, then the same outputs from a fresh copy of the base', () => {
    const model = tinyModel('gpt2');
    const copy = cloneModel(model);
    const ids = sampleIds(2, 5, 50);
    const h = injectBottleneckAdapter(model, { reduction_factor: 4, non_linearity: 'gelu' }, { ...ctx, adapterName: 'sst-2' }, 'houlsby');
    for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', 4));
    const adapted = logitsOf(model, ids);
    const dir = join(tmp.dir, 'gpt2-houlsby');
    const files = h.save(dir, { baseModelNameOrPath: 'tiny/gpt2' });
    assert.deepEqual(files.sort(), [ADAPTERHUB_CONFIG_NAME, ADAPTERHUB_WEIGHTS_NAME].sort());

    const text = readFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), 'utf8');
    const json = JSON.parse(text);
    assert.deepEqual(Object.keys(json), ['config', 'hidden_size', 'model_class', 'model_name', 'model_type', 'name', 'version']);
    assert.equal(json.name, 'sst-2');
    assert.equal(json.hidden_size, 16);
    assert.equal(json.model_class, 'GPT2LMHeadModel');
    assert.equal(json.model_name, 'tiny/gpt2');
    assert.equal(json.model_type, 'gpt2');
    assert.equal(json.config.mh_adapter, true);
    assert.equal(json.config.output_adapter, true);
    assert.equal(json.config.reduction_factor, 4);
    assert.equal(json.config.non_linearity, 'gelu');
    assert.equal(json.config.original_ln_before, false);
    assert.equal(json.config.residual_before_ln, true);
    assert.equal(json.config.phm_layer, false);
    assert.deepEqual(Object.keys(json.config), [...Object.keys(json.config)].sort());
    assert.ok(isAdapterHubBottleneckConfig(json));

    const { tensors } = readSafetensors(join(dir, ADAPTERHUB_WEIGHTS_NAME));
    assert.equal(tensors.size, h.stateDict().size);
    for (const [k, v] of h.stateDict()) assert.equal(maxAbsDiff(tensors.get(k)!, v), 0, k);
    tf.dispose([...tensors.values()]);

    const loaded = loadAdapterHub(copy, dir, ctx);
    assert.equal(loaded.name, 'sst-2');
    assert.equal(loaded.config.non_linearity, 'gelu');
    for (const [k, v] of h.stateDict()) assert.equal(maxAbsDiff(loaded.stateDict().get(k)!, v), 0, k);
    assert.equal(maxAbsDiff(adapted, logitsOf(copy, ids)), 0);
    // Through the method hook, under another name (AdapterHub's load_as).
    const third = cloneModel(copy);
    loaded.dispose();
    const again = houlsbyMethod.loadAdapter!(third, dir, { ...ctx, adapterName: 'other', logger: undefined as never }) as ReturnType<typeof loadAdapterHub>;
    assert.equal(again.name, 'other');
    assert.ok(maxAbsDiff(adapted, logitsOf(third, ids)) < 1e-6);
  });

  it('parallel adapters round-trip on BERT (AdapterHub\'s output-module layout)', () => {
    const model = tinyModel('bert');
    const copy = cloneModel(model);
    const ids = sampleIds(1, 6, 50, 5);
    const h = injectBottleneckAdapter(model, { mh_adapter: true }, ctx, 'parallel-adapter');
    for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', 8));
    const dir = join(tmp.dir, 'bert-par');
    h.save(dir);
    const json = JSON.parse(readFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), 'utf8'));
    assert.equal(json.config.is_parallel, true);
    assert.equal(json.config.scaling, 4);
    const loaded = loadAdapterHub(copy, dir, ctx);
    assert.equal(loaded.method, 'parallel-adapter');
    assert.ok(maxAbsDiff(logitsOf(model, ids), logitsOf(copy, ids)) < 1e-6);
  });

  it('a model of another width is refused, naming hidden_size', () => {
    const dir = join(tmp.dir, 'width');
    injectBottleneckAdapter(tinyModel('gpt2'), {}, ctx, 'pfeiffer').save(dir);
    const wide = tinyModel('gpt2');
    const json = JSON.parse(readFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), 'utf8'));
    writeFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), JSON.stringify({ ...json, hidden_size: 768 }));
    assert.throws(() => loadAdapterHub(wide, dir), (e: unknown) => e instanceof UserError && /hidden_size 768/.test(e.message) && e.details.pointer === '/hidden_size');
    // Nothing was injected.
    assert.equal(wide.namedModules().length, tinyModel('gpt2').namedModules().length);
  });

  it('tensors for other layers are refused by name', () => {
    const h = injectBottleneckAdapter(tinyModel('gpt2'), {}, ctx, 'pfeiffer');
    const sd = new Map(h.stateDict());
    const [k, v] = [...sd][0];
    sd.delete(k);
    sd.set(k.replace('.h.0.', '.h.7.'), v);
    assert.throws(() => h.loadStateDict(sd), (e: unknown) => e instanceof StateDictError && e.message.includes('transformer.h.7.output_adapters') && e.message.includes('missing'));
  });

  it('a folder with only the pickle is refused, and the pickle is never read', () => {
    const dir = join(tmp.dir, 'pickle');
    injectBottleneckAdapter(tinyModel('gpt2'), {}, ctx, 'pfeiffer').save(dir);
    writeFileSync(join(dir, 'pytorch_adapter.bin'), 'not a real pickle');
    rmSync(join(dir, ADAPTERHUB_WEIGHTS_NAME));
    assert.throws(() => loadAdapterHub(tinyModel('gpt2'), dir), /pickle/);
  });
});

describe('AdapterHub format: configs', () => {
  it('seq_bn as AdapterHub saves it (original_ln_before: true) is refused with its pointer', () => {
    const dir = join(tmp.dir, 'seqbn');
    const model = tinyModel('bert');
    const h = injectBottleneckAdapter(model, {}, ctx, 'pfeiffer');
    h.save(dir);
    const json = JSON.parse(readFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), 'utf8'));
    writeFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), JSON.stringify({ ...json, config: SEQ_BN }));
    assert.throws(() => loadAdapterHub(tinyModel('bert'), dir), (e: unknown) => e instanceof UserError && e.details.pointer === '/config/original_ln_before');
  });

  it('double_seq_bn is read; old files (no version) rename gelu to gelu_new; other methods are refused', () => {
    const houlsby = { ...SEQ_BN, mh_adapter: true, original_ln_before: false, non_linearity: 'swish' };
    const c = configFromAdapterHub({ config: houlsby, name: 'x', version: 'adapters.1.0.0' }, 'f.json');
    assert.equal(c.mh_adapter, true);
    assert.equal(c.non_linearity, 'swish');
    assert.equal(c.init_weights, 'bert');
    assert.equal(configFromAdapterHub({ config: { ...houlsby, non_linearity: 'gelu' }, name: 'x' }, 'f.json').non_linearity, 'gelu_new');
    assert.equal(configFromAdapterHub({ config: { ...houlsby, non_linearity: 'gelu' }, name: 'x', version: '3.2.1' }, 'f.json').non_linearity, 'gelu');
    assert.throws(() => configFromAdapterHub({ config: { architecture: 'lora', r: 8 }, name: 'x' }, 'f.json'), /lora adapter/);
    assert.throws(() => configFromAdapterHub({ config: { ...houlsby, phm_layer: true }, name: 'x' }, 'f.json'), (e: unknown) => e instanceof UserError && e.details.pointer === '/config/phm_layer');
    assert.throws(() => configFromAdapterHub({ config: 'seq_bn', name: 'x' }, 'f.json'), /original_ln_before/);
    const warnings: string[] = [];
    configFromAdapterHub({ config: { ...houlsby, brand_new_key: 1 }, name: 'x' }, 'f.json', (m) => warnings.push(m));
    assert.match(warnings.join(), /brand_new_key/);
    assert.equal(isAdapterHubBottleneckConfig({ peft_type: 'LORA', r: 8 }), false);
    assert.equal(isAdapterHubBottleneckConfig({ config: houlsby, name: 'x' }), true);
  });
});

describe('bottleneck adapters on a sequence classifier: the head is trained and saved (AdapterHub prediction head)', () => {
  for (const method of ['houlsby', 'pfeiffer', 'parallel-adapter'] as const) {
    it(`${method}: the head is trainable beside the adapters, switched off with them, saved as head_config.json + model_head.safetensors, and loaded back`, async () => {
      const config = { ...TINY_CONFIGS.gpt2, architectures: ['GPT2ForSequenceClassification'], num_labels: 3, pad_token_id: 0 };
      const model = tinyModel(config);
      assert.equal(model.task, 'sequence-classification');
      const fresh = cloneModel(model);
      const ids = sampleIds(2, 5, 50);
      const base = logitsOf(model, ids);
      const h = injectBottleneckAdapter(model, { reduction_factor: 4 }, { ...ctx, adapterName: 'cls' }, method);
      const names = h.trainableParameters().map(([k]) => k);
      assert.ok(names.includes('score.weight'), names.join(', '));
      assert.deepEqual(h.trainableParameters().find(([k]) => k === 'score.weight')![1].shape, [3, 16]);
      assert.ok(h.trainableParameters().every(([, v]) => v.trainable));
      // "Training": the head and the adapters move; the base's own head stays as it was.
      let s = 11;
      for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.3, 'float32', s++));
      const adapted = logitsOf(model, ids);
      assert.ok(maxAbsDiff(adapted, base) > 1e-3);
      h.setEnabled(false);
      assert.ok(maxAbsDiff(logitsOf(model, ids), base) < 1e-6, 'disabled: the base with its own head');
      h.setEnabled(true);

      const dir = join(tmp.dir, `cls-${method}`);
      const files = h.save(dir, { baseModelNameOrPath: 'tiny/gpt2' });
      assert.deepEqual(files.sort(), [ADAPTERHUB_CONFIG_NAME, ADAPTERHUB_WEIGHTS_NAME, ADAPTERHUB_HEAD_CONFIG_NAME, ADAPTERHUB_HEAD_WEIGHTS_NAME].sort());
      assert.equal(JSON.parse(readFileSync(join(dir, ADAPTERHUB_CONFIG_NAME), 'utf8')).model_class, 'GPT2ForSequenceClassification');
      const head = JSON.parse(readFileSync(join(dir, ADAPTERHUB_HEAD_CONFIG_NAME), 'utf8'));
      assert.deepEqual([head.config, head.name, head.model_class, head.num_labels, head.label2id], [null, null, 'GPT2ForSequenceClassification', 3, { LABEL_0: 0, LABEL_1: 1, LABEL_2: 2 }]);
      const { tensors } = readSafetensors(join(dir, ADAPTERHUB_HEAD_WEIGHTS_NAME));
      assert.deepEqual([...tensors.keys()], ['score.weight']);
      assert.equal(maxAbsDiff(tensors.get('score.weight')!, h.stateDict().get('score.weight')!), 0);
      assert.ok(![...readSafetensors(join(dir, ADAPTERHUB_WEIGHTS_NAME)).tensors.keys()].some((k) => k.startsWith('score')));

      // Loaded onto a fresh classifier of the same base: the same outputs, head included.
      const back = loadAdapterHub(fresh, dir, ctx);
      assert.ok(maxAbsDiff(logitsOf(fresh, ids), adapted) < 1e-6);
      back.dispose();
      assert.ok(maxAbsDiff(logitsOf(fresh, ids), base) < 1e-6, 'disposed: the base\'s own head again');
      // Inspect reads the head: a 3-label SEQ_CLS adapter (what classify builds the base's head with).
      const ins = await inspectAdapter(dir);
      assert.deepEqual([ins.taskType, ins.numLabels], ['SEQ_CLS', 3]);
    });
  }

  it('a causal LM keeps no head copy; a head of another size is refused by name', () => {
    const lm = tinyModel('gpt2');
    const h = injectBottleneckAdapter(lm, { reduction_factor: 4 }, ctx, 'houlsby');
    assert.ok(!h.trainableParameters().some(([k]) => !k.includes('.adapters.')));
    const two = tinyModel({ ...TINY_CONFIGS.gpt2, architectures: ['GPT2ForSequenceClassification'], num_labels: 2, pad_token_id: 0 });
    const three = tinyModel({ ...TINY_CONFIGS.gpt2, architectures: ['GPT2ForSequenceClassification'], num_labels: 3, pad_token_id: 0 });
    const dir = join(tmp.dir, 'cls-3');
    injectBottleneckAdapter(three, { reduction_factor: 4 }, ctx, 'houlsby').save(dir);
    assert.throws(() => loadAdapterHub(two, dir, ctx), (e: Error) => e instanceof StateDictError && /score\.weight: expected \[2, 16\], got \[3, 16\]/.test(e.message));
  });
});
