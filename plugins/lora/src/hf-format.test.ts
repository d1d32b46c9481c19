import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { Embedding, Linear, ModulesToSaveWrapper, TiedLinear, createModel, manualSeed, readSafetensors, readSafetensorsHeader, resizeTokenEmbeddings, writeSafetensors, type LlamaForCausalLM, type PreTrainedModel } from '@peftkit/models';
import { loadHfLoraAdapter, loraConfigFromHf, readHfAdapter, writeHfAdapter } from './hf-format.js';
import { LoraLayer } from './layer.js';
import { injectLora } from './model.js';
import { hfFixture, maxAbsDiff, scratch } from '@peftkit/models/testing';

const TIGRINYA = hfFixture('gpt2-lora-tigrinya');
const SMOLLM = hfFixture('smollm-lora-instruct');
const DISTILBERT = hfFixture('distilbert-lora-emotion-seqcls');
const tmp = scratch();

before(async () => {
  await initBackend('wasm');
  manualSeed(3);
});
after(() => tmp.cleanup());

/** One GPT-2 layer with the sizes of `gpt2` (n_embd 768), random weights. */
const gpt2OneLayer = () => createModel({ model_type: 'gpt2', n_embd: 768, n_layer: 1, n_head: 12, vocab_size: 16, n_positions: 8 }, 'causal-lm');
/** One layer of SmolLM-135M: hidden 576, 9 heads, 3 key/value heads (v_proj out 192). */
const smollmOneLayer = () => createModel({ model_type: 'llama', hidden_size: 576, intermediate_size: 1536, num_hidden_layers: 1, num_attention_heads: 9, num_key_value_heads: 3, vocab_size: 16, tie_word_embeddings: true }, 'causal-lm');
const layer0 = (sd: Map<string, tf.Tensor>, marker: RegExp) => new Map([...sd].filter(([k]) => marker.test(k)));
const wrappedNames = (m: PreTrainedModel) => m.namedModules().filter(([, x]) => x instanceof LoraLayer).map(([k]) => k);

test('tigrinya (GPT-2, Conv1D): config read as HF wrote it, keys and shapes match the file, values load', () => {
  const a = readHfAdapter(TIGRINYA);
  assert.deepEqual(a.warnings, [], 'every field of this PEFT version is known');
  assert.equal(a.baseModelNameOrPath, 'gpt2');
  assert.equal(a.metadata.format, 'pt');
  assert.equal(a.tensors.size, 72);
  assert.deepEqual([a.config.r, a.config.lora_alpha, a.config.lora_dropout, a.config.fan_in_fan_out, a.config.task_type], [8, 32, 0.05, true, 'CAUSAL_LM']);
  assert.deepEqual(a.config.target_modules, ['c_attn', 'c_proj']);

  const model = gpt2OneLayer();
  const h = injectLora(model, a.config);
  assert.deepEqual(wrappedNames(model), ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj'], 'c_proj matches attn.c_proj and mlp.c_proj');
  assert.deepEqual(h.warnings, []);
  const header = readSafetensorsHeader(join(TIGRINYA, 'adapter_model.safetensors'));
  const fileLayer0 = Object.keys(header.tensors).filter((k) => k.includes('.h.0.')).sort();
  assert.deepEqual([...h.stateDict().keys()].sort(), fileLayer0);
  for (const [k, t] of h.stateDict()) assert.deepEqual(t.shape, header.tensors[k].shape, k);
  assert.deepEqual(header.tensors['base_model.model.transformer.h.0.attn.c_attn.lora_B.weight'].shape, [2304, 8]);

  const mine = layer0(a.tensors, /\.h\.0\./);
  h.loadStateDict(mine);
  for (const [k, t] of mine) assert.equal(maxAbsDiff(h.stateDict().get(k)!, t), 0, k);
  // The whole adapter does not fit a one-layer model: the extra layers are named.
  assert.throws(() => h.loadStateDict(a.tensors), (e: Error) => e instanceof UserError && e.message.includes('no place for: base_model.model.transformer.h.1.attn.c_attn.lora_A.weight'));

  // With the real (trained) B, merging into the [in, out] Conv1D weight gives the same outputs.
  model.eval();
  const ids = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
  const y = model.forward({ inputIds: ids }).logits;
  h.setEnabled(false);
  assert.ok(maxAbsDiff(model.forward({ inputIds: ids }).logits, y) > 1e-4, 'the trained adapter changes the output');
  h.setEnabled(true);
  h.merge();
  assert.ok(maxAbsDiff(model.forward({ inputIds: ids }).logits, y) < 2e-3 * Math.max(1, tf.abs(y).max().dataSync()[0]));
  h.unmerge();
  for (const t of a.tensors.values()) t.dispose();
});

test('smollm (Llama, grouped-query attention): keys and shapes match, values load', () => {
  const a = readHfAdapter(SMOLLM);
  assert.deepEqual([a.config.r, a.config.lora_alpha, a.config.task_type], [16, 32, null]);
  const model = smollmOneLayer();
  const h = injectLora(model, a.config);
  assert.equal(h.config.task_type, 'CAUSAL_LM', 'taken from the model when the adapter has none');
  const header = readSafetensorsHeader(join(SMOLLM, 'adapter_model.safetensors'));
  const fileLayer0 = Object.keys(header.tensors).filter((k) => k.includes('.layers.0.')).sort();
  assert.deepEqual([...h.stateDict().keys()].sort(), fileLayer0);
  for (const [k, t] of h.stateDict()) assert.deepEqual(t.shape, header.tensors[k].shape, k);
  assert.deepEqual(h.stateDict().get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.shape, [192, 16]);
  const mine = layer0(a.tensors, /\.layers\.0\./);
  h.loadStateDict(mine);
  for (const [k, t] of mine) assert.equal(maxAbsDiff(h.stateDict().get(k)!, t), 0, k);
  for (const t of a.tensors.values()) t.dispose();
});

test('an adapter for n_embd 768 is refused by a base of other sizes, naming the tensor, and the base is left clean', () => {
  const config = JSON.parse(readFileSync(join(hfFixture('ckpt-gpt2-fake-nembd2'), 'config.json'), 'utf8'));
  const model = createModel({ ...config, vocab_size: 16 }, 'causal-lm'); // n_embd 2
  const before = model.namedParameters().map(([n]) => n);
  assert.throws(
    () => loadHfLoraAdapter(model, TIGRINYA),
    (e: Error) => e instanceof UserError && e.message.includes('base_model.model.transformer.h.0.attn.c_attn.lora_A.weight: expected [8, 2], got [8, 768]') && /base model of other sizes/.test(e.details.hint ?? ''),
  );
  assert.deepEqual(model.namedParameters().map(([n]) => n), before);
  assert.deepEqual(wrappedNames(model), []);
});

test('distilbert (PEFT 0.20, SEQ_CLS): unknown null keys are tolerated with a warning; heads are saved whole', () => {
  const a = readHfAdapter(DISTILBERT);
  assert.equal(a.warnings.length, 1);
  for (const k of ['arrow_config', 'lora_ga_config', 'monteclora_config', 'velora_config']) assert.ok(a.warnings[0].includes(k), k);
  assert.deepEqual(a.config.modules_to_save, ['pre_classifier', 'classifier', 'score']);
  const model = createModel({ model_type: 'distilbert', dim: 768, n_layers: 1, n_heads: 12, hidden_dim: 64, vocab_size: 16, max_position_embeddings: 8, num_labels: 6 }, 'sequence-classification');
  const h = injectLora(model, a.config);
  const mine = new Map([...a.tensors].filter(([k]) => k.includes('.layer.0.') || /(pre_)?classifier\./.test(k)));
  assert.deepEqual([...h.stateDict().keys()].sort(), [...mine.keys()].sort());
  h.loadStateDict(mine);
  assert.equal(maxAbsDiff(h.stateDict().get('base_model.model.classifier.weight')!, a.tensors.get('base_model.model.classifier.weight')!), 0);
  for (const t of a.tensors.values()) t.dispose();
});

test('configs peftkit cannot honour are refused by field; harmless ones are accepted', () => {
  const base = JSON.parse(readFileSync(join(TIGRINYA, 'adapter_config.json'), 'utf8'));
  const refuse = (patch: Record<string, unknown>, pointer: string) =>
    assert.throws(() => loraConfigFromHf({ ...base, ...patch }, 'x/adapter_config.json'), (e: Error) => e instanceof UserError && e.details.pointer === pointer && e.message.startsWith('x/adapter_config.json'));
  refuse({ lora_bias: true }, '/lora_bias');
  refuse({ peft_type: 'PROMPT_TUNING' }, '/peft_type');
  refuse({ some_new_feature: { size: 3 } }, '/some_new_feature');
  refuse({ init_lora_weights: 'pissa_niter_4' }, '/init_lora_weights');
  refuse({ layer_replication: [[0, 4]] }, '/layer_replication');
  refuse({ r: 'eight' }, '/r');
  refuse({ rank_pattern: { 'c_attn(': 4 } }, '/rank_pattern/c_attn(');
  const ok = loraConfigFromHf({ ...base, init_lora_weights: 'eva', another_new_field: [], and_one_more: false, use_dora: true });
  assert.equal(ok.config.init_lora_weights, true);
  assert.equal(ok.config.use_dora, true, 'DoRA is a setting now');
  assert.equal(ok.warnings.length, 2);
  assert.match(ok.warnings.join('\n'), /another_new_field, and_one_more/);
});

test('adapter_model.bin alone is refused, never read', () => {
  const dir = join(tmp.dir, 'pickle');
  mkdirSync(dir);
  writeFileSync(join(dir, 'adapter_config.json'), readFileSync(join(TIGRINYA, 'adapter_config.json')));
  writeFileSync(join(dir, 'adapter_model.bin'), Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x2e]));
  assert.throws(() => readHfAdapter(dir), (e: Error) => e instanceof UserError && /adapter_model\.bin/.test(e.message) && /pickle/.test(e.message));
});

test('writeHfAdapter writes what HF PEFT writes, and it reads back', () => {
  const a = readHfAdapter(TIGRINYA);
  const model = gpt2OneLayer();
  const h = injectLora(model, a.config);
  h.loadStateDict(layer0(a.tensors, /\.h\.0\./));
  const out = join(tmp.dir, 'out');
  const written = writeHfAdapter(h, out, 'gpt2');
  assert.deepEqual(written.map((p) => p.slice(out.length + 1)).sort(), ['adapter_config.json', 'adapter_model.safetensors']);

  // adapter_config.json: sorted keys, indent 2, no trailing newline; every field we write has the fixture's value.
  const text = readFileSync(join(out, 'adapter_config.json'), 'utf8');
  const cfg = JSON.parse(text);
  assert.equal(text, JSON.stringify(cfg, Object.keys(cfg).sort(), 2));
  const fixture = JSON.parse(readFileSync(join(TIGRINYA, 'adapter_config.json'), 'utf8'));
  for (const [k, v] of Object.entries(cfg)) assert.deepEqual(v, fixture[k], k);
  assert.ok(Object.keys(cfg).length >= 24);

  // adapter_model.safetensors: HF's keys, F32, {"format": "pt"}, the same numbers.
  const header = readSafetensorsHeader(join(out, 'adapter_model.safetensors'));
  assert.deepEqual(header.metadata, { format: 'pt' });
  assert.ok(Object.values(header.tensors).every((t) => t.dtype === 'F32'));
  const back = readSafetensors(join(out, 'adapter_model.safetensors')).tensors;
  assert.equal(back.size, 6);
  for (const [k, t] of back) assert.equal(maxAbsDiff(t, a.tensors.get(k)!), 0, k);

  // And loads as an adapter again.
  const model2 = gpt2OneLayer();
  const h2 = loadHfLoraAdapter(model2, out);
  for (const [k, t] of h.stateDict()) assert.equal(maxAbsDiff(h2.stateDict().get(k)!, t), 0, k);
  for (const t of [...a.tensors.values(), ...back.values()]) t.dispose();
});

test('added tokens: a saved base table is loaded whole, a modules_to_save copy leaves the base its own rows; an untied head is mean-filled; lora_embedding_A alone resizes', () => {
  const llama = (tie: boolean) => createModel({ model_type: 'llama', hidden_size: 8, intermediate_size: 12, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 11, tie_word_embeddings: tie }, 'causal-lm') as LlamaForCausalLM;
  const rows = (t: tf.Tensor, from: number, n: number) => t.slice([from, 0], [n, t.shape[1]!]);
  const meanRows = (t: tf.Tensor, n: number) => tf.tile(tf.mean(t, 0, true), [n, 1]);
  const key = (k: string) => `base_model.model.${k}`;
  /** An adapter folder trained on `src` resized to 13 tokens, with only the keys `keep` accepts. */
  const save = (name: string, src: LlamaForCausalLM, config: Record<string, unknown>, keep: (k: string) => boolean = () => true) => {
    const trained = llama(src.lm_head instanceof TiedLinear);
    trained.loadStateDict(src.stateDict());
    resizeTokenEmbeddings(trained, 13);
    const h = injectLora(trained, { r: 2, lora_alpha: 4, target_modules: ['q_proj'], ...config }, { seed: 1 });
    let seed = 30;
    for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', seed++));
    const dir = join(tmp.dir, name);
    writeHfAdapter(h, dir, null);
    const file = join(dir, 'adapter_model.safetensors');
    const { tensors } = readSafetensors(file);
    const kept = new Map([...tensors].filter(([k]) => keep(k)));
    writeSafetensors(file, kept, { format: 'pt' });
    return { dir, tensors, trained };
  };
  const ids = tf.tensor2d([[1, 12, 11, 4]], undefined, 'int32');

  // A tied model with LoRA on embed_tokens: HF saves embed_tokens.base_layer.weight; every row is the saved one, the head is re-tied.
  const tied = llama(true);
  const t1 = save('added-tied', tied, { target_modules: ['q_proj', 'embed_tokens'] });
  const table = t1.tensors.get(key('model.embed_tokens.base_layer.weight'))!;
  assert.deepEqual(table.shape, [13, 8]);
  const h1 = loadHfLoraAdapter(tied, t1.dir);
  assert.match(h1.adapterWarnings.join('\n'), /13 tokens, the model's had 11/);
  assert.equal(tied.config.vocab_size, 13);
  const emb = tied.getInputEmbeddings();
  assert.equal(maxAbsDiff(emb.weight, table), 0);
  assert.ok(tied.lm_head instanceof TiedLinear && tied.lm_head.weight === emb.weight);
  const y1 = tied.forward({ inputIds: ids }).logits;
  assert.deepEqual(y1.shape, [1, 4, 13]);
  assert.ok(maxAbsDiff(y1, t1.trained.forward({ inputIds: ids }).logits) < 1e-5);
  h1.dispose();

  // modules_to_save embed_tokens (the trained copy, tied): the base keeps its 11 rows, its added rows are the mean; the copy is the saved table.
  const copy = llama(true);
  const old = copy.model.embed_tokens.weight.clone();
  const t2 = save('added-copy', copy, { modules_to_save: ['embed_tokens'] });
  const h2 = loadHfLoraAdapter(copy, t2.dir);
  const wrapper = copy.model.embed_tokens as unknown as ModulesToSaveWrapper;
  assert.ok(wrapper instanceof ModulesToSaveWrapper);
  const base2 = wrapper.originalModule as Embedding;
  assert.equal(base2.numEmbeddings, 13);
  assert.equal(maxAbsDiff((wrapper.copyOf('default') as Embedding).weight, t2.tensors.get(key('model.embed_tokens.weight'))!), 0, 'the copy is the saved table');
  assert.equal(maxAbsDiff(rows(base2.weight, 0, 11), old), 0, 'the base keeps its own rows');
  assert.ok(maxAbsDiff(rows(base2.weight, 11, 2), meanRows(old, 2)) < 1e-6, 'added base rows are the mean of the old ones');
  assert.ok(maxAbsDiff(copy.forward({ inputIds: ids }).logits, t2.trained.forward({ inputIds: ids }).logits) < 1e-5);
  h2.dispose();

  // Untied, only embed_tokens.base_layer.weight says 13: the head is resized too, its added rows the mean of its old ones.
  const untied = llama(false);
  const oldHead = (untied.lm_head as Linear).weight.clone();
  const t3 = save('added-untied', untied, { target_modules: ['q_proj', 'embed_tokens'] });
  const h3 = loadHfLoraAdapter(untied, t3.dir);
  assert.ok(untied.lm_head instanceof Linear && untied.lm_head.outFeatures === 13);
  assert.equal(maxAbsDiff(rows(untied.lm_head.weight, 0, 11), oldHead), 0, 'the head keeps its rows');
  assert.ok(maxAbsDiff(rows(untied.lm_head.weight, 11, 2), meanRows(oldHead, 2)) < 1e-6, 'added head rows are the mean');
  assert.equal(maxAbsDiff(untied.getInputEmbeddings().weight, t3.tensors.get(key('model.embed_tokens.base_layer.weight'))!), 0);
  h3.dispose();

  // Only lora_embedding_A shows the new size (no saved table): the embedding is mean-filled and the adapter loads.
  const onlyA = llama(true);
  const oldA = onlyA.model.embed_tokens.weight.clone();
  const t4 = save('added-lora-a', onlyA, { target_modules: ['q_proj', 'embed_tokens'] }, (k) => !k.endsWith('.base_layer.weight'));
  const h4 = loadHfLoraAdapter(onlyA, t4.dir);
  assert.equal(onlyA.config.vocab_size, 13);
  assert.equal(maxAbsDiff(rows(onlyA.getInputEmbeddings().weight, 0, 11), oldA), 0);
  assert.ok(maxAbsDiff(rows(onlyA.getInputEmbeddings().weight, 11, 2), meanRows(oldA, 2)) < 1e-6);
  h4.dispose();

  for (const t of [t1, t2, t3, t4]) {
    t.tensors.forEach((x) => x.dispose());
    t.trained.dispose();
  }
  tf.dispose([ids, old, oldHead, oldA, y1]);
  for (const m of [tied, copy, untied, onlyA]) m.dispose();
});

test('an adapter that saves a resized embedding and head (modules_to_save, added tokens) resizes the base first', () => {
  const config = { model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2 };
  const base = createModel(config, 'causal-lm');
  const trained = createModel(config, 'causal-lm');
  trained.loadStateDict(base.stateDict());
  // The user's side, as with transformers: resize_token_embeddings for two added tokens, then LoRA.
  resizeTokenEmbeddings(trained, 12);
  const h = injectLora(trained, { r: 2, lora_alpha: 4, target_modules: ['q_proj'], modules_to_save: ['embed_tokens', 'lm_head'] }, { seed: 1 });
  let s = 10;
  for (const [, v] of h.trainableParameters()) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', s++));
  const dir = join(tmp.dir, 'added-tokens');
  writeHfAdapter(h, dir, null);
  const x = tf.tensor2d([[1, 11, 10, 4]], undefined, 'int32');
  const want = trained.forward({ inputIds: x }).logits;

  const loaded = loadHfLoraAdapter(base, dir);
  assert.equal(base.dims().vocabSize, 12);
  const got = base.forward({ inputIds: x }).logits;
  assert.deepEqual(got.shape, [1, 4, 12]);
  assert.ok(maxAbsDiff(got, want) < 1e-5, `max diff ${maxAbsDiff(got, want)}`);
  tf.dispose([x, want, got]);
  loaded.dispose();
  base.dispose();
  trained.dispose();
});
