// The hf-golden LoRA cases (made by transformers 5.17 + peft 0.21) on the WebGPU backend (llvmpipe where there is no
// GPU): logits with the adapter, the loss and every adapter tensor's gradient. Own process: tfjs's backend is global.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend, webgpuUnavailable } from '@peftkit/core';
import { loadAdapters, loadPretrained, type PeftModel } from '@peftkit/models';
import { repoRoot } from '@peftkit/models/testing';
import { loraMethod } from './method.js';

const reason = await webgpuUnavailable();
if (reason) console.log(`# SKIP WebGPU hf-golden: ${reason}`);

const golden = (name: string, file = '') => resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf-golden', name, file);
const json = (name: string, file: string) => JSON.parse(readFileSync(golden(name, file), 'utf8'));
type Dense = { shape: number[]; data: number[] };

before(async () => {
  if (!reason) await initBackend('webgpu');
});

/** max |a − e| ≤ rtol · max |e| over the entries where `keep` is true. */
function assertClose(actual: ArrayLike<number>, expected: Dense, what: string, keep: (i: number) => boolean = () => true, rtol = 1e-4): void {
  assert.equal(actual.length, expected.data.length, `${what}: size`);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < actual.length; i++) {
    if (!keep(i)) continue;
    diff = Math.max(diff, Math.abs(actual[i] - expected.data[i]));
    scale = Math.max(scale, Math.abs(expected.data[i]));
  }
  assert.ok(scale > 0, `${what}: golden is all zeros`);
  assert.ok(diff <= rtol * scale, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |hf| ${scale.toExponential(3)}`);
}

/** HF's loss: causal LM shifted inside the model (labels -100 ignored), or sequence classification; mean. */
function loss(peft: PeftModel, task: string, ids: tf.Tensor2D, mask: tf.Tensor2D, labels: number[][] | number[]): tf.Scalar {
  const logits = peft.forward({ inputIds: ids, attentionMask: mask }).logits;
  if (task === 'seq-cls') {
    const y = tf.oneHot(tf.tensor1d(labels as number[], 'int32'), logits.shape[1]!);
    return tf.mean(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), y), -1))) as tf.Scalar;
  }
  const [B, T, V] = logits.shape as [number, number, number];
  const lab = (labels as number[][]).map((r) => r.slice(1));
  const valid = tf.tensor2d(lab.map((r) => r.map((l) => (l === -100 ? 0 : 1))), [B, T - 1], 'float32');
  const target = tf.oneHot(tf.tensor2d(lab.map((r) => r.map((l) => (l === -100 ? 0 : l))), [B, T - 1], 'int32'), V);
  const picked = tf.sum(tf.mul(tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V])), target), -1);
  return tf.div(tf.neg(tf.sum(tf.mul(picked, valid))), tf.sum(valid)) as tf.Scalar;
}

for (const name of ['gpt2-lora', 'llama-lora-all-linear-tied', 'bert-seqcls-lora']) {
  test(`${name}: logits, loss and LoRA gradients on webgpu equal transformers + peft's (relative 1e-4)`, { skip: reason }, async () => {
    const { task } = json(name, 'case.json');
    const inputs = json(name, 'inputs.json');
    const base = await loadPretrained(golden(name, 'base'));
    const peft = await loadAdapters(base, [{ name: 'default', path: golden(name, 'adapter') }], [loraMethod]);
    const ids = tf.tensor2d(inputs.input_ids, undefined, 'int32');
    const mask = tf.tensor2d(inputs.attention_mask, undefined, 'int32');
    const m = (inputs.attention_mask as number[][]).flat();
    const logits = tf.tidy(() => peft.forward({ inputIds: ids, attentionMask: mask }).logits);
    const expected: Dense = json(name, 'hf_adapter.json');
    assert.deepEqual(logits.shape, expected.shape);
    const V = task === 'seq-cls' ? 0 : expected.shape[2];
    assertClose(await logits.data(), expected, 'logits', task === 'seq-cls' ? undefined : (i) => m[Math.floor(i / V)] === 1);

    const hf = json(name, 'hf_grads.json');
    const sd = peft.activeAdapter!.stateDict();
    const keys = Object.keys(hf.grads).filter((k) => sd.has(k));
    assert.equal(keys.length, Object.keys(hf.grads).length, `every golden gradient has a tensor: ${Object.keys(hf.grads).filter((k) => !sd.has(k)).join(', ')}`);
    const vars = keys.map((k) => sd.get(k) as tf.Variable);
    vars.forEach((v) => assert.ok(v instanceof tf.Variable && v.trainable, 'adapter tensors are trainable variables'));
    const { value, grads } = tf.variableGrads(() => tf.tidy(() => loss(peft, task, ids, mask, hf.labels)), vars);
    const l = (await value.data())[0];
    assert.ok(Math.abs(l - hf.loss) <= 1e-4 * Math.abs(hf.loss), `loss ${l} vs hf ${hf.loss}`);
    for (let i = 0; i < keys.length; i++) assertClose(await grads[vars[i].name].data(), hf.grads[keys[i]], `grad ${keys[i]}`);
    tf.dispose([ids, mask, logits, value, ...Object.values(grads)]);
  });
}
