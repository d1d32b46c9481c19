import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { createModel } from '../architectures/index.js';
import type { LoadedModel, ModelConfig } from '../model.js';
import { writeSafetensors, type WritableTensor } from '../io/safetensors.js';
import { hfFixture, repoRoot, scratch } from '../testing/index.js';
import { inspectAdapter } from './inspect.js';

const tmp = scratch('peftkit-inspect-');
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

const loaded = (config: ModelConfig, task: 'causal-lm' | 'sequence-classification' | 'base', source = 'test-base'): LoadedModel => ({ model: createModel(config, task), source });
const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Writes an adapter folder from a config and named tensors (F32 unless raw). */
function folder(name: string, config: Record<string, unknown>, tensors: Record<string, WritableTensor>, weights = 'adapter_model.safetensors'): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify(config, null, 2));
  writeSafetensors(join(dir, weights), tensors, { format: 'pt' });
  return dir;
}

describe('inspectAdapter on the real HF fixtures', () => {
  it('gpt2-lora-tigrinya: LoRA r 8 / alpha 32 on c_attn and both c_proj, 12 layers', async () => {
    const dir = hfFixture('gpt2-lora-tigrinya');
    const ins = await inspectAdapter(dir);
    assert.deepEqual([ins.kind, ins.format, ins.method, ins.taskType, ins.baseModel, ins.peftVersion], ['adapter', 'hf-peft', 'LORA', 'CAUSAL_LM', 'gpt2', null]);
    const l = ins.lora!;
    assert.deepEqual([l.r, l.loraAlpha, l.scaling, l.loraDropout, l.fanInFanOut, l.useRslora, l.bias], [8, 32, 4, 0.05, true, false, 'none']);
    assert.deepEqual(ins.targetModules, ['c_attn', 'c_proj']);
    assert.equal(l.modules.length, 36);
    assert.deepEqual(l.layers, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.deepEqual(l.modules.slice(0, 3), [
      { name: 'transformer.h.0.attn.c_attn', kind: 'linear', rank: 8, inFeatures: 768, outFeatures: 2304, dora: false },
      { name: 'transformer.h.0.attn.c_proj', kind: 'linear', rank: 8, inFeatures: 768, outFeatures: 768, dora: false },
      { name: 'transformer.h.0.mlp.c_proj', kind: 'linear', rank: 8, inFeatures: 3072, outFeatures: 768, dora: false },
    ]);
    assert.equal(l.modules[35].name, 'transformer.h.11.mlp.c_proj', 'layers in numeric order');
    // Parameters: r·(in + out) per module, the same as the header's element count.
    assert.equal(ins.numParameters, sum(l.modules.map((m) => m.rank * (m.inFeatures + m.outFeatures))));
    assert.equal(ins.numParameters, 811_008);
    assert.deepEqual(ins.parameterBreakdown, { adapter: 811_008, modulesToSave: 0, other: 0 });
    assert.equal(ins.fileBytes, statSync(join(dir, 'adapter_model.safetensors')).size);
    assert.equal(ins.fileBytes, 3_253_104);
    assert.deepEqual(ins.dtypes, { F32: 72 });
    assert.deepEqual(ins.unknownConfigKeys, {});
    assert.deepEqual(ins.unexplainedTensors, []);
    assert.deepEqual(ins.notes, [], 'nothing unusual');
    assert.match(ins.text, /r 8, lora_alpha 32 \(scaling 4\)/);
    assert.match(ins.text, /transformer\.h\.N\.attn\.c_attn \(12×\), transformer\.h\.N\.attn\.c_proj \(12×\), transformer\.h\.N\.mlp\.c_proj \(12×\)/);
  });

  it('smollm-lora-instruct: r 16 on q_proj / v_proj of 30 Llama layers, grouped-query v_proj [192]', async () => {
    const ins = await inspectAdapter(hfFixture('smollm-lora-instruct'));
    assert.deepEqual([ins.method, ins.taskType, ins.baseModel], ['LORA', null, 'HuggingFaceTB/SmolLM-135M-Instruct']);
    assert.deepEqual([ins.lora!.r, ins.lora!.loraAlpha, ins.lora!.scaling], [16, 32, 2]);
    assert.deepEqual(ins.targetModules, ['v_proj', 'q_proj']);
    assert.equal(ins.lora!.modules.length, 60);
    assert.equal(ins.lora!.layers.length, 30);
    const v0 = ins.lora!.modules.find((m) => m.name === 'model.layers.0.self_attn.v_proj')!;
    assert.deepEqual([v0.inFeatures, v0.outFeatures], [576, 192]);
    assert.equal(ins.numParameters, 30 * (16 * (576 + 576) + 16 * (576 + 192)));
    assert.deepEqual(ins.unknownConfigKeys, {}, 'auto_mapping is a PeftConfig field');
    assert.deepEqual(ins.notes, ['task_type is null: HF PEFT builds a plain PeftModel; peftkit uses the base model\'s own task']);
  });

  it('distilbert-lora-emotion-seqcls: PEFT 0.20.0 keys, heads saved whole, classifier listed twice', async () => {
    const ins = await inspectAdapter(hfFixture('distilbert-lora-emotion-seqcls'));
    assert.deepEqual([ins.method, ins.taskType, ins.peftVersion, ins.baseModel], ['LORA', 'SEQ_CLS', '0.20.0', 'distilbert-base-uncased']);
    assert.deepEqual([ins.lora!.r, ins.lora!.loraAlpha, ins.lora!.modules.length], [8, 16, 12]);
    assert.deepEqual(ins.lora!.modulesToSave, ['pre_classifier', 'classifier', 'classifier', 'score']);
    assert.equal(ins.numLabels, 6);
    // LoRA: 6 layers × 2 × 8·(768 + 768); heads: pre_classifier 768·768 + 768, classifier 6·768 + 6.
    assert.deepEqual(ins.parameterBreakdown, { adapter: 6 * 2 * 8 * 1536, modulesToSave: 768 * 768 + 768 + 6 * 768 + 6, other: 0 });
    assert.equal(ins.numParameters, 742_662);
    assert.deepEqual(ins.unknownConfigKeys, { lora_ga_config: null, monteclora_config: null, velora_config: null });
    assert.ok(ins.notes.some((n) => /all null, false or empty .*: lora_ga_config, monteclora_config, velora_config/.test(n)));
    assert.ok(ins.notes.some((n) => /modules_to_save lists classifier 2 times/.test(n)));
    assert.ok(ins.notes.some((n) => /modules_to_save entries with no tensor in the file: score/.test(n)));
    assert.deepEqual(ins.unexplainedTensors, []);
  });

  it('bloom-prompt-tuning and its checkpoint-500: 20 virtual tokens × 1024', async () => {
    for (const set of ['bloom-prompt-tuning', 'bloom-prompt-tuning/checkpoint-500']) {
      const ins = await inspectAdapter(hfFixture(set));
      assert.deepEqual([ins.method, ins.taskType, ins.baseModel, ins.format], ['PROMPT_TUNING', 'CAUSAL_LM', 'bigscience/bloomz-560m', 'hf-peft'], set);
      const p = ins.prompt!;
      assert.deepEqual([p.numVirtualTokens, p.tokenDim, p.numTransformerSubmodules, p.numLayers, p.init, p.tableShape], [20, 1024, 1, 24, 'RANDOM', [20, 1024]]);
      assert.equal(ins.numParameters, 20 * 1024);
      assert.equal(ins.fileBytes, 82_040);
      assert.equal(ins.lora, undefined);
      assert.deepEqual(ins.unknownConfigKeys, {});
    }
    const parent = await inspectAdapter(hfFixture('bloom-prompt-tuning'));
    assert.deepEqual(parent.notes, ['subfolder checkpoint-500/ holds another adapter (a training checkpoint); inspect it separately']);
    const ckpt = await inspectAdapter(hfFixture('bloom-prompt-tuning/checkpoint-500'));
    assert.deepEqual(ckpt.notes, ['trainer_state.json: a Trainer checkpoint at step 500 of 700, epoch 71.43']);
    assert.ok(parent.folderBytes > ckpt.folderBytes, 'the parent folder includes the checkpoint');
  });

  it('ckpt-gpt2-*: model checkpoints, reported as models and not adapters', async () => {
    const fake = await inspectAdapter(hfFixture('ckpt-gpt2-fake-nembd2'));
    assert.deepEqual([fake.kind, fake.format, fake.method], ['model', 'hf-model', null]);
    assert.deepEqual(fake.model, { modelType: 'gpt2', architectures: ['GPT2LMHeadModel'], numLayers: 1, hiddenSize: 2, vocabSize: 50257 });
    assert.equal(fake.taskType, 'causal-lm');
    assert.equal(fake.numParameters, 50257 * 2 + 1024 * 2 + 2 * 2 * 2 + (2 * 6 + 6) + (2 * 2 + 2) + (2 * 8 + 8) + (8 * 2 + 2) + 2 * 2);
    assert.match(fake.notes[0], /model checkpoint \(gpt2, GPT2LMHeadModel\), not an adapter/);
    assert.match(fake.text, /MODEL CHECKPOINT, not an adapter/);
    const tiny = await inspectAdapter(hfFixture('ckpt-gpt2-tiny-vocab'));
    assert.deepEqual([tiny.kind, tiny.model!.architectures, tiny.model!.vocabSize, tiny.taskType, tiny.numParameters], ['model', ['GPT2Model'], 21, 'base', 2168]);
    // Given a base, a model is not checked against it.
    const withBase = await inspectAdapter(hfFixture('ckpt-gpt2-tiny-vocab'), { base: hfFixture('ckpt-gpt2-fake-nembd2') });
    assert.equal(withBase.compatibility, undefined);
    assert.ok(withBase.notes.includes('no compatibility check: the folder is a model, not an adapter'));
  });
});

describe('compatibility with a base model', () => {
  it('tigrinya vs ckpt-gpt2-fake-nembd2 (n_embd 2, one layer): every mismatch named, expected and got', async () => {
    const ins = await inspectAdapter(hfFixture('gpt2-lora-tigrinya'), { base: hfFixture('ckpt-gpt2-fake-nembd2') });
    const c = ins.compatibility!;
    assert.equal(c.compatible, false);
    assert.equal(c.checked, 36);
    const attn = c.mismatches.filter((m) => m.name === 'transformer.h.0.attn.c_attn');
    assert.deepEqual(attn.map((m) => [m.expected, m.got]), [['768 input features', '2'], ['2304 output features', '6']]);
    assert.equal(attn[0].message, 'transformer.h.0.attn.c_attn: lora_A is [8, 768], so the adapter expects 768 input features, but the base\'s layer takes 2');
    const fc = c.mismatches.filter((m) => m.name === 'transformer.h.0.mlp.c_proj');
    assert.deepEqual(fc.map((m) => [m.expected, m.got]), [['3072 input features', '8'], ['768 output features', '2']], 'Conv1D [in, out] read the right way round');
    const absent = c.mismatches.filter((m) => m.got === 'none');
    assert.equal(absent.length, 33, 'layers 1-11, 3 modules each');
    assert.match(absent.find((m) => m.name === 'transformer.h.7.attn.c_proj')!.message, /no such linear layer \(the adapter wraps layer 7; the base has only layer 0\)/);
    assert.equal(c.mismatches.length, 6 + 33);
    assert.ok(c.notes.includes('the adapter has modules in layers 0-11; the base has 1'));
    assert.match(ins.text, /compatibility with .*ckpt-gpt2-fake-nembd2: 39 mismatches in 36 checked/);
  });

  it('tigrinya vs a loaded one-layer GPT-2 of n_embd 768: layer 0 fits; only the missing layers are reported', async () => {
    const base = loaded({ model_type: 'gpt2', n_embd: 768, n_layer: 1, n_head: 12, vocab_size: 8, n_positions: 8 }, 'causal-lm', 'gpt2-one-layer');
    const c = (await inspectAdapter(hfFixture('gpt2-lora-tigrinya'), { base })).compatibility!;
    assert.equal(c.mismatches.length, 33);
    assert.ok(c.mismatches.every((m) => m.got === 'none' && !m.name.includes('.h.0.')));
    assert.ok(c.notes.includes('the adapter was trained on gpt2; checking against gpt2-one-layer'));
    base.model.dispose();
  });

  it('smollm vs a one-layer Llama with SmolLM\'s widths: q_proj 576 → 576 and v_proj 576 → 192 fit', async () => {
    const base = loaded({ model_type: 'llama', hidden_size: 576, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 8 }, 'causal-lm');
    const c = (await inspectAdapter(hfFixture('smollm-lora-instruct'), { base })).compatibility!;
    assert.equal(c.mismatches.length, 58);
    assert.ok(c.mismatches.every((m) => m.got === 'none'));
    const narrow = loaded({ model_type: 'llama', hidden_size: 576, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 9, num_key_value_heads: 9, vocab_size: 8 }, 'causal-lm');
    const c2 = (await inspectAdapter(hfFixture('smollm-lora-instruct'), { base: narrow })).compatibility!;
    const v = c2.mismatches.find((m) => m.name === 'model.layers.0.self_attn.v_proj')!;
    assert.deepEqual([v.expected, v.got], ['192 output features', '576'], 'grouped-query width differs from a base without GQA');
    base.model.dispose();
    narrow.model.dispose();
  });

  it('distilbert SEQ_CLS: the head must exist with 6 labels, and the base must be a classifier', async () => {
    const cfg = { model_type: 'distilbert', dim: 768, n_layers: 1, n_heads: 12, hidden_dim: 8, vocab_size: 8, max_position_embeddings: 8 };
    const six = loaded({ ...cfg, num_labels: 6 }, 'sequence-classification');
    const ok = (await inspectAdapter(hfFixture('distilbert-lora-emotion-seqcls'), { base: six })).compatibility!;
    assert.equal(ok.checked, 12 + 4);
    assert.deepEqual(ok.mismatches.map((m) => m.name), Array.from({ length: 5 }, (_, i) => [`distilbert.transformer.layer.${i + 1}.attention.q_lin`, `distilbert.transformer.layer.${i + 1}.attention.v_lin`]).flat());
    const three = loaded({ ...cfg, num_labels: 3 }, 'sequence-classification');
    const c3 = (await inspectAdapter(hfFixture('distilbert-lora-emotion-seqcls'), { base: three })).compatibility!;
    const head = c3.mismatches.filter((m) => m.name.startsWith('classifier.'));
    assert.deepEqual(head.map((m) => [m.name, m.expected, m.got]), [['classifier.bias', '[6]', '[3]'], ['classifier.weight', '[6, 768]', '[3, 768]']]);
    assert.match(head[1].message, /the adapter's head has 6 labels, the base's 3/);
    const bare = loaded(cfg, 'base');
    const cb = (await inspectAdapter(hfFixture('distilbert-lora-emotion-seqcls'), { base: bare })).compatibility!;
    const task = cb.mismatches.find((m) => m.name === 'task_type')!;
    assert.match(task.message, /SEQ_CLS but the base is loaded as a base model: load it with task sequence-classification and num_labels 6/);
    assert.match(cb.mismatches.find((m) => m.name === 'classifier.weight')!.message, /the base has no such tensor/);
    for (const b of [six, three, bare]) b.model.dispose();
  });

  it('bloom prompt tuning: token_dim 1024 against the base\'s hidden size', async () => {
    const small = await inspectAdapter(hfFixture('bloom-prompt-tuning'), { base: hfFixture('ckpt-gpt2-tiny-vocab') });
    assert.deepEqual(small.compatibility!.mismatches.map((m) => [m.name, m.expected, m.got, m.message]), [
      ['token_dim', 'hidden size 1024', '2', 'token_dim is 1024 but the base\'s hidden size (its embedding width) is 2'],
    ]);
    const wide = loaded({ model_type: 'llama', hidden_size: 1024, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 16, num_key_value_heads: 1, vocab_size: 8 }, 'causal-lm');
    const ok = (await inspectAdapter(hfFixture('bloom-prompt-tuning'), { base: wide })).compatibility!;
    assert.deepEqual([ok.compatible, ok.checked, ok.mismatches], [true, 1, []]);
    wide.model.dispose();
  });
});

describe('hand-made folders: AdapterHub, prefix tuning, the unusual', () => {
  const z = (...shape: number[]) => tf.zeros(shape);

  it('an AdapterHub Houlsby adapter: bottleneck 16 / 4 = 4 after attention and feed-forward, 2 layers', async () => {
    const tensors: Record<string, WritableTensor> = {};
    for (const i of [0, 1]) {
      for (const site of ['attention_adapters', 'output_adapters']) {
        const p = `transformer.h.${i}.${site}.adapters.sst.`;
        Object.assign(tensors, { [`${p}adapter_down.0.weight`]: z(4, 16), [`${p}adapter_down.0.bias`]: z(4), [`${p}adapter_up.weight`]: z(16, 4), [`${p}adapter_up.bias`]: z(16) });
      }
    }
    const config = {
      config: { architecture: 'bottleneck', mh_adapter: true, output_adapter: true, reduction_factor: 4, non_linearity: 'swish', original_ln_before: false, original_ln_after: true, residual_before_ln: true, ln_before: false, ln_after: false, init_weights: 'bert', is_parallel: false, scaling: 1.0, use_gating: false, phm_layer: false },
      hidden_size: 16, model_class: 'GPT2LMHeadModel', model_name: 'tiny/gpt2', model_type: 'gpt2', name: 'sst', version: 'adapters.1.1.0',
    };
    const dir = folder('adapterhub', config, tensors, 'adapter.safetensors');
    const ins = await inspectAdapter(dir);
    assert.deepEqual([ins.kind, ins.format, ins.method, ins.baseModel, ins.peftVersion], ['adapter', 'adapterhub', 'bottleneck', 'tiny/gpt2', 'adapters.1.1.0']);
    const b = ins.bottleneck!;
    assert.deepEqual([b.name, b.preset, b.hiddenSize, b.reductionFactor, b.bottleneckSizes, b.nonLinearity, b.layers], ['sst', 'houlsby', 16, 4, [4], 'swish', [0, 1]]);
    assert.equal(ins.numParameters, 4 * (2 * 16 * 4 + 16 + 4), '2 layers × 2 sites × (2·d·m + d + m)');
    assert.deepEqual(ins.notes, []);
    const fits = loaded({ model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 8, n_positions: 8 }, 'causal-lm');
    assert.deepEqual((await inspectAdapter(dir, { base: fits })).compatibility!.mismatches, []);
    const narrow = loaded({ model_type: 'gpt2', n_embd: 8, n_layer: 1, n_head: 2, vocab_size: 8, n_positions: 8 }, 'causal-lm');
    const c = (await inspectAdapter(dir, { base: narrow })).compatibility!;
    assert.deepEqual(c.mismatches.map((m) => m.message), ['hidden_size is 16 but the base\'s hidden size is 8', 'the adapter has adapters in layers 1, beyond the base\'s 1 layer']);
    fits.model.dispose();
    narrow.model.dispose();
  });

  it('prefix tuning: the table is num_layers × 2 × token_dim wide; checked against the base\'s key/value width', async () => {
    const dir = folder('prefix', { peft_type: 'PREFIX_TUNING', task_type: 'CAUSAL_LM', num_virtual_tokens: 3, token_dim: 8, num_layers: 2, num_attention_heads: 2, num_transformer_submodules: 1, prefix_projection: false, encoder_hidden_size: 8, base_model_name_or_path: null, inference_mode: true }, { prompt_embeddings: z(3, 2 * 2 * 8) });
    const ins = await inspectAdapter(dir);
    assert.deepEqual([ins.method, ins.prompt!.tableShape, ins.prompt!.prefixProjection, ins.numParameters], ['PREFIX_TUNING', [3, 32], false, 96]);
    assert.deepEqual(ins.notes, []);
    const gpt2 = loaded({ model_type: 'gpt2', n_embd: 8, n_layer: 2, n_head: 2, vocab_size: 8, n_positions: 8 }, 'causal-lm');
    assert.equal((await inspectAdapter(dir, { base: gpt2 })).compatibility!.compatible, true);
    const gqa = loaded({ model_type: 'llama', hidden_size: 8, intermediate_size: 8, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 8 }, 'causal-lm');
    const c = (await inspectAdapter(dir, { base: gqa })).compatibility!;
    assert.deepEqual(c.mismatches.map((m) => m.name), ['num_layers', 'prompt_embeddings']);
    assert.match(c.mismatches[1].message, /needs 24 columns \(3 layers × 2 × 4\)/);
    gpt2.model.dispose();
    gqa.model.dispose();
  });

  it('reports mixed dtypes, unexplained tensors, unknown keys with values, ranks and targets the config does not match', async () => {
    const f16 = { dtype: 'F16' as const, shape: [2, 8], data: new Uint16Array(16) };
    const dir = folder('odd', {
      peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 4, target_modules: ['c_attn'], rank_pattern: { c_fc: 3 }, use_magic_trick: true, some_future_field: null,
    }, {
      'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight': f16,
      'base_model.model.transformer.h.0.attn.c_attn.lora_B.weight': z(24, 2),
      'base_model.model.transformer.h.0.mlp.c_fc.lora_A.weight': z(4, 8),
      'base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight': z(32, 4),
      'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight': z(2, 8),
      'base_model.model.lm_head.weight': z(11, 8),
    });
    const ins = await inspectAdapter(dir);
    assert.deepEqual(ins.dtypes, { F32: 5, F16: 1 });
    assert.deepEqual(ins.unknownConfigKeys, { use_magic_trick: true, some_future_field: null });
    assert.deepEqual(ins.unexplainedTensors, ['base_model.model.lm_head.weight', 'base_model.model.transformer.h.0.attn.c_proj.lora_A.weight']);
    assert.deepEqual(ins.parameterBreakdown, { adapter: 16 + 48 + 32 + 128 + 16, modulesToSave: 0, other: 88 });
    const expected = [
      'mixed dtypes: 5 F32, 1 F16',
      'stored as F16; peftkit computes in float32 and upcasts on load',
      'config keys this reader does not know, all null, false or empty (likely from a newer PEFT, harmless): some_future_field',
      'config keys this reader does not know, with values: use_magic_trick = true; the adapter may rely on a feature peftkit lacks',
      'transformer.h.0.attn.c_proj has lora_A but no lora_B',
      'transformer.h.0.mlp.c_fc: rank 4 in the file, but the config says 3 (rank_pattern)',
      'transformer.h.0.mlp.c_fc has LoRA tensors but target_modules ["c_attn"] does not name it',
    ];
    for (const e of expected) assert.ok(ins.notes.includes(e), `missing note: ${e}\n${ins.notes.join('\n')}`);
    assert.ok(ins.notes.some((n) => n.startsWith('tensors the config does not explain (not LoRA, not in modules_to_save): base_model.model.lm_head.weight')));
  });

  it('a compatible hand-made LoRA adapter: no mismatch; bad folders are clear errors', async () => {
    const dir = folder('fits', { peft_type: 'LORA', task_type: 'CAUSAL_LM', r: 2, lora_alpha: 2, target_modules: ['c_attn', 'c_fc'] }, {
      'base_model.model.transformer.h.1.attn.c_attn.lora_A.weight': z(2, 8),
      'base_model.model.transformer.h.1.attn.c_attn.lora_B.weight': z(24, 2),
      'base_model.model.transformer.h.1.mlp.c_fc.lora_A.weight': z(2, 8),
      'base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight': z(32, 2),
    });
    const base = loaded({ model_type: 'gpt2', n_embd: 8, n_layer: 2, n_head: 2, vocab_size: 8, n_positions: 8 }, 'causal-lm');
    const ins = await inspectAdapter(dir, { base });
    assert.deepEqual([ins.compatibility!.compatible, ins.compatibility!.checked, ins.lora!.layers], [true, 2, [1]]);
    assert.match(ins.text, /compatibility with test-base: OK \(2 checked\)/);
    base.model.dispose();

    await assert.rejects(inspectAdapter(join(tmp.dir, 'nope')), (e: Error) => e instanceof UserError && /folder not found/.test(e.message));
    const empty = join(tmp.dir, 'empty');
    mkdirSync(join(empty, 'named'), { recursive: true });
    writeFileSync(join(empty, 'named', 'adapter_config.json'), '{}');
    writeFileSync(join(empty, 'README.md'), 'hi');
    await assert.rejects(inspectAdapter(empty), (e: Error) => e instanceof UserError && /neither an adapter folder .* it holds: README.md, named/.test(e.message) && /subfolders: named/.test((e as UserError).details.hint ?? ''));
    const pickle = join(tmp.dir, 'pickle');
    mkdirSync(pickle);
    writeFileSync(join(pickle, 'adapter_config.json'), JSON.stringify({ peft_type: 'LORA', r: 8, target_modules: ['q'] }));
    writeFileSync(join(pickle, 'adapter_model.bin'), 'PK');
    const p = await inspectAdapter(pickle);
    assert.equal(p.numParameters, null);
    assert.match(p.notes[0], /only in adapter_model\.bin, a PyTorch pickle, which peftkit does not load/);
  });
});

describe('DoRA and LoRA on embeddings (hf-golden, made by peft 0.21)', () => {
  const golden = (name: string) => resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf-golden', name, 'adapter');
  const llama = (vocab: number, hidden = 64) => loaded({ model_type: 'llama', hidden_size: hidden, intermediate_size: 8, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 16, vocab_size: vocab }, 'causal-lm');

  it('llama-dora: every module has its magnitude vector, nothing unexplained, fits a base of the same widths', async () => {
    const base = llama(512);
    const ins = await inspectAdapter(golden('llama-dora'), { base });
    const l = ins.lora!;
    assert.equal(l.useDora, true);
    assert.deepEqual(l.modules.map((m) => [m.name, m.kind, m.outFeatures, m.dora]), [
      ['model.layers.0.self_attn.q_proj', 'linear', 64, true],
      ['model.layers.0.self_attn.v_proj', 'linear', 32, true],
      ['model.layers.1.self_attn.q_proj', 'linear', 64, true],
      ['model.layers.1.self_attn.v_proj', 'linear', 32, true],
    ]);
    assert.deepEqual(ins.unexplainedTensors, []);
    assert.deepEqual(ins.parameterBreakdown, { adapter: 2 * (4 * 64 + 64 * 4 + 64 + 4 * 64 + 32 * 4 + 32), modulesToSave: 0, other: 0 });
    assert.ok(!ins.notes.some((n) => /DoRA|magnitude/.test(n)), ins.notes.join('; '));
    assert.deepEqual(ins.compatibility!.mismatches, []);
    base.model.dispose();
  });

  it('llama-lora-embed-lmhead: lora_embedding_A/B as an embedding module, the saved table explained, lm_head saved whole', async () => {
    const base = llama(512);
    const ins = await inspectAdapter(golden('llama-lora-embed-lmhead'), { base });
    const e = ins.lora!.modules.find((m) => m.kind === 'embedding')!;
    assert.deepEqual(e, { name: 'model.embed_tokens', kind: 'embedding', rank: 4, inFeatures: 512, outFeatures: 64, dora: false });
    assert.deepEqual(ins.unexplainedTensors, []);
    assert.deepEqual(ins.parameterBreakdown, { adapter: 4 * 512 + 64 * 4 + 2 * (4 * 64 + 64 * 4), modulesToSave: 512 * 64, other: 512 * 64 });
    assert.ok(ins.notes.some((n) => n.includes('base_model.model.model.embed_tokens.base_layer.weight')));
    assert.deepEqual(ins.compatibility!.mismatches, []);
    // A base of another width is named; another vocabulary is resized from the saved table (a note).
    const narrow = llama(512, 32);
    assert.ok((await inspectAdapter(golden('llama-lora-embed-lmhead'), { base: narrow })).compatibility!.mismatches.some((m) => m.name === 'model.embed_tokens' && m.expected === '64 wide' && m.got === '32'));
    const small = llama(500);
    const c = (await inspectAdapter(golden('llama-lora-embed-lmhead'), { base: small })).compatibility!;
    assert.deepEqual(c.mismatches, [], 'the saved table and head of 512 rows resize a 500-token base on load');
    assert.ok(c.notes.some((n) => /vocabulary has 512 tokens, the base's 500; loading resizes/.test(n)));
    assert.ok(c.notes.some((n) => /lm_head\.weight \(modules_to_save\): 512 rows, the base's 500; loading resizes/.test(n)));
    for (const b of [base, narrow, small]) b.model.dispose();
  });
});
