import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, UserError } from '@peftkit/core';
import { loadPretrained, savePretrained, weightFiles } from './checkpoint.js';
import { CheckpointError, readSafetensors, readSafetensorsHeader, writeSafetensors } from './safetensors.js';
import { createModel, SUPPORTED_MODEL_TYPES } from '../architectures/index.js';
import { hfFixture, hfGolden, scratch } from '../testing/index.js';

const TINY = hfFixture('ckpt-gpt2-tiny-vocab');
const FAKE = hfFixture('ckpt-gpt2-fake-nembd2');
let tmp: ReturnType<typeof scratch>;
before(async () => {
  await initBackend('wasm');
  tmp = scratch('peftkit-ckpt-');
});
after(() => tmp.cleanup());

/** A copy of a fixture folder (only the named files) in the scratch folder. */
function copyOf(src: string, name: string, files = readdirSync(src)): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  for (const f of files) copyFileSync(join(src, f), join(dir, f));
  return dir;
}

function finiteLogits(model: { forward: Function }, ids: number[]): tf.Tensor {
  const input = tf.tensor2d([ids], [1, ids.length], 'int32');
  const out = model.forward({ inputIds: input });
  input.dispose();
  out.lastHiddenState?.dispose();
  const values = out.logits.dataSync();
  assert.ok(values.length > 0 && values.every(Number.isFinite), 'logits are finite');
  return out.logits;
}

test('ckpt-gpt2-tiny-vocab: keys without `transformer.`, tied lm_head absent, slow tokenizer, finite logits', async () => {
  const { model, tokenizer, report, source } = await loadPretrained(TINY, { task: 'causal-lm' });
  assert.equal(source, TINY);
  assert.equal(model.task, 'causal-lm');
  assert.equal(report.loaded, 16);
  assert.deepEqual(report.missing, []);
  assert.deepEqual(report.dtypes, { F32: 16 });
  // Values are the file's, under the prefixed name.
  const file = readSafetensors(join(TINY, 'model.safetensors'), { names: ['wte.weight', 'h.0.attn.c_attn.weight'] }).tensors;
  const sd = model.stateDict();
  assert.deepEqual(Array.from(sd.get('transformer.wte.weight')!.dataSync()), Array.from(file.get('wte.weight')!.dataSync()));
  assert.deepEqual(Array.from(sd.get('transformer.h.0.attn.c_attn.weight')!.dataSync()), Array.from(file.get('h.0.attn.c_attn.weight')!.dataSync()));
  file.forEach((t) => t.dispose());
  assert.equal(report.numParameters, model.numParameters());
  assert.equal(report.numParameters, 21 * 2 + 1024 * 2 + (2 * 6 + 6) + (2 * 2 + 2) + 4 * 2 + (2 * 8 + 8) + (8 * 2 + 2) + 2 * 2);
  const ids = tokenizer!.encode(' lower newer');
  const logits = finiteLogits(model, ids);
  assert.deepEqual(logits.shape, [1, ids.length, 21]);
  logits.dispose();
  assert.equal(model.training, false, 'returned in eval mode');
  model.dispose();
});

test('ckpt-gpt2-fake-nembd2: `transformer.` keys, real GPT-2 tokenizer, finite logits over 50,257 tokens', async () => {
  const before = tf.memory().numTensors;
  const { model, tokenizer, report } = await loadPretrained(FAKE);
  assert.equal(model.task, 'causal-lm'); // from config.json's GPT2LMHeadModel
  assert.equal(report.loaded, 16);
  assert.deepEqual(tokenizer!.encode('Hello world'), [15496, 995]);
  const logits = finiteLogits(model, [15496, 995]);
  assert.deepEqual(logits.shape, [1, 2, 50257]);
  logits.dispose();
  model.dispose();
  assert.equal(tf.memory().numTensors, before, 'no tensor left behind by loading');
});

test('a causal-LM checkpoint as sequence classification: `score` newly initialized, logits [1, num_labels]', async () => {
  const { model, report } = await loadPretrained(FAKE, { task: 'sequence-classification', numLabels: 3 });
  assert.deepEqual(report.newlyInitialized, ['score.weight']);
  const logits = finiteLogits(model, [15496, 995]);
  assert.deepEqual(logits.shape, [1, 3]);
  logits.dispose();
  model.dispose();
});

test('a GPT2LMHeadModel checkpoint as the bare GPT2Model: the `transformer.` prefix is stripped', async () => {
  const { model, report } = await loadPretrained(FAKE, { task: 'base' });
  assert.equal(model.task, 'base');
  assert.equal(report.loaded, 16);
  assert.ok(model.stateDict().has('wte.weight'));
  const file = readSafetensors(join(FAKE, 'model.safetensors'), { names: ['transformer.ln_f.weight'] }).tensors;
  assert.deepEqual(Array.from(model.stateDict().get('ln_f.weight')!.dataSync()), Array.from(file.get('transformer.ln_f.weight')!.dataSync()));
  file.forEach((t) => t.dispose());
  model.dispose();
});

test('save then load gives bit-identical tensors, an HF-shaped folder, the tokenizer files', async () => {
  const a = await loadPretrained(TINY, { task: 'causal-lm' });
  // Make values that a float32 round trip through text would lose.
  const w = a.model.stateDict().get('transformer.h.0.mlp.c_fc.weight') as tf.Variable;
  const v = tf.tensor([[Math.PI, -0, 1e-40, 3e38, 1 / 3, -2.5e-8, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]]);
  w.assign(v);
  v.dispose();
  const out = join(tmp.dir, 'saved');
  const written = savePretrained(a, out);
  assert.deepEqual(written.slice(0, 2), ['config.json', 'model.safetensors']);
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) {
    assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(TINY, f))), `${f} copied unchanged`);
  }
  const header = readSafetensorsHeader(join(out, 'model.safetensors'));
  assert.deepEqual(header.metadata, { format: 'pt' });
  assert.ok(!('lm_head.weight' in header.tensors), 'tied lm_head is not saved');
  assert.ok('transformer.wte.weight' in header.tensors);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['GPT2LMHeadModel']);
  assert.equal(cfg.model_type, 'gpt2');
  assert.equal(cfg.n_embd, 2);
  assert.deepEqual(Object.keys(cfg), [...Object.keys(cfg)].sort());

  const b = await loadPretrained(out);
  assert.equal(b.model.task, 'causal-lm');
  const sa = a.model.stateDict();
  const sb = b.model.stateDict();
  assert.deepEqual([...sb.keys()], [...sa.keys()]);
  for (const [k, t] of sa) {
    const x = new Uint32Array(Float32Array.from(t.dataSync() as Float32Array).buffer);
    const y = new Uint32Array(Float32Array.from(sb.get(k)!.dataSync() as Float32Array).buffer);
    assert.deepEqual(y, x, `${k} bit-identical`);
  }
  assert.deepEqual(b.tokenizer!.encode(' lowest'), a.tokenizer!.encode(' lowest'));
  assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.tmp')), []);
  a.model.dispose();
  b.model.dispose();
});

test('config.json as transformers 5 writes it (hf-golden bases): dtype, rope_parameters, no num_labels, no null pad_token_id', async () => {
  for (const name of ['gpt2-lora', 'llama-lora-all-linear-tied', 'qwen2-rope1e6-lora', 'bert-seqcls-lora']) {
    const src = join(hfGolden(name), 'base');
    const hf = JSON.parse(readFileSync(join(src, 'config.json'), 'utf8'));
    const loaded = await loadPretrained(src, { tokenizer: false });
    const dir = join(tmp.dir, `t5-${name}`);
    savePretrained(loaded, dir);
    const ours = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    // Every field transformers wrote, with its value (architectures, dtype, rope_parameters, id2label, ...).
    for (const [k, v] of Object.entries(hf)) assert.deepEqual(ours[k], v, `${name}: /${k}`);
    for (const k of ['torch_dtype', 'num_labels', 'rope_theta', 'rope_scaling']) assert.ok(!(k in ours), `${name}: /${k} is not written`);
    loaded.model.dispose();
  }
  // A transformers 4 causal-LM config: torch_dtype, rope_theta and no pad token.
  const v4 = { model_type: 'qwen2', vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, rope_theta: 1e6, torch_dtype: 'bfloat16', pad_token_id: null };
  const dir = join(tmp.dir, 't4-qwen2');
  const model = createModel(v4, 'causal-lm');
  savePretrained({ model, source: 'random' }, dir);
  const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.equal(saved.dtype, 'float32');
  assert.deepEqual(saved.rope_parameters, { rope_theta: 1e6, rope_type: 'default' });
  for (const k of ['torch_dtype', 'num_labels', 'pad_token_id', 'id2label', 'label2id', 'rope_theta']) assert.ok(!(k in saved), `/${k} is not written`);
  const back = await loadPretrained(dir);
  assert.deepEqual(back.model.config.rope_parameters, { rope_type: 'default', rope_theta: 1e6 });
  model.dispose();
  back.model.dispose();
});

test('Llama (GQA, untied and tied heads) and DistilBERT classification: save then load is bit-identical', async () => {
  const llama = { model_type: 'llama', vocab_size: 32, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 64 };
  const distil = { model_type: 'distilbert', vocab_size: 30, dim: 16, hidden_dim: 32, n_layers: 1, n_heads: 2, max_position_embeddings: 32, num_labels: 3 };
  for (const [name, config, task, arch] of [
    ['llama', llama, 'causal-lm', 'LlamaForCausalLM'],
    ['llama-tied', { ...llama, tie_word_embeddings: true }, 'causal-lm', 'LlamaForCausalLM'],
    ['distilbert', distil, 'sequence-classification', 'DistilBertForSequenceClassification'],
  ] as const) {
    const model = createModel(config, task);
    const dir = join(tmp.dir, `rt-${name}`);
    savePretrained({ model, source: 'random' }, dir);
    const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(saved.architectures, [arch]);
    if (task === 'sequence-classification') assert.deepEqual(saved.id2label, { 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
    else assert.ok(!('id2label' in saved));
    const b = await loadPretrained(dir);
    assert.equal(b.model.task, task, `${name}: task from architectures`);
    assert.deepEqual(b.report.missing, [], name);
    const sa = model.stateDict();
    const sb = b.model.stateDict();
    assert.deepEqual([...sb.keys()].sort(), [...sa.keys()].sort(), name);
    for (const [k, t] of sa) assert.deepEqual(sb.get(k)!.dataSync(), t.dataSync(), `${name}: ${k}`);
    const keys = Object.keys(readSafetensorsHeader(join(dir, 'model.safetensors')).tensors);
    if (name === 'llama') assert.ok(keys.includes('lm_head.weight') && keys.includes('model.embed_tokens.weight'));
    if (name === 'llama-tied') assert.ok(!keys.includes('lm_head.weight'), 'tied lm_head not saved');
    model.dispose();
    b.model.dispose();
  }
});

test('sharded checkpoints (model.safetensors.index.json) load like the single file', async () => {
  const dir = copyOf(TINY, 'sharded', ['config.json']);
  const { tensors } = readSafetensors(join(TINY, 'model.safetensors'));
  const names = [...tensors.keys()].sort();
  const half = Math.ceil(names.length / 2);
  const shards = [names.slice(0, half), names.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((ns, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeSafetensors(join(dir, file), new Map(ns.map((n) => [n, tensors.get(n)!])), { format: 'pt' });
    for (const n of ns) weightMap[n] = file;
  });
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  assert.equal(weightFiles(dir).files.length, 2);
  const { model, report, tokenizer } = await loadPretrained(dir, { task: 'causal-lm' });
  assert.equal(report.loaded, 16);
  assert.equal(report.files.length, 2);
  assert.equal(tokenizer, undefined);
  assert.deepEqual(Array.from(model.stateDict().get('transformer.wpe.weight')!.dataSync()), Array.from(tensors.get('wpe.weight')!.dataSync()));
  tensors.forEach((t) => t.dispose());
  model.dispose();
});

async function rejectsWith(p: Promise<unknown>, cls: Function, re: RegExp, mention?: string) {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re);
    if (mention) assert.ok((e as Error).message.includes(mention), `message mentions ${mention}: ${(e as Error).message}`);
    return true;
  });
}

test('config with an unsupported model_type lists the supported ones', async () => {
  const dir = copyOf(TINY, 'unsupported');
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, model_type: 't5' }));
  await rejectsWith(loadPretrained(dir), UserError, new RegExp(`/model_type "t5" is not supported; supported model types: ${SUPPORTED_MODEL_TYPES.join(', ')}`), join(dir, 'config.json'));
});

test('missing or invalid config.json', async () => {
  const none = copyOf(TINY, 'noconfig', ['model.safetensors']);
  await rejectsWith(loadPretrained(none), UserError, /no config\.json/, none);
  const bad = copyOf(TINY, 'badconfig', ['model.safetensors']);
  writeFileSync(join(bad, 'config.json'), '{"model_type": "gpt2",');
  await rejectsWith(loadPretrained(bad), UserError, /not valid JSON/, join(bad, 'config.json'));
  writeFileSync(join(bad, 'config.json'), '{"n_embd": 2}');
  await rejectsWith(loadPretrained(bad), UserError, /\/model_type is missing/);
});

test('a state dict missing a tensor is refused naming it; strict: false keeps going and reports it', async () => {
  const dir = copyOf(TINY, 'missing', ['config.json']);
  const { tensors } = readSafetensors(join(TINY, 'model.safetensors'));
  tensors.get('h.0.ln_2.bias')!.dispose();
  tensors.delete('h.0.ln_2.bias');
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  tensors.forEach((t) => t.dispose());
  await rejectsWith(loadPretrained(dir, { task: 'causal-lm' }), CheckpointError, /missing tensors: transformer\.h\.0\.ln_2\.bias(;|$)/, join(dir, 'model.safetensors'));
  const { model, report } = await loadPretrained(dir, { task: 'causal-lm', strict: false });
  assert.deepEqual(report.missing, ['transformer.h.0.ln_2.bias']);
  model.dispose();
});

test('unexpected tensors are named; GPT-2 attention buffers are ignored', async () => {
  const dir = copyOf(TINY, 'unexpected', ['config.json']);
  const { tensors } = readSafetensors(join(TINY, 'model.safetensors'));
  tensors.set('h.0.attn.bias', tf.ones([1, 1, 4, 4]));
  tensors.set('h.0.attn.extra_proj.weight', tf.ones([2, 2]));
  writeSafetensors(join(dir, 'model.safetensors'), tensors);
  tensors.forEach((t) => t.dispose());
  await rejectsWith(loadPretrained(dir, { task: 'causal-lm' }), CheckpointError, /unexpected tensors: h\.0\.attn\.extra_proj\.weight$/);
  const { model, report } = await loadPretrained(dir, { task: 'causal-lm', strict: false });
  assert.deepEqual(report.unexpected.sort(), ['h.0.attn.bias', 'h.0.attn.extra_proj.weight']);
  model.dispose();
});

test('shapes that disagree with config.json are named with both shapes', async () => {
  const dir = copyOf(TINY, 'shape');
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...cfg, vocab_size: 22 }));
  await rejectsWith(loadPretrained(dir, { task: 'causal-lm' }), CheckpointError, /wte\.weight: the model expects \[22, 2\], the checkpoint has \[21, 2\]/);
});

test('pickle weights and LFS pointers are refused with what to do', async () => {
  const pick = copyOf(TINY, 'pickle', ['config.json']);
  writeFileSync(join(pick, 'pytorch_model.bin'), Buffer.from('80025d71002e', 'hex'));
  await rejectsWith(loadPretrained(pick), CheckpointError, /PyTorch pickle.*Convert it to safetensors/, join(pick, 'pytorch_model.bin'));
  const lfs = copyOf(TINY, 'lfs', ['config.json']);
  writeFileSync(join(lfs, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 9880\n');
  await rejectsWith(loadPretrained(lfs), CheckpointError, /Git LFS pointer, not a checkpoint: run `git lfs pull`/, join(lfs, 'model.safetensors'));
  const trunc = copyOf(TINY, 'trunc', ['config.json']);
  writeFileSync(join(trunc, 'model.safetensors'), readFileSync(join(TINY, 'model.safetensors')).subarray(0, 9000));
  await rejectsWith(loadPretrained(trunc), CheckpointError, /truncated/, join(trunc, 'model.safetensors'));
  const none = copyOf(TINY, 'noweights', ['config.json']);
  await rejectsWith(loadPretrained(none), CheckpointError, /no model\.safetensors/);
  assert.ok(!existsSync(join(none, 'model.safetensors')));
});

test('dtype other than float32/auto is refused', async () => {
  await rejectsWith(loadPretrained(TINY, { dtype: 'float16' as 'float32' }), UserError, /dtype "float16" is not supported/);
});
