// Parity with the real transformers 5.17 + peft 0.21 (../shared/fixtures/hf-golden/gpt2-ia3): IA3
// on GPT-2's c_attn (output scaling, [192, 1]) and mlp.c_proj (feed-forward, input scaling,
// [1, 256]); logits with the adapter, merged, and the gradients of every vector.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { HF_ADAPTER_CONFIG, loadAdapters, loadPretrained, readSafetensorsHeader, writeHfAdapterFiles, type LoadedModel, type PreTrainedModel } from '@peftkit/models';
import { repoRoot, scratch } from '@peftkit/models/testing';
import { Ia3Layer } from './layer.js';
import { ia3Method } from './method.js';
import { loadHfIa3Adapter } from './hf-format.js';

const CASE = resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf-golden', 'gpt2-ia3');
const json = (f: string) => JSON.parse(readFileSync(join(CASE, f), 'utf8'));
const inputs = json('inputs.json') as { input_ids: number[][]; attention_mask: number[][] };
const [B, T] = [inputs.input_ids.length, inputs.input_ids[0].length];
const tmp = scratch('peftkit-ia3-golden-');
const quiet = { error() {}, warn() {}, info() {}, debug() {} };

before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

async function base(): Promise<LoadedModel> {
  const loaded = await loadPretrained(join(CASE, 'base'), { tokenizer: false });
  loaded.model.eval();
  return loaded;
}

function logits(model: { forward: PreTrainedModel['forward'] }): Float32Array {
  return tf.tidy(() => {
    const ids = tf.tensor2d(inputs.input_ids, [B, T], 'int32');
    const mask = tf.tensor2d(inputs.attention_mask, [B, T], 'int32');
    return model.forward({ inputIds: ids, attentionMask: mask }).logits.dataSync() as Float32Array;
  });
}

/**
 * max |ours - HF| / max |HF| over the positions where attention_mask is 1 (the README: padded
 * positions are not compared). Logits are [B, T, vocab], row-major.
 */
function relativeError(ours: Float32Array, file: string): number {
  const ref = json(file) as { shape: number[]; data: number[] };
  assert.deepEqual(ref.shape.slice(0, 2), [B, T]);
  const V = ref.shape[2];
  assert.equal(ours.length, ref.data.length);
  let diff = 0;
  let scale = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      if (!inputs.attention_mask[b][t]) continue;
      for (let v = 0; v < V; v++) {
        const i = (b * T + t) * V + v;
        diff = Math.max(diff, Math.abs(ours[i] - ref.data[i]));
        scale = Math.max(scale, Math.abs(ref.data[i]));
      }
    }
  }
  return diff / scale;
}

test('the base model matches HF\'s base logits (the fixture loads as HF computes it)', async () => {
  const { model } = await base();
  const err = relativeError(logits(model), 'hf_base.json');
  assert.ok(err < 1e-4, `relative error ${err}`);
  model.dispose();
});

test('the HF PEFT adapter loads with its config, keys and shapes, and gives HF\'s logits', async (t) => {
  const { model } = await base();
  const h = loadHfIa3Adapter(model, join(CASE, 'adapter'), { logger: quiet });
  assert.deepEqual(h.warnings, [], 'every field peft 0.21 writes for IA3 is known');
  assert.deepEqual([h.config.target_modules, h.config.feedforward_modules, h.config.fan_in_fan_out, h.config.task_type], [['c_attn', 'mlp.c_proj'], ['mlp.c_proj'], true, 'CAUSAL_LM']);
  const wrapped = model.namedModules().filter(([, m]) => m instanceof Ia3Layer) as [string, Ia3Layer][];
  // mlp.c_proj matches, attn.c_proj does not; only mlp.c_proj is feed-forward.
  assert.deepEqual(wrapped.map(([k, m]) => [k, m.isFeedforward]), [
    ['transformer.h.0.attn.c_attn', false], ['transformer.h.0.mlp.c_proj', true],
    ['transformer.h.1.attn.c_attn', false], ['transformer.h.1.mlp.c_proj', true],
  ]);
  const header = readSafetensorsHeader(join(CASE, 'adapter', 'adapter_model.safetensors'));
  assert.deepEqual(Object.fromEntries([...h.stateDict()].map(([k, t]) => [k, t.shape])), Object.fromEntries(Object.entries(header.tensors).map(([k, t]) => [k, t.shape])));

  const err = relativeError(logits(model), 'hf_adapter.json');
  t.diagnostic(`relative error of the logits with the adapter: ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `relative error with the adapter: ${err}`);
  // The fixture's vectors are not ones, so the adapter changes the logits well beyond the tolerance.
  h.setEnabled(false);
  assert.ok(relativeError(logits(model), 'hf_adapter.json') > 1e-2, 'disabled, the logits should be the base\'s');
  assert.ok(relativeError(logits(model), 'hf_base.json') < 1e-4, 'disabled: the base\'s logits');
  h.setEnabled(true);
  model.dispose();
});

test('merged (W ⊙ l per row or column, b ⊙ l for output scaling) gives HF\'s logits; unmerged, the base weights come back', async (t) => {
  const { model } = await base();
  const before = new Map([...model.stateDict()].map(([k, t]) => [k, t.dataSync().slice() as Float32Array]));
  const h = loadHfIa3Adapter(model, join(CASE, 'adapter'));
  h.merge();
  const err = relativeError(logits(model), 'hf_adapter.json');
  t.diagnostic(`relative error of the logits merged: ${err.toExponential(2)}`);
  assert.ok(err < 1e-4, `relative error merged: ${err}`);
  const cAttn = model.stateDict().get('transformer.h.0.attn.c_attn.weight')!.dataSync();
  assert.ok(cAttn.some((v, i) => Math.abs(v - before.get('transformer.h.0.attn.c_attn.weight')![i]) > 1e-4), 'merging changed c_attn\'s weight');
  // Feed-forward layers keep their bias (the input is scaled, not the output).
  assert.deepEqual(model.stateDict().get('transformer.h.0.mlp.c_proj.bias')!.dataSync(), before.get('transformer.h.0.mlp.c_proj.bias'));
  h.unmerge();
  for (const [k, t] of model.stateDict()) {
    if (k.includes('ia3_l')) continue;
    const was = before.get(k)!;
    const now = t.dataSync() as Float32Array;
    const worst = now.reduce((m, v, i) => Math.max(m, Math.abs(v - was[i])), 0);
    assert.ok(worst < 1e-5, `${k}: unmerge left a difference of ${worst}`);
  }
  assert.ok(relativeError(logits(model), 'hf_adapter.json') < 1e-4);

  // merge_and_unload: plain Conv1D layers again, HF's logits.
  h.mergeAndUnload();
  assert.equal(model.namedModules().filter(([, m]) => m instanceof Ia3Layer).length, 0);
  assert.ok(!model.namedParameters().some(([k]) => k.includes('ia3_l')));
  assert.ok(relativeError(logits(model), 'hf_adapter.json') < 1e-4);
  model.dispose();
});

test('gradients of every vector match HF\'s (causal-LM loss, labels -100 on padding)', async (t) => {
  const ref = json('hf_grads.json') as { loss: number; labels: number[][]; grads: Record<string, { shape: number[]; data: number[] }> };
  const { model } = await base();
  const h = loadHfIa3Adapter(model, join(CASE, 'adapter'));
  const params = h.trainableParameters();
  assert.ok(params.every(([, v]) => v.trainable));
  // Mean cross-entropy of the shifted labels, over the targets that are not -100 (HF's ForCausalLMLoss).
  const lossFn = () => tf.tidy(() => {
    const ids = tf.tensor2d(inputs.input_ids, [B, T], 'int32');
    const mask = tf.tensor2d(inputs.attention_mask, [B, T], 'int32');
    const out = model.forward({ inputIds: ids, attentionMask: mask }).logits as tf.Tensor3D; // [B, T, V]
    const V = out.shape[2];
    const shifted = out.slice([0, 0, 0], [B, T - 1, V]).reshape([-1, V]);
    const labels = ref.labels.flatMap((row) => row.slice(1));
    const valid = tf.tensor1d(labels.map((l) => (l === -100 ? 0 : 1)), 'float32');
    const target = tf.oneHot(tf.tensor1d(labels.map((l) => Math.max(l, 0)), 'int32'), V);
    const nll = tf.neg(tf.sum(tf.mul(tf.logSoftmax(shifted), target), -1)); // [B·(T-1)]
    return tf.div(tf.sum(tf.mul(nll, valid)), tf.sum(valid)) as tf.Scalar;
  });
  const { value, grads } = tf.variableGrads(lossFn, params.map(([, v]) => v));
  assert.ok(Math.abs(value.dataSync()[0] - ref.loss) < 1e-4 * Math.abs(ref.loss), `loss ${value.dataSync()[0]} vs HF ${ref.loss}`);
  const largest = Math.max(...Object.values(ref.grads).flatMap((g) => g.data.map(Math.abs)));
  assert.deepEqual(params.map(([k]) => `${k}.default`).sort(), Object.keys(ref.grads).sort());
  for (const [k, v] of params) {
    const g = grads[v.name];
    const want = ref.grads[`${k}.default`];
    assert.deepEqual(g.shape, want.shape, k);
    const got = g.dataSync();
    const worst = want.data.reduce((m, x, i) => Math.max(m, Math.abs(x - got[i])), 0);
    t.diagnostic(`${k}: max gradient difference / largest HF gradient = ${(worst / largest).toExponential(2)}`);
    assert.ok(worst <= 1e-4 * largest, `${k}: gradient differs by ${worst} (largest HF gradient ${largest})`);
  }
  model.dispose();
});

test('what peftkit exports for it is HF\'s layout and loads back (through the registry\'s loader) with the same logits', async () => {
  const first = await base();
  const h = loadHfIa3Adapter(first.model, join(CASE, 'adapter'));
  const out = join(tmp.dir, 'exported');
  assert.deepEqual(writeHfAdapterFiles(out, h, 'gpt2-ia3-base').sort(), [HF_ADAPTER_CONFIG, 'adapter_model.safetensors'].sort());
  const written = JSON.parse(readFileSync(join(out, HF_ADAPTER_CONFIG), 'utf8'));
  const hf = json(join('adapter', HF_ADAPTER_CONFIG));
  // Every field HF wrote, with HF's values, except where it came from (base, version) and
  // exclude_modules, which peftkit writes only when set (PEFT < 0.14 does not know it).
  for (const k of Object.keys(hf).filter((f) => !['base_model_name_or_path', 'peft_version', 'exclude_modules'].includes(f))) assert.deepEqual(written[k], hf[k], k);
  assert.equal(written.base_model_name_or_path, 'gpt2-ia3-base');
  assert.deepEqual(Object.keys(readSafetensorsHeader(join(out, 'adapter_model.safetensors')).tensors).sort(), Object.keys(readSafetensorsHeader(join(CASE, 'adapter', 'adapter_model.safetensors')).tensors).sort());

  const second = await base();
  const peft = await loadAdapters(second, [{ name: 'again', path: out }], [ia3Method]);
  assert.equal(peft.adapters.get('again')!.method, 'ia3');
  const a = logits(first.model);
  const b = logits({ forward: (x) => peft.forward(x) });
  assert.deepEqual(b, a, 'the reloaded adapter gives the same logits');
  assert.ok(relativeError(b, 'hf_adapter.json') < 1e-4);
  first.model.dispose();
  second.model.dispose();
});
