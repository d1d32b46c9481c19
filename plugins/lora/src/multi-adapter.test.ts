/**
 * Several LoRA adapters on one base (PeftModel): per-row adapters in one batch (HF PEFT's
 * `adapter_names`), activation, disabling, deletion, and `add_weighted_adapter` (linear, cat).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { BASE_ADAPTER_NAME, Conv1D, PeftModel, createModel, manualSeed, readSafetensors, writeSafetensors, type LoadedModel, type ModelInputs, type PreTrainedModel } from '@peftkit/models';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { LoraLayer } from './layer.js';
import { ModulesToSaveWrapper } from '@peftkit/models';
import { injectLora, type LoraAdapterHandle } from './model.js';
import { loadHfLoraAdapter } from './hf-format.js';
import { loraMethod } from './method.js';
import { hfFixture, maxAbsDiff, sampleIds, scratch } from '@peftkit/models/testing';
import { tinyGpt2, tinyLlamaForSequenceClassification } from './testing/tiny-models.js';

const tmp = scratch('peftkit-multi-');
before(async () => {
  await initBackend('wasm');
  manualSeed(11);
});
after(() => tmp.cleanup());

/** Gives B random values (A is already random), so that the adapter changes the output. */
function randomize(h: LoraAdapterHandle, seed: number): void {
  let s = seed;
  for (const [k, v] of h.trainableParameters()) if (k.endsWith('lora_B.weight') || !k.includes('lora_')) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', s++));
}

function peftWith(model: PreTrainedModel, configs: [string, Parameters<typeof injectLora>[1]][], seed = 1): { peft: PeftModel; handles: Map<string, LoraAdapterHandle> } {
  const peft = new PeftModel({ model, source: 'tiny' } as LoadedModel);
  const handles = new Map<string, LoraAdapterHandle>();
  for (const [name, cfg] of configs) {
    const h = injectLora(model, cfg, { adapterName: name, seed: seed++ });
    randomize(h, 100 * seed);
    peft.addAdapter(h);
    handles.set(name, h);
  }
  model.eval();
  return { peft, handles };
}

/** Rows of a [B, ...] tensor as nested arrays. */
const rowsOf = (t: tf.Tensor) => t.arraySync() as number[][][];
function maxRowDiff(a: number[][][] | number[][], b: number[][][] | number[][]): number {
  const fa = (a as unknown[]).flat(2) as number[];
  const fb = (b as unknown[]).flat(2) as number[];
  assert.equal(fa.length, fb.length);
  return fa.reduce((m, x, i) => Math.max(m, Math.abs(x - fb[i])), 0);
}

function logits(peft: PeftModel, inputs: ModelInputs, adapterNames?: string[]): tf.Tensor {
  return peft.forward(inputs, { adapterNames }).logits;
}

describe('mixed-adapter batches (HF PEFT adapter_names)', () => {
  it('GPT-2 (Conv1D): each row gets what its adapter alone gives; __base__ rows and disabling give the base', () => {
    const model = tinyGpt2(2);
    const { peft } = peftWith(model, [
      ['a', { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] }],
      ['b', { r: 2, lora_alpha: 4, target_modules: ['c_fc'] }],
    ]);
    const ids = sampleIds(5, 6, 11, 3);
    const inputs = { inputIds: ids };
    const names = ['a', 'b', BASE_ADAPTER_NAME, 'a', 'b'];

    const base = rowsOf(peft.withAdaptersDisabled(() => logits(peft, inputs)));
    peft.setActive(['a']);
    const onlyA = rowsOf(logits(peft, inputs));
    peft.setActive(['b']);
    const onlyB = rowsOf(logits(peft, inputs));
    assert.ok(maxRowDiff(onlyA, base) > 1e-2 && maxRowDiff(onlyB, base) > 1e-2 && maxRowDiff(onlyA, onlyB) > 1e-2, 'the two adapters change the output, differently');

    // One mixed batch first: frozen adapters' transposes are cached once (nn/layers.ts frozenTransposes), not per call.
    tf.tidy(() => void logits(peft, inputs, names).dataSync());
    const n0 = tf.memory().numTensors;
    tf.tidy(() => void logits(peft, inputs, names).dataSync());
    assert.equal(tf.memory().numTensors, n0, 'a mixed batch leaves no tensor behind');
    const mixed = rowsOf(logits(peft, inputs, names));
    const expected = names.map((n, i) => (n === 'a' ? onlyA : n === 'b' ? onlyB : base)[i]);
    assert.ok(maxRowDiff(mixed, expected) < 1e-5, `mixed batch vs each adapter alone: ${maxRowDiff(mixed, expected)}`);

    // Each row alone (batch of one) agrees too.
    peft.setActive(['b']);
    const row1 = rowsOf(logits(peft, { inputIds: tf.slice(ids, [1, 0], [1, 6]) }))[0];
    assert.ok(maxRowDiff([row1], [mixed[1]]) < 1e-5);

    // The active set is ignored in a mixed batch, as in HF.
    peft.setActive(['a', 'b']);
    assert.ok(maxRowDiff(rowsOf(logits(peft, inputs, names)), mixed) < 1e-6);
    assert.deepEqual(peft.active, ['a', 'b'], 'a mixed batch does not change the active set');

    // All rows __base__, and disabling every adapter: the base model.
    assert.ok(maxRowDiff(rowsOf(logits(peft, inputs, names.map(() => BASE_ADAPTER_NAME))), base) < 1e-6);
    const was = peft.disableAdapters();
    assert.deepEqual(was, ['a', 'b']);
    assert.ok(maxRowDiff(rowsOf(logits(peft, inputs)), base) < 1e-6);
    // With a base model without any wrapper, outputs are the same as the adapters-disabled ones.
    peft.setActive(was);
  });

  it('LoRA on an embedding (GPT-2 wte): each row gets its adapter\'s lookup; DoRA adapters are refused', () => {
    const model = tinyGpt2(1);
    const { peft } = peftWith(model, [
      ['a', { r: 2, target_modules: ['wte'], init_lora_weights: false }],
      ['b', { r: 3, target_modules: ['wte', 'c_fc'], init_lora_weights: false }],
      ['d', { r: 2, target_modules: ['wte'], init_lora_weights: false, use_dora: true }],
    ]);
    const ids = sampleIds(4, 5, 11, 8);
    const inputs = { inputIds: ids };
    const names = ['a', 'b', BASE_ADAPTER_NAME, 'b'];
    const base = rowsOf(peft.withAdaptersDisabled(() => logits(peft, inputs)));
    peft.setActive(['a']);
    const onlyA = rowsOf(logits(peft, inputs));
    peft.setActive(['b']);
    const onlyB = rowsOf(logits(peft, inputs));
    assert.ok(maxRowDiff(onlyA, base) > 1e-3 && maxRowDiff(onlyB, onlyA) > 1e-3, 'the adapters change the output, differently');
    const mixed = rowsOf(logits(peft, inputs, names));
    const expected = names.map((n, i) => (n === 'a' ? onlyA : n === 'b' ? onlyB : base)[i]);
    assert.ok(maxRowDiff(mixed, expected) < 1e-5, `mixed batch vs each adapter alone: ${maxRowDiff(mixed, expected)}`);
    assert.throws(() => logits(peft, inputs, ['a', 'd', 'b', 'd']), /transformer\.wte: adapter\(s\) d use DoRA/);
  });

  it('Llama sequence classifier: each row uses its adapter\'s copy of the head (modules_to_save)', () => {
    const model = tinyLlamaForSequenceClassification();
    const { peft } = peftWith(model, [
      ['pos', { r: 2, target_modules: ['q_proj', 'v_proj'], task_type: 'SEQ_CLS' }],
      ['neg', { r: 4, target_modules: ['o_proj'], task_type: 'SEQ_CLS' }],
    ]);
    assert.ok(model.getSubmodule('score') instanceof ModulesToSaveWrapper);
    const inputs = { inputIds: sampleIds(4, 5, 10, 9).add(1) as tf.Tensor2D }; // no pad (0) token
    const run = (active: string[]) => {
      peft.setActive(active);
      return logits(peft, inputs).arraySync() as number[][];
    };
    const base = run([]);
    const pos = run(['pos']);
    const neg = run(['neg']);
    const names = ['neg', BASE_ADAPTER_NAME, 'pos', 'neg'];
    const mixed = logits(peft, inputs, names).arraySync() as number[][];
    const expected = names.map((n, i) => (n === 'pos' ? pos : n === 'neg' ? neg : base)[i]);
    assert.ok(maxRowDiff(mixed, expected) < 1e-5, `${maxRowDiff(mixed, expected)}`);
    assert.ok(maxRowDiff(pos, neg) > 1e-2);
  });

  it('refuses what HF refuses: unknown names, wrong length, training mode, merged adapters', () => {
    const model = tinyGpt2(1);
    const { peft, handles } = peftWith(model, [['a', { r: 2, target_modules: ['c_attn'] }]]);
    const inputs = { inputIds: sampleIds(2, 3, 11) };
    assert.throws(() => logits(peft, inputs, ['a', 'nope']), (e: Error) => e instanceof UserError && /non-existing adapter\(s\): nope/.test(e.message));
    assert.throws(() => logits(peft, inputs, ['a']), (e: Error) => e instanceof UserError && /1 entries but the batch has 2 rows/.test(e.message));
    model.train();
    assert.throws(() => logits(peft, inputs, ['a', 'a']), /evaluation mode only/);
    model.eval();
    handles.get('a')!.merge();
    assert.throws(() => logits(peft, inputs, ['a', BASE_ADAPTER_NAME]), /merged into the base weights; unmerge/);
    handles.get('a')!.unmerge();
    assert.equal(logits(peft, inputs, ['a', BASE_ADAPTER_NAME]).shape[0], 2);
  });

  it('an adapter whose method has no per-row support is named', () => {
    const model = tinyGpt2(1);
    const { peft } = peftWith(model, [['a', { r: 2, target_modules: ['c_attn'] }]]);
    // A prompt-learning-like handle: it wraps no layer.
    peft.addAdapter({ name: 'prompt', method: 'prompt-tuning', peftType: 'PROMPT_TUNING', config: {}, trainableParameters: () => [], stateDict: () => new Map(), loadStateDict() {}, adapterConfig: () => ({}), setEnabled() {}, dispose() {}, prepareInputs: (x) => x });
    const inputs = { inputIds: sampleIds(2, 3, 11) };
    assert.throws(() => logits(peft, inputs, ['a', 'prompt']), (e: Error) => e instanceof UserError && /not: prompt \(prompt-tuning\)/.test(e.message));
    // Active but not named: refused too (it would apply to every row).
    assert.throws(() => logits(peft, inputs, ['a', 'a']), (e: Error) => e instanceof UserError && /deactivate those adapters/.test(e.details.hint ?? ''));
    peft.setActive(['a']);
    assert.equal(logits(peft, inputs, ['a', 'a']).shape[0], 2);
  });
});

describe('several active adapters, deletion', () => {
  it('several active LoRA adapters sum their updates (HF set_adapter([...]))', () => {
    const model = tinyGpt2(1);
    const { peft, handles } = peftWith(model, [
      ['a', { r: 2, target_modules: ['c_attn'] }],
      ['b', { r: 3, target_modules: ['c_attn', 'c_fc'] }],
    ]);
    const inputs = { inputIds: sampleIds(2, 4, 11) };
    const base = peft.withAdaptersDisabled(() => logits(peft, inputs));
    peft.setActive(['a', 'b']);
    const both = logits(peft, inputs);
    // Both merged into the weights: the same function.
    handles.get('a')!.merge();
    handles.get('b')!.merge();
    assert.ok(maxAbsDiff(logits(peft, inputs), both) < 1e-4);
    handles.get('a')!.unmerge();
    handles.get('b')!.unmerge();
    assert.ok(maxAbsDiff(logits(peft, inputs), both) < 1e-5);
    assert.ok(maxAbsDiff(both, base) > 1e-2);
  });

  it('deleteAdapter frees the adapter\'s tensors and unwraps layers no adapter uses', () => {
    const model = tinyGpt2(2);
    const { peft } = peftWith(model, [['a', { r: 2, target_modules: ['c_attn'] }]]);
    const inputs = { inputIds: sampleIds(2, 4, 11) };
    const withA = logits(peft, inputs);
    const before = tf.memory().numTensors;
    const hb = injectLora(model, { r: 4, target_modules: ['c_attn', 'c_fc'] }, { adapterName: 'b', seed: 5 });
    peft.addAdapter(hb);
    assert.equal(tf.memory().numTensors, before + 2 * 4, 'A and B in 4 layers');
    peft.setActive(['a']);

    peft.deleteAdapter('b');
    assert.equal(tf.memory().numTensors, before, 'b\'s tensors are freed');
    assert.deepEqual([...peft.adapters.keys()], ['a']);
    assert.deepEqual(peft.active, ['a']);
    assert.ok(model.getSubmodule('transformer.h.0.mlp.c_fc') instanceof Conv1D, 'c_fc held only b: unwrapped');
    assert.ok(model.getSubmodule('transformer.h.0.attn.c_attn') instanceof LoraLayer, 'c_attn still holds a');
    assert.ok(maxAbsDiff(logits(peft, inputs), withA) < 1e-6, 'a still computes what it did');

    peft.deleteAdapter('a');
    assert.equal(model.namedModules().filter(([, m]) => m instanceof LoraLayer).length, 0);
    assert.deepEqual(peft.active, []);
    assert.ok(model.stateDict().has('transformer.h.0.attn.c_attn.weight'), 'base names unchanged');
    assert.throws(() => peft.deleteAdapter('a'), (e: Error) => e instanceof UserError && /no adapter named "a"/.test(e.message));
  });
});

describe('add_weighted_adapter (HF PEFT LoraModel.add_weighted_adapter)', () => {
  /** Per-layer A and B values and scaling of an adapter. */
  const weightsOf = (h: LoraAdapterHandle) => new Map([...h.layers].map(([p, l]) => [p, { A: l.loraWeights(h.name).A.arraySync() as number[][], B: l.loraWeights(h.name).B.arraySync() as number[][], s: l.adapterInfo(h.name).scaling }]));

  it('linear: A = Σ √(w·s)·A_i and B = Σ √(w·s)·B_i per layer; r = lora_alpha = the common rank', () => {
    const model = tinyGpt2(1);
    const { peft, handles } = peftWith(model, [
      ['a', { r: 2, lora_alpha: 8, target_modules: ['c_attn'] }],
      ['b', { r: 2, lora_alpha: 3, use_rslora: true, target_modules: ['c_attn', 'c_fc'] }],
    ]);
    const wa = weightsOf(handles.get('a')!);
    const wb = weightsOf(handles.get('b')!);
    const h = peft.addWeightedAdapter(['a', 'b'], [0.7, 1.5], 'ab', 'linear') as LoraAdapterHandle;
    assert.deepEqual([h.config.r, h.config.lora_alpha, h.config.target_modules], [2, 2, ['c_attn', 'c_fc']]);
    assert.deepEqual(peft.active, ['b'], 'the new adapter is not activated');
    const wn = weightsOf(h);
    assert.deepEqual([...wn.keys()].sort(), ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc']);
    for (const [path, { A, B, s }] of wn) {
      assert.equal(s, 1, 'scaling r/r');
      const parts = [[wa.get(path), 0.7], [wb.get(path), 1.5]].filter(([x]) => x) as [{ A: number[][]; B: number[][]; s: number }, number][];
      const expect = (key: 'A' | 'B') => (key === 'A' ? A : B).map((row, i) => row.map((_, j) => parts.reduce((acc, [x, w]) => acc + Math.sqrt(w * x.s) * (key === 'A' ? x.A : x.B)[i][j], 0)));
      assert.ok(maxRowDiff(A, expect('A')) < 1e-5, path);
      assert.ok(maxRowDiff(B, expect('B')) < 1e-5, path);
    }
    assert.equal(wn.get('transformer.h.0.attn.c_attn')!.A.length, 2);
    // Saved as an HF adapter: r and lora_alpha 2.
    assert.deepEqual([h.adapterConfig().r, h.adapterConfig().lora_alpha], [2, 2]);
  });

  it('cat: concatenation along the rank with w·s on A, so that the update is Σ w·s·B·A (both adapters active at w = 1)', () => {
    const model = tinyGpt2(2);
    const { peft, handles } = peftWith(model, [
      ['a', { r: 2, lora_alpha: 8, target_modules: ['c_attn'] }],
      ['b', { r: 3, lora_alpha: 6, target_modules: ['c_attn', 'c_proj'] }],
    ]);
    const h = peft.addWeightedAdapter(['a', 'b'], [1, 1], 'cat', 'cat') as LoraAdapterHandle;
    assert.deepEqual([h.config.r, h.config.lora_alpha], [5, 5]);
    const l = h.layers.get('transformer.h.0.attn.c_attn')!;
    assert.deepEqual(l.loraWeights('cat').A.shape, [5, 8]);
    // Rows 0-1 of A are 4·A_a (scaling 8/2), rows 2-4 are 2·A_b; B's columns are B_a then B_b.
    const la = handles.get('a')!.layers.get('transformer.h.0.attn.c_attn')!;
    assert.ok(maxAbsDiff(tf.slice(l.loraWeights('cat').A, [0, 0], [2, 8]), tf.mul(la.loraWeights('a').A, 4)) < 1e-6);
    assert.ok(maxAbsDiff(tf.slice(l.loraWeights('cat').B, [0, 2], [24, 3]), l.loraWeights('b').B) < 1e-6);
    // c_proj has only b: its 3 ranks come first, the rest stays zero.
    const lp = h.layers.get('transformer.h.1.attn.c_proj')!;
    assert.equal(tf.abs(tf.slice(lp.loraWeights('cat').A, [3, 0], [2, 8])).max().dataSync()[0], 0);

    const inputs = { inputIds: sampleIds(3, 4, 11, 5) };
    peft.setActive(['a', 'b']);
    const both = logits(peft, inputs);
    peft.setActive(['cat']);
    assert.ok(maxAbsDiff(logits(peft, inputs), both) < 1e-5, 'cat at weights 1 = both adapters');
    // The combined adapter also serves in a mixed batch beside its sources.
    const mixed = logits(peft, inputs, ['cat', 'a', BASE_ADAPTER_NAME]).arraySync() as number[][][];
    assert.ok(maxRowDiff([mixed[0]], [(both.arraySync() as number[][][])[0]]) < 1e-5);
  });

  it('one adapter: always linear (√(w·s) on A and B), as HF', () => {
    const model = tinyGpt2(1);
    const { peft, handles } = peftWith(model, [['a', { r: 2, lora_alpha: 4, target_modules: ['c_attn'] }]]);
    const h = peft.addWeightedAdapter(['a'], [0.5], 'half', 'cat') as LoraAdapterHandle;
    assert.equal(h.config.r, 2, 'linear, not cat');
    const l = h.layers.get('transformer.h.0.attn.c_attn')!;
    // √(0.5·2) = 1: A and B are copied; the update is 0.5 · (the original's update).
    assert.ok(maxAbsDiff(l.loraWeights('half').A, handles.get('a')!.layers.get('transformer.h.0.attn.c_attn')!.loraWeights('a').A) < 1e-6);
    assert.ok(maxAbsDiff(l.deltaWeight('half'), tf.mul(l.deltaWeight('a'), 0.5)) < 1e-6);
  });

  it('refuses what it cannot reproduce, naming it', () => {
    const model = tinyGpt2(1);
    const { peft } = peftWith(model, [
      ['a', { r: 2, target_modules: ['c_attn'] }],
      ['b', { r: 4, target_modules: ['c_attn'] }],
      ['re', { r: 2, target_modules: '.*c_fc' }],
    ]);
    const n = tf.memory().numTensors;
    assert.throws(() => peft.addWeightedAdapter(['a', 'b'], [1, 1], 'x', 'linear'), (e: Error) => e instanceof UserError && /same r .* a: 2, b: 4/.test(e.message));
    assert.throws(() => peft.addWeightedAdapter(['a', 'b'], [1, 1], 'x', 'svd'), /combination_type "svd" is not supported/);
    assert.throws(() => peft.addWeightedAdapter(['a', 're'], [1, 1], 'x', 'cat'), /mix target_modules/);
    assert.throws(() => peft.addWeightedAdapter(['a', 're'], [1, -1], 'x', 'linear'), /mix target_modules/);
    assert.throws(() => peft.addWeightedAdapter(['a'], [-1], 'x', 'linear'), (e: Error) => /weight·scaling -4 < 0/.test(e.message));
    assert.throws(() => peft.addWeightedAdapter(['a', 'b'], [1], 'x', 'cat'), /2 adapters but 1 weights/);
    assert.throws(() => peft.addWeightedAdapter(['a', 'b'], [1, 1], 'a', 'cat'), /name "a" is taken/);
    assert.throws(() => peft.addWeightedAdapter(['a', 'zz'], [1, 1], 'x', 'cat'), /no adapter named "zz"/);
    assert.equal(tf.memory().numTensors, n, 'nothing left behind by a refused combination');
    assert.ok(!peft.adapters.has('x'));
    // Regex target_modules combine as (a)|(b).
    const r2 = injectLora(model, { r: 2, target_modules: '.*c_proj' }, { adapterName: 're2', seed: 3 });
    peft.addAdapter(r2);
    const h = peft.addWeightedAdapter(['re', 're2'], [1, 1], 'rr', 'cat') as LoraAdapterHandle;
    assert.equal(h.config.target_modules, '(.*c_fc)|(.*c_proj)');
  });
});

describe('real HF adapters side by side', () => {
  /** An HF adapter folder holding one layer of the tigrinya adapter (layer `from`, saved as layer 0). */
  function tigrinyaLayer(from: number): string {
    const dir = join(tmp.dir, `tigrinya-layer${from}`);
    mkdirSync(dir, { recursive: true });
    const src = hfFixture('gpt2-lora-tigrinya');
    const { tensors } = readSafetensors(join(src, 'adapter_model.safetensors'));
    const mine = new Map<string, tf.Tensor>();
    for (const [k, t] of tensors) {
      if (k.includes(`.h.${from}.`)) mine.set(k.replace(`.h.${from}.`, '.h.0.'), t);
      else t.dispose();
    }
    writeSafetensors(join(dir, 'adapter_model.safetensors'), mine, { format: 'pt' });
    writeFileSync(join(dir, 'adapter_config.json'), readFileSync(join(src, 'adapter_config.json')));
    for (const t of mine.values()) t.dispose();
    return dir;
  }

  it('two trained tigrinya layers as two adapters on one GPT-2 layer (n_embd 768): mixed batch = each alone', () => {
    const model = createModel({ model_type: 'gpt2', n_embd: 768, n_layer: 1, n_head: 12, vocab_size: 16, n_positions: 8 }, 'causal-lm');
    model.eval();
    const peft = new PeftModel({ model, source: 'gpt2-1-layer' });
    const baseBytes = tf.memory().numBytes;
    for (const [name, layer] of [['early', 0], ['late', 11]] as const) {
      const h = loraMethod.loadAdapter!(model, tigrinyaLayer(layer), { seed: 0, logger: undefined as never, adapterName: name });
      peft.addAdapter(h as LoraAdapterHandle);
    }
    // Each adapter: 3 modules × (8·in + out·8) floats; the base is not copied.
    const adapterBytes = 4 * 8 * ((768 + 2304) + (768 + 768) + (3072 + 768));
    assert.equal(tf.memory().numBytes - baseBytes, 2 * adapterBytes);
    const inputs = { inputIds: sampleIds(3, 5, 16, 2) };
    const names = ['late', 'early', BASE_ADAPTER_NAME];
    const alone = new Map<string, number[][][]>();
    for (const n of ['early', 'late']) {
      peft.setActive([n]);
      alone.set(n, rowsOf(logits(peft, inputs)));
    }
    alone.set(BASE_ADAPTER_NAME, rowsOf(peft.withAdaptersDisabled(() => logits(peft, inputs))));
    assert.ok(maxRowDiff(alone.get('early')!, alone.get('late')!) > 1e-3);
    const mixed = rowsOf(logits(peft, inputs, names));
    assert.ok(maxRowDiff(mixed, names.map((n, i) => alone.get(n)![i])) < 1e-5);
  });
});

