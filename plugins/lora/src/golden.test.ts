// Parity with the real transformers 5.17 + peft 0.21 (../shared/fixtures/hf-golden, see its README.md):
// DoRA (llama-dora) and LoRA on an embedding with lm_head in modules_to_save (llama-lora-embed-lmhead).
// Logits are compared where attention_mask is 1, relative to the largest golden value (1e-4);
// gradients relative to the largest golden gradient of each tensor (1e-4).
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { Linear, ModulesToSaveWrapper, TiedLinear, createModel, loadPretrained, readSafetensors, readSafetensorsHeader, writeSafetensors, type LlamaForCausalLM, type ModelConfig, type PreTrainedModel } from '@peftkit/models';
import { repoRoot, scratch } from '@peftkit/models/testing';
import { loadHfLoraAdapter, writeHfAdapter } from './hf-format.js';
import { LoraEmbedding } from './layer.js';
import type { LoraAdapterHandle } from './model.js';

const golden = (name: string) => resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf-golden', name);
const tmp = scratch('peftkit-lora-golden-');

interface Flat {
  shape: number[];
  data: number[];
}
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const tensorOf = (f: Flat) => tf.tensor(f.data, f.shape, 'float32');

interface Case {
  dir: string;
  ids: tf.Tensor2D;
  mask: tf.Tensor2D;
  base: Flat;
  adapter: Flat;
  grads: { loss: number; labels: number[][]; grads: Record<string, Flat> };
}

function readCase(name: string): Case {
  const dir = golden(name);
  const inputs = readJson<{ input_ids: number[][]; attention_mask: number[][] }>(join(dir, 'inputs.json'));
  return {
    dir,
    ids: tf.tensor2d(inputs.input_ids, undefined, 'int32'),
    mask: tf.tensor2d(inputs.attention_mask, undefined, 'int32'),
    base: readJson(join(dir, 'hf_base.json')),
    adapter: readJson(join(dir, 'hf_adapter.json')),
    grads: readJson(join(dir, 'hf_grads.json')),
  };
}

async function loadBase(c: Case): Promise<PreTrainedModel> {
  return (await loadPretrained(join(c.dir, 'base'), { tokenizer: false })).model;
}

const logits = (m: PreTrainedModel, c: Case) => tf.tidy(() => m.forward({ inputIds: c.ids, attentionMask: c.mask }).logits);

/** max |a − e| over the positions where the mask is 1 ≤ rtol · max |e| there. */
function assertLogitsClose(actual: tf.Tensor, expected: Flat, mask: tf.Tensor2D, what: string, rtol = 1e-4): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const [diff, scale] = tf.tidy(() => {
    const m = mask.cast('float32').expandDims(-1); // [B, T, 1]
    const e = tensorOf(expected);
    return [tf.max(tf.mul(tf.abs(tf.sub(actual, e)), m)).dataSync()[0], tf.max(tf.mul(tf.abs(e), m)).dataSync()[0]];
  });
  assert.ok(scale > 0, `${what}: golden is all zeros`);
  assert.ok(diff <= rtol * scale, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |golden| ${scale.toExponential(3)}`);
}

/** max |a − e| ≤ rtol · max |e|. */
function assertClose(actual: tf.Tensor, expected: tf.Tensor, what: string, rtol = 1e-4): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const [diff, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0], tf.max(tf.abs(expected)).dataSync()[0]]);
  assert.ok(scale > 0, `${what}: golden is all zeros`);
  assert.ok(diff <= rtol * scale, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |golden| ${scale.toExponential(3)}`);
}

/** HF's causal-LM loss: logits [B, T, V] predict labels shifted by one; -100 is ignored; mean over the rest. */
function causalLmLoss(m: PreTrainedModel, c: Case, labels: number[][]): tf.Scalar {
  return tf.tidy(() => {
    const out = m.forward({ inputIds: c.ids, attentionMask: c.mask }).logits as tf.Tensor3D;
    const [B, T, V] = out.shape;
    const lp = tf.logSoftmax(out.slice([0, 0, 0], [B, T - 1, V]).reshape([-1, V])); // [B·(T−1), V]
    const targets = labels.flatMap((row) => row.slice(1));
    const valid = tf.tensor1d(targets.map((t) => (t === -100 ? 0 : 1)), 'float32');
    const onehot = tf.oneHot(tf.tensor1d(targets.map((t) => Math.max(t, 0)), 'int32'), V);
    const nll = tf.neg(tf.sum(tf.mul(lp, onehot), 1));
    return tf.div(tf.sum(tf.mul(nll, valid)), tf.sum(valid)) as tf.Scalar;
  });
}

/** HF's gradient keys (named_parameters without the adapter name) → ours (the saved keys). */
const savedKeyOf = (hfKey: string) => hfKey.replace(/\.lora_magnitude_vector\.weight$/, '.lora_magnitude_vector').replace(/\.(lora_embedding_[AB])\.default$/, '.$1');

function checkGradients(h: LoraAdapterHandle, m: PreTrainedModel, c: Case): void {
  const params = h.trainableParameters();
  const byKey = new Map(params);
  const hfKeys = Object.keys(c.grads.grads);
  assert.deepEqual(hfKeys.map(savedKeyOf).sort(), [...byKey.keys()].sort(), 'the trainable tensors are HF\'s');
  const vars = params.map(([, v]) => v);
  const { value, grads } = tf.variableGrads(() => causalLmLoss(m, c, c.grads.labels), vars);
  assert.ok(Math.abs(value.dataSync()[0] - c.grads.loss) <= 1e-5 * Math.abs(c.grads.loss), `loss ${value.dataSync()[0]} vs HF ${c.grads.loss}`);
  for (const k of hfKeys) {
    const v = byKey.get(savedKeyOf(k))!;
    const g = grads[v.name];
    assert.ok(g, `no gradient for ${k}`);
    const e = tensorOf(c.grads.grads[k]);
    assertClose(g, e, `grad ${k}`);
    e.dispose();
  }
  value.dispose();
  Object.values(grads).forEach((g) => g.dispose());
}

/** Every base parameter (not the adapter's), copied. */
const baseSnapshot = (m: PreTrainedModel) => new Map(m.namedParameters().filter(([, v]) => !v.trainable).map(([k, v]) => [k, v.clone()]));

before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

for (const name of ['llama-dora', 'llama-lora-embed-lmhead']) {
  describe(name, () => {
    const c = readCase(name);

    test('the base computes HF\'s logits', async () => {
      const base = await loadBase(c);
      assertLogitsClose(logits(base, c), c.base, c.mask, 'base logits');
      base.dispose();
    });

    test('the HF adapter gives HF\'s logits, merged and unmerged; unmerge restores the base; disabled is the base', async () => {
      const m = await loadBase(c);
      const h = loadHfLoraAdapter(m, join(c.dir, 'adapter'));
      const before = baseSnapshot(m);
      assertLogitsClose(logits(m, c), c.adapter, c.mask, 'adapter logits');
      h.merge();
      assertLogitsClose(logits(m, c), c.adapter, c.mask, 'merged logits');
      h.unmerge();
      // Float32 rounding only: (W + Δ) − Δ with |Δ| about |W| (the embedding's B is N(0, 1)).
      for (const [k, v] of baseSnapshot(m)) assertClose(v, before.get(k)!, `${k} after unmerge`, 1e-5);
      assertLogitsClose(logits(m, c), c.adapter, c.mask, 'unmerged logits');
      h.setEnabled(false);
      assertLogitsClose(logits(m, c), c.base, c.mask, 'disabled adapter');
      h.setEnabled(true);
      const merged = h.mergeAndUnload() as PreTrainedModel;
      assertLogitsClose(logits(merged, c), c.adapter, c.mask, 'merge_and_unload logits');
      m.dispose();
    });

    test('gradients of every trainable tensor match HF\'s', async () => {
      const m = await loadBase(c);
      const h = loadHfLoraAdapter(m, join(c.dir, 'adapter'));
      checkGradients(h, m, c);
      m.dispose();
    });

    test('exported: HF\'s file keys and shapes, and reloads to the same logits', async () => {
      const m = await loadBase(c);
      const h = loadHfLoraAdapter(m, join(c.dir, 'adapter'));
      const y = logits(m, c);
      const out = join(tmp.dir, name);
      writeHfAdapter(h, out, null);
      const theirs = readSafetensorsHeader(join(c.dir, 'adapter', 'adapter_model.safetensors')).tensors;
      const ours = readSafetensorsHeader(join(out, 'adapter_model.safetensors')).tensors;
      assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
      for (const [k, t] of Object.entries(theirs)) assert.deepEqual(ours[k].shape, t.shape, k);
      const written = readJson<Record<string, unknown>>(join(out, 'adapter_config.json'));
      const hf = readJson<Record<string, unknown>>(join(c.dir, 'adapter', 'adapter_config.json'));
      for (const k of ['use_dora', 'target_modules', 'modules_to_save', 'r', 'lora_alpha']) assert.deepEqual(written[k], hf[k], k);

      const m2 = await loadBase(c);
      loadHfLoraAdapter(m2, out);
      assertClose(logits(m2, c), y, 'reloaded logits', 1e-6);
      m.dispose();
      m2.dispose();
    });
  });
}

describe('llama-lora-embed-lmhead on a tied base, and with added tokens', () => {
  const c = readCase('llama-lora-embed-lmhead');

  /** The golden base with tie_word_embeddings: lm_head is embed_tokens (the file's own lm_head is left out). */
  function tiedBase(): LlamaForCausalLM {
    const config = readJson<ModelConfig>(join(c.dir, 'base', 'config.json'));
    const m = createModel({ ...config, tie_word_embeddings: true }, 'causal-lm') as LlamaForCausalLM;
    const { tensors } = readSafetensors(join(c.dir, 'base', 'model.safetensors'));
    tensors.get('lm_head.weight')!.dispose();
    tensors.delete('lm_head.weight');
    m.loadStateDict(tensors);
    tensors.forEach((t) => t.dispose());
    return m.eval();
  }

  test('tied: lm_head in modules_to_save is an untied copy and LoRA on embed_tokens leaves the head alone, so HF\'s logits hold; merged too', () => {
    // The adapter saves the whole head (modules_to_save) and the embedding table: with both, the
    // untied golden base and a tied one compute the same thing.
    const m = tiedBase();
    assert.ok(m.lm_head instanceof TiedLinear);
    const h = loadHfLoraAdapter(m, join(c.dir, 'adapter'));
    assert.ok(m.model.embed_tokens instanceof LoraEmbedding);
    assertLogitsClose(logits(m, c), c.adapter, c.mask, 'tied adapter logits');
    h.merge();
    assertLogitsClose(logits(m, c), c.adapter, c.mask, 'tied merged logits');
    h.unmerge();
    const merged = h.mergeAndUnload() as LlamaForCausalLM;
    assert.ok(merged.lm_head instanceof Linear, 'the merged head is the trained copy, untied');
    assertLogitsClose(logits(merged, c), c.adapter, c.mask, 'tied merge_and_unload logits');
    merged.dispose();
  });

  test('added tokens: a saved table of 515 rows resizes embed_tokens and lm_head (resizeTokenEmbeddings), then the saved rows load over them', async () => {
    const ADDED = 3;
    const { tensors } = readSafetensors(join(c.dir, 'adapter', 'adapter_model.safetensors'));
    const extra = (rows: number, cols: number, seed: number) => tf.randomNormal([rows, cols], 0, 0.05, 'float32', seed);
    const grow = (k: string, axis: 0 | 1, seed: number) => {
      const t = tensors.get(k)!;
      const add = axis === 0 ? extra(ADDED, t.shape[1]!, seed) : extra(t.shape[0], ADDED, seed);
      tensors.set(k, tf.concat([t, add], axis));
    };
    grow('base_model.model.model.embed_tokens.base_layer.weight', 0, 1);
    grow('base_model.model.model.embed_tokens.lora_embedding_A', 1, 2);
    grow('base_model.model.lm_head.weight', 0, 3);
    const dir = join(tmp.dir, 'added-tokens');
    mkdirSync(dir);
    writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, { format: 'pt' });
    copyFileSync(join(c.dir, 'adapter', 'adapter_config.json'), join(dir, 'adapter_config.json'));

    const m = (await loadBase(c)) as LlamaForCausalLM;
    const h = loadHfLoraAdapter(m, dir);
    assert.match(h.adapterWarnings.join('\n'), /515 tokens, the model's had 512/);
    assert.equal(m.config.vocab_size, 515);
    const y = logits(m, c); // [2, 12, 515]
    assert.deepEqual(y.shape, [2, 12, 515]);
    assertLogitsClose(y.slice([0, 0, 0], [2, 12, 512]), c.adapter, c.mask, 'logits of the old tokens');
    // A new token's embedding is its saved row plus its LoRA update: table[v] + s·Bᵀ·A[:, v] (s = 8 / 4).
    const v = 513;
    const want = tf.tidy(() => tf.add(tensors.get('base_model.model.model.embed_tokens.base_layer.weight')!.slice([v, 0], [1, 64]),
      tf.mul(tf.matMul(tensors.get('base_model.model.model.embed_tokens.lora_embedding_A')!.slice([0, v], [4, 1]).transpose(), tensors.get('base_model.model.model.embed_tokens.lora_embedding_B')!.transpose()), 2)));
    assertClose(m.model.embed_tokens.forward(tf.tensor2d([[v]], undefined, 'int32')).reshape([1, 64]), want, 'embedding of an added token', 1e-6);
    // lm_head is in modules_to_save: the adapter's copy holds the saved rows; the base head keeps
    // its own 512 and gets the mean of them for the added ones (resizeTokenEmbeddings).
    const head = m.lm_head as unknown as ModulesToSaveWrapper;
    assert.ok(head instanceof ModulesToSaveWrapper);
    assertClose((head.copyOf('default') as unknown as { weight: tf.Tensor }).weight.slice([v, 0], [1, 64]), tensors.get('base_model.model.lm_head.weight')!.slice([v, 0], [1, 64]), 'head row of an added token', 0);
    const baseHead = (head.originalModule as unknown as { weight: tf.Tensor }).weight;
    assertClose(baseHead.slice([v, 0], [1, 64]), tf.mean(baseHead.slice([0, 0], [512, 64]), 0, true), 'base head row of an added token (mean)', 1e-6);
    tensors.forEach((t) => t.dispose());
    m.dispose();
  });
});
