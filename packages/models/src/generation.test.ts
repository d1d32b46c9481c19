import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { GPT2LMHeadModel, PeftModel, generate, manualSeed, type AdapterHandle, type ModelInputs, type ModelOutput, type PreTrainedModel } from './index.js';

const cfg = { model_type: 'gpt2', vocab_size: 31, n_positions: 40, n_embd: 16, n_layer: 2, n_head: 2, eos_token_id: 30 };
let model: GPT2LMHeadModel;
const prompts = [[3, 14, 15, 9], [2, 6, 5, 3]];

before(async () => {
  await initBackend('wasm');
  manualSeed(11);
  model = new GPT2LMHeadModel(cfg).eval();
  // Larger weights than the 0.02 init, so that logits are far from ties.
  for (const [, v] of model.namedParameters()) if (v.shape.length === 2) v.assign(tf.mul(v, 20));
});

/** Greedy search without a cache: rerun everything each step (the reference for the cached path). */
function referenceGreedy(forward: (ids: number[][]) => tf.Tensor, start: number[][], n: number): number[][] {
  const seqs = start.map((r) => [...r]);
  for (let s = 0; s < n; s++) {
    const next = tf.tidy(() => {
      const logits = forward(seqs);
      const [B, T, V] = logits.shape;
      return tf.argMax(tf.slice(logits, [0, T - 1, 0], [B, 1, V]).reshape([B, V]), -1).arraySync() as number[];
    });
    next.forEach((t, b) => seqs[b].push(t));
  }
  return seqs.map((r, b) => r.slice(start[b].length));
}

test('greedy generation equals the cache-free reference and leaks no tensors', () => {
  const before = tf.memory().numTensors;
  const r = generate(model, prompts, { maxNewTokens: 8, eosTokenId: null });
  assert.equal(tf.memory().numTensors, before);
  const ids = (rows: number[][]) => tf.tensor2d(rows, [rows.length, rows[0].length], 'int32');
  assert.deepEqual(r.generated, referenceGreedy((s) => model.forward({ inputIds: ids(s) }).logits, prompts, 8));
  // A tensor prompt gives the same.
  assert.deepEqual(generate(model, ids(prompts), { maxNewTokens: 8, eosTokenId: null }).generated, r.generated);
});

test('sampling: seeded and reproducible; top-k 1, a tiny top-p or temperature 0 are greedy', () => {
  const greedy = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null }).generated;
  const a = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, temperature: 1.5, seed: 1 }).generated;
  const b = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, temperature: 1.5, seed: 1 }).generated;
  const c = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, temperature: 1.5, seed: 2 }).generated;
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.deepEqual(generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, doSample: true, topK: 1, seed: 3 }).generated, greedy);
  assert.deepEqual(generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, doSample: true, topP: 1e-6, seed: 3 }).generated, greedy);
  assert.deepEqual(generate(model, prompts, { maxNewTokens: 6, eosTokenId: null, doSample: true, temperature: 0 }).generated, greedy);
});

/** A stand-in causal LM whose next-token distribution is always p = [0.5, 0.3, 0.2]. */
const fixed = {
  forward(inputs: ModelInputs): ModelOutput {
    const [B, T] = inputs.inputIds!.shape;
    return { logits: tf.tidy(() => tf.tile(tf.log(tf.tensor3d([0.5, 0.3, 0.2], [1, 1, 3])), [B, T, 1])), pastKeyValues: [] };
  },
};

function frequencies(opts: { topK?: number; topP?: number }): number[] {
  const rows = Array.from({ length: 400 }, () => [0]);
  const r = generate(fixed, rows, { maxNewTokens: 5, doSample: true, seed: 7, eosTokenId: null, ...opts });
  const counts = [0, 0, 0];
  r.generated.flat().forEach((t) => counts[t]++);
  return counts.map((c) => c / 2000);
}

test('sampling follows the softmax, with HF\'s top-k and top-p filtering', () => {
  const close = (got: number[], want: number[]) => got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 0.04, `${got} vs ${want}`));
  close(frequencies({}), [0.5, 0.3, 0.2]);
  close(frequencies({ topK: 2 }), [0.625, 0.375, 0]);
  // Ascending cumulative probabilities 0.2, 0.5, 1: top_p 0.75 drops the tail ≤ 0.25 (token 2), 0.85 drops nothing.
  close(frequencies({ topP: 0.75 }), [0.625, 0.375, 0]);
  close(frequencies({ topP: 0.85 }), [0.5, 0.3, 0.2]);
});

test('rows stop at EOS and are padded after it; maxNewTokens 0 returns the prompts', () => {
  const free = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null }).generated;
  const eos = free[1][2];
  const r = generate(model, prompts, { maxNewTokens: 6, eosTokenId: [eos, 999], padTokenId: 0 });
  const cut = (row: number[]) => (row.includes(eos) ? row.slice(0, row.indexOf(eos) + 1) : row);
  assert.deepEqual(r.generated, free.map(cut));
  assert.deepEqual(generate(model, prompts, { maxNewTokens: 0 }).sequences, prompts);
  assert.throws(() => generate(model, [[]], { maxNewTokens: 2 }), /a prompt is empty/);
});

/** A hand-made adapter handle with only what prompt learning uses. */
function handle(name: string, parts: Pick<AdapterHandle, 'prepareInputs' | 'postprocessOutput'>): AdapterHandle {
  return {
    name,
    method: 'test',
    peftType: null,
    config: {},
    trainableParameters: () => [],
    stateDict: () => new Map(),
    loadStateDict: () => {},
    adapterConfig: () => ({}),
    setEnabled: () => {},
    dispose: () => {},
    ...parts,
  };
}

test('a PeftModel with a prefix-tuning-style adapter: the prefix enters the cache once, the mask gets its ones every step', () => {
  manualSeed(12);
  const P = 3;
  const prefix = [0, 1].map(() => ({ key: tf.randomNormal([1, 2, P, 8]) as tf.Tensor4D, value: tf.randomNormal([1, 2, P, 8]) as tf.Tensor4D }));
  const ones = (B: number) => tf.ones([B, P], 'int32');
  const peft = new PeftModel({ model: model as PreTrainedModel, source: 'test' });
  peft.addAdapter(
    handle('prefix', {
      // As HF PEFT: the prefix only when there is no cache yet; the mask always covers it.
      prepareInputs: (x) => ({
        ...x,
        attentionMask: tf.concat([ones(x.inputIds!.shape[0]), x.attentionMask!], 1) as tf.Tensor2D,
        pastKeyValues: x.pastKeyValues ?? prefix,
      }),
    }),
  );
  const got = generate(peft, prompts, { maxNewTokens: 6, eosTokenId: null }).generated;
  const want = referenceGreedy((s) => model.forward({ inputIds: tf.tensor2d(s, [2, s[0].length], 'int32'), pastKeyValues: prefix }).logits, prompts, 6);
  assert.deepEqual(got, want);
  const plain = generate(model, prompts, { maxNewTokens: 6, eosTokenId: null }).generated;
  assert.notDeepEqual(got, plain, 'the prefix changes the continuation');
});

test('a PeftModel with a prompt-tuning-style adapter: virtual tokens in front on the first step only', () => {
  manualSeed(13);
  const P = 2;
  const virtual = tf.randomNormal([1, P, 16]);
  const embed = (ids: tf.Tensor) => model.getInputEmbeddings().forward(ids) as tf.Tensor3D;
  const peft = new PeftModel({ model: model as PreTrainedModel, source: 'test' });
  peft.addAdapter(
    handle('prompt', {
      prepareInputs: (x) => {
        const B = x.inputIds!.shape[0];
        const mask = tf.concat([tf.ones([B, P], 'int32'), x.attentionMask!], 1) as tf.Tensor2D;
        if (x.pastKeyValues) return { ...x, attentionMask: mask };
        const inputsEmbeds = tf.concat([tf.tile(virtual, [B, 1, 1]), embed(x.inputIds!)], 1) as tf.Tensor3D;
        return { ...x, inputIds: undefined, inputsEmbeds, attentionMask: mask };
      },
      postprocessOutput: (out, x) => {
        const [B, T, V] = out.logits.shape;
        const Tin = x.inputIds!.shape[1];
        return T > Tin ? { ...out, logits: tf.slice(out.logits, [0, T - Tin, 0], [B, Tin, V]) } : out;
      },
    }),
  );
  const got = generate(peft, prompts, { maxNewTokens: 5, eosTokenId: null }).generated;
  const want = referenceGreedy(
    (s) => model.forward({ inputsEmbeds: tf.concat([tf.tile(virtual, [2, 1, 1]), embed(tf.tensor2d(s, [2, s[0].length], 'int32'))], 1) as tf.Tensor3D }).logits,
    prompts,
    5,
  );
  assert.deepEqual(got, want);
});
