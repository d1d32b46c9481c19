// Parity with golden outputs of an independent PyTorch re-implementation of HF's modeling code
// (tools/golden/make_golden.py; how each file was made: test-fixtures/golden/README.md).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { createModel, generate, readSafetensors, type PreTrainedModel } from '../index.js';
import { repoRoot } from '../testing/index.js';

const GOLDEN = join(repoRoot(), 'packages', 'models', 'test-fixtures', 'golden');

interface Case {
  model: PreTrainedModel;
  io: Map<string, tf.Tensor>;
  generation?: { prompts: number[][]; max_new_tokens: number; greedy_new_tokens: number[][] };
}

function load(name: string): Case {
  const dir = join(GOLDEN, name);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const model = createModel(config, undefined, join(dir, 'config.json'));
  const weights = readSafetensors(join(dir, 'model.safetensors')).tensors;
  model.loadStateDict(weights, true);
  weights.forEach((t) => t.dispose());
  const io = readSafetensors(join(dir, 'io.safetensors')).tensors;
  let generation;
  try {
    generation = JSON.parse(readFileSync(join(dir, 'generation.json'), 'utf8'));
  } catch {
    generation = undefined;
  }
  return { model, io, generation };
}

/** max |a - e| ≤ rtol · max |e| (relative to the tensor's scale, so near-zero entries do not dominate). */
function assertClose(actual: tf.Tensor, expected: tf.Tensor, what: string, rtol = 1e-4): void {
  assert.deepEqual(actual.shape, expected.shape, `${what}: shape`);
  const [diff, scale] = tf.tidy(() => [tf.max(tf.abs(tf.sub(actual, expected))).dataSync()[0], tf.max(tf.abs(expected)).dataSync()[0]]);
  assert.ok(scale > 0, `${what}: golden is all zeros`);
  assert.ok(diff <= rtol * scale, `${what}: max |diff| ${diff.toExponential(3)} > ${rtol} × max |golden| ${scale.toExponential(3)}`);
}

const get = (c: Case, k: string) => {
  const t = c.io.get(k);
  assert.ok(t, `golden tensor ${k} missing`);
  return t!;
};

before(async () => {
  await initBackend('wasm');
});

describe('GPT-2', () => {
  test('logits with a padding mask', () => {
    const c = load('gpt2');
    const out = c.model.forward({ inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: get(c, 'attention_mask') as tf.Tensor2D });
    assertClose(out.logits, get(c, 'logits'), 'logits');
  });

  test('LM loss and gradients (tied wte, wpe through gather, Conv1D, LayerNorm)', () => {
    const c = load('gpt2');
    const ids = get(c, 'input_ids') as tf.Tensor2D;
    const mask = get(c, 'attention_mask') as tf.Tensor2D;
    const names = ['transformer.wte.weight', 'transformer.wpe.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.1.mlp.c_proj.weight', 'transformer.ln_f.bias'];
    const sd = c.model.stateDict();
    const vars = names.map((n) => sd.get(n) as tf.Variable);
    const { value, grads } = tf.variableGrads(() => lmLoss(c.model, ids, mask), vars);
    assertClose(value, get(c, 'loss').reshape([]), 'loss');
    names.forEach((n, i) => assertClose(grads[vars[i].name], get(c, `grad.${n}`), `grad ${n}`));
  });

  test('prefix keys/values (prefix tuning) shift positions and extend the mask', () => {
    const c = load('gpt2');
    const prefix = [0, 1].map((i) => ({ key: get(c, `prefix.${i}.key`) as tf.Tensor4D, value: get(c, `prefix.${i}.value`) as tf.Tensor4D }));
    const mask = tf.concat([tf.ones([2, 3], 'int32'), get(c, 'attention_mask').cast('int32')], 1) as tf.Tensor2D;
    const out = c.model.forward({ inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: mask, pastKeyValues: prefix });
    assertClose(out.logits, get(c, 'logits_prefix'), 'logits with prefix');
  });

  test('greedy generation with the KV cache matches the cache-free reference', () => {
    const c = load('gpt2');
    const g = c.generation!;
    const r = generate(c.model, g.prompts, { maxNewTokens: g.max_new_tokens, eosTokenId: null });
    assert.deepEqual(r.generated, g.greedy_new_tokens);
    assert.deepEqual(r.sequences, g.prompts.map((p, i) => [...p, ...g.greedy_new_tokens[i]]));
  });

  test('generation stops each row at its EOS', () => {
    const c = load('gpt2');
    const g = c.generation!;
    const eos = g.greedy_new_tokens[0][3];
    const expected = g.greedy_new_tokens.map((row) => (row.includes(eos) ? row.slice(0, row.indexOf(eos) + 1) : row));
    const steps: number[][] = [];
    const r = generate(c.model, g.prompts, { maxNewTokens: g.max_new_tokens, eosTokenId: eos, padTokenId: 0, onToken: (t) => steps.push(t) });
    assert.deepEqual(r.generated, expected);
    assert.equal(steps.length, Math.max(...expected.map((e) => e.length)));
  });

  test('a left-padded prompt continues as it does alone', () => {
    const c = load('gpt2');
    const [a, b] = c.generation!.prompts;
    const short = b.slice(2);
    const alone = generate(c.model, [short], { maxNewTokens: 6, eosTokenId: null });
    const batched = generate(c.model, [a, short], { maxNewTokens: 6, eosTokenId: null, padTokenId: 0 });
    assert.deepEqual(batched.generated[1], alone.generated[0]);
    assert.deepEqual(batched.sequences[1], [...short, ...alone.generated[0]]);
  });

  test('sequence classification pools at the last non-padding token (right and left padding)', () => {
    const c = load('gpt2-seqcls');
    assert.equal(c.model.task, 'sequence-classification');
    const out = c.model.forward({ inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: get(c, 'attention_mask') as tf.Tensor2D });
    assertClose(out.logits, get(c, 'logits'), 'pooled logits');
  });
});

for (const name of ['llama', 'qwen2', 'mistral']) {
  describe(name, () => {
    test('logits with a padding mask', () => {
      const c = load(name);
      const out = c.model.forward({ inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: get(c, 'attention_mask') as tf.Tensor2D });
      assertClose(out.logits, get(c, 'logits'), 'logits');
    });
    test('greedy generation with the KV cache matches the cache-free reference', () => {
      const c = load(name);
      const g = c.generation!;
      assert.deepEqual(generate(c.model, g.prompts, { maxNewTokens: g.max_new_tokens, eosTokenId: null }).generated, g.greedy_new_tokens);
    });
  });
}

describe('encoders', () => {
  test('BERT: hidden states and classifier logits with token types and padding', () => {
    const c = load('bert');
    const inputs = { inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: get(c, 'attention_mask') as tf.Tensor2D, tokenTypeIds: get(c, 'token_type_ids') as tf.Tensor2D };
    const out = c.model.forward(inputs);
    assertClose(out.lastHiddenState!, get(c, 'last_hidden_state'), 'last hidden state');
    assertClose(out.logits, get(c, 'logits'), 'logits');
  });
  test('DistilBERT: hidden states and classifier logits with padding', () => {
    const c = load('distilbert');
    const out = c.model.forward({ inputIds: get(c, 'input_ids') as tf.Tensor2D, attentionMask: get(c, 'attention_mask') as tf.Tensor2D });
    assertClose(out.lastHiddenState!, get(c, 'last_hidden_state'), 'last hidden state');
    assertClose(out.logits, get(c, 'logits'), 'logits');
  });
});

/** GPT2LMHeadModel's loss: next-token cross-entropy, padding ignored, mean over counted tokens. */
function lmLoss(model: PreTrainedModel, ids: tf.Tensor2D, mask: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const logits = model.forward({ inputIds: ids, attentionMask: mask }).logits as tf.Tensor3D;
    const [B, T, V] = logits.shape;
    const shifted = tf.slice(logits, [0, 0, 0], [B, T - 1, V]);
    const labels = tf.slice(ids, [0, 1], [B, T - 1]).cast('int32');
    const valid = tf.slice(mask, [0, 1], [B, T - 1]).cast('float32');
    const picked = tf.sum(tf.mul(tf.logSoftmax(shifted), tf.oneHot(labels, V)), -1); // [B, T-1]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, valid))), tf.sum(valid)) as tf.Scalar;
  });
}
