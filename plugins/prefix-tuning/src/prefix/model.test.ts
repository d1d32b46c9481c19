import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { PeftModel, generate, readSafetensors, type KVCache, type PreTrainedModel } from '@peftkit/models';
import { injectPrefixTuning, loadPrefixTuningAdapter, prefixTuningMethod, savePromptLearningAdapter, type PrefixTuningHandle } from '../index.js';
import { logitsOf, maxAbsDiff, sampleIds, scratch, tinyModel } from '@peftkit/models/testing';
import { GPT2, LLAMA_GQA, cacheOf } from '../testing/tiny-models.js';

const tmp = scratch();
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

/**
 * HF PEFT's `prompt_embeddings` layout written element by element from per-layer keys and values
 * [1, H, P, D]: row p holds, for j = 0 .. 2L-1 (layer ⌊j/2⌋, key if j is even else value), heads
 * h, dims d, at column j·H·D + h·D + d (the `view(B, P, L·2, H, D)` of `get_prompt`).
 */
function tableFromCache(cache: KVCache): tf.Tensor2D {
  const L = cache.length;
  const [, H, P, D] = cache[0].key.shape;
  const parts = cache.flatMap((l) => [l.key.arraySync()[0], l.value.arraySync()[0]]); // each [H][P][D]
  const out = new Float32Array(P * L * 2 * H * D);
  for (let p = 0; p < P; p++) for (let j = 0; j < 2 * L; j++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) out[p * (2 * L * H * D) + j * H * D + h * D + d] = parts[j][h][p][d];
  return tf.tensor2d(out, [P, 2 * L * H * D]);
}

/** A PeftModel whose prefix is what the base computes for `promptIds` [1, P]. */
function prefixedWith(model: PreTrainedModel, promptIds: tf.Tensor2D): { h: PrefixTuningHandle; peft: PeftModel } {
  const h = injectPrefixTuning(model, { num_virtual_tokens: promptIds.shape[1] }, { seed: 1 });
  const cache = cacheOf(model, promptIds);
  const table = tableFromCache(cache);
  h.loadStateDict(new Map([['prompt_embeddings', table]]));
  tf.dispose([table, ...cache.flatMap((l) => [l.key, l.value])]);
  const peft = new PeftModel({ model, source: 'tiny' });
  peft.addAdapter(h);
  return { h, peft };
}

describe('prefix tuning: forward', () => {
  for (const [name, config] of [['gpt2', GPT2], ['llama (GQA)', LLAMA_GQA]] as const) {
    it(`${name}: a prefix equal to the base's keys/values of some tokens gives the logits of the base reading them first`, () => {
      const model = tinyModel(config);
      const A = sampleIds(1, 3, 50, 31);
      const B = sampleIds(2, 4, 50, 32);
      const { peft } = prefixedWith(model, A);
      const got = logitsOf(peft, B);
      assert.deepEqual(got.shape, [2, 4, 50]);
      const want = tf.slice(logitsOf(model, tf.concat([tf.tile(A, [2, 1]), B], 1) as tf.Tensor2D), [0, 3, 0], [-1, 4, -1]);
      assert.ok(maxAbsDiff(got, want) < 1e-4, `diff ${maxAbsDiff(got, want)}`);
      assert.ok(maxAbsDiff(got, logitsOf(model, B)) > 1e-3, 'the prefix changes the outputs');
      // With a padding mask: the mask is extended, padded rows still match.
      const mask = tf.tensor2d([[1, 1, 1, 1], [1, 1, 1, 1]], [2, 4], 'int32');
      assert.ok(maxAbsDiff(tf.tidy(() => peft.forward({ inputIds: B, attentionMask: mask }).logits), want) < 1e-4);
    });
  }

  it('GQA sizes: token_dim = head_dim × key/value heads, HF config fields', () => {
    const model = tinyModel(LLAMA_GQA); // 4 heads of 4, 2 key/value heads
    const h = injectPrefixTuning(model, { num_virtual_tokens: 5 }, { seed: 2 });
    assert.equal(h.resolved.token_dim, 8);
    assert.equal(h.resolved.num_attention_heads, 2);
    assert.deepEqual(h.stateDict().get('prompt_embeddings')!.shape, [5, 2 * 2 * 8]);
    const kv = h.pastKeyValues(3);
    assert.equal(kv.length, 2);
    assert.deepEqual(kv[1].value.shape, [3, 2, 5, 4]);
    const c = h.adapterConfig();
    assert.equal(c.peft_type, 'PREFIX_TUNING');
    assert.equal(c.token_dim, 8);
    assert.equal(c.num_attention_heads, 2);
    assert.equal(c.num_layers, 2);
    assert.equal(c.encoder_hidden_size, 8);
    assert.equal(c.prefix_projection, false);
    assert.equal(c.task_type, 'CAUSAL_LM');
    // A hidden-size token_dim (HF's default before its GQA adjustment) is accepted; others are not.
    assert.equal(injectPrefixTuning(model, { token_dim: 16 }, {}).resolved.token_dim, 8);
    assert.throws(() => injectPrefixTuning(model, { token_dim: 12 }, {}), (e: unknown) => e instanceof UserError && e.details.pointer === '/token_dim');
  });

  it('the attention mask gets P ones in front; positions start after the prefix', () => {
    const model = tinyModel(GPT2);
    const h = injectPrefixTuning(model, { num_virtual_tokens: 2 }, { seed: 2 });
    const inputs = { inputIds: sampleIds(1, 3, 50), attentionMask: tf.tensor2d([[0, 1, 1]], [1, 3], 'int32'), positionIds: tf.tensor2d([[0, 0, 1]], [1, 3], 'int32') };
    const prepared = h.prepareInputs(inputs);
    assert.deepEqual(prepared.attentionMask!.arraySync(), [[1, 1, 0, 1, 1]]);
    assert.deepEqual(prepared.positionIds!.arraySync(), [[2, 2, 3]]);
    assert.equal(prepared.pastKeyValues!.length, 2);
    const out = h.postprocessOutput(model.forward(prepared), inputs);
    assert.deepEqual(out.logits.shape, [1, 3, 50]);
    assert.ok(prepared.pastKeyValues![0].key.isDisposed);
  });

  it('generation: greedy tokens equal the base model continuing the prefix tokens (GQA)', () => {
    const model = tinyModel(LLAMA_GQA);
    const A = sampleIds(1, 4, 50, 41);
    const { peft } = prefixedWith(model, A);
    const prompt = [[1, 2, 3], [4, 5, 6]];
    const got = generate(peft, prompt, { maxNewTokens: 5, eosTokenId: null });
    const a = Array.from(A.dataSync());
    const want = generate(model, prompt.map((p) => [...a, ...p]), { maxNewTokens: 5, eosTokenId: null });
    assert.deepEqual(got.generated, want.generated);
  });

  it('no tensors leak across forward passes, with and without a returned cache', () => {
    const model = tinyModel(LLAMA_GQA);
    const { peft } = prefixedWith(model, sampleIds(1, 2, 50));
    const ids = sampleIds(2, 3, 50);
    const mask = tf.ones([2, 3], 'int32') as tf.Tensor2D;
    const run = (useCache: boolean) => {
      const out = peft.forward({ inputIds: ids, attentionMask: mask, useCache });
      tf.dispose([out.logits, out.lastHiddenState!, ...(out.pastKeyValues ?? []).flatMap((l) => [l.key, l.value])]);
    };
    run(false);
    run(true);
    const n = tf.memory().numTensors;
    run(false);
    run(true);
    assert.equal(tf.memory().numTensors, n);
  });

  it('gradients reach the prefix table', () => {
    const model = tinyModel(GPT2);
    const h = injectPrefixTuning(model, { num_virtual_tokens: 3 }, { seed: 2 });
    const peft = new PeftModel({ model, source: 'tiny' });
    peft.addAdapter(h);
    const vars = h.trainableParameters().map(([, v]) => v);
    assert.deepEqual(h.trainableParameters().map(([k]) => k), ['prompt_embeddings']);
    const ids = sampleIds(2, 4, 50);
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(tf.square(peft.forward({ inputIds: ids }).logits)) as tf.Scalar), vars);
    assert.ok(tf.tidy(() => tf.max(tf.abs(grads[vars[0].name])).dataSync()[0]) > 0);
    tf.dispose(grads);
  });
});

describe('prefix tuning: prefix_projection', () => {
  it('the MLP is trained; the export is its output, which loads as a plain table with the same outputs', () => {
    const model = tinyModel(LLAMA_GQA);
    const h = injectPrefixTuning(model, { num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: 12 }, { seed: 5 });
    assert.ok(h.projected);
    const names = h.trainableParameters().map(([k, v]) => `${k} [${v.shape.join(', ')}]`);
    assert.deepEqual(names, [
      'prompt_encoder.embedding.weight [3, 8]',
      'prompt_encoder.transform.0.weight [12, 8]',
      'prompt_encoder.transform.0.bias [12]',
      'prompt_encoder.transform.2.weight [32, 12]',
      'prompt_encoder.transform.2.bias [32]',
    ]);
    const p = new Map(h.trainableParameters());
    const manual = tf.tidy(() => {
      const hidden = tf.tanh(tf.add(tf.matMul(p.get('prompt_encoder.embedding.weight')!, p.get('prompt_encoder.transform.0.weight')!, false, true), p.get('prompt_encoder.transform.0.bias')!));
      return tf.add(tf.matMul(hidden, p.get('prompt_encoder.transform.2.weight')!, false, true), p.get('prompt_encoder.transform.2.bias')!);
    });
    const saved = h.stateDict().get('prompt_embeddings')!;
    assert.deepEqual(saved.shape, [3, 32]);
    assert.ok(maxAbsDiff(saved, manual) < 1e-6);

    // Gradients reach the embedding and both linear layers.
    const peft = new PeftModel({ model, source: 'tiny' });
    peft.addAdapter(h);
    const ids = sampleIds(2, 4, 50, 3);
    const vars = h.trainableParameters().map(([, v]) => v);
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(tf.square(peft.forward({ inputIds: ids }).logits)) as tf.Scalar), vars);
    for (const v of vars) assert.ok(tf.tidy(() => tf.max(tf.abs(grads[v.name])).dataSync()[0]) > 0, v.name);
    tf.dispose(grads);

    const trained = logitsOf(peft, ids);
    const dir = join(tmp.dir, 'prefix-proj');
    savePromptLearningAdapter(dir, h, 'tiny/llama');
    const json = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(json.prefix_projection, true);
    assert.equal(json.encoder_hidden_size, 12);
    assert.equal(json.base_model_name_or_path, 'tiny/llama');
    const { tensors } = readSafetensors(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual([...tensors.keys()], ['prompt_embeddings']);
    assert.ok(maxAbsDiff(tensors.get('prompt_embeddings')!, manual) < 1e-6);

    h.setEnabled(false);
    const loaded = loadPrefixTuningAdapter(model, dir, { seed: 9 });
    assert.equal(loaded.projected, false);
    assert.equal(loaded.adapterConfig().prefix_projection, true);
    const peft2 = new PeftModel({ model, source: 'tiny' });
    peft2.addAdapter(loaded);
    assert.ok(maxAbsDiff(logitsOf(peft2, ids), trained) < 1e-5);
  });
});

describe('prefix tuning: HF format', () => {
  it('save → load round trip is bit-identical; a prefix for another model is refused', () => {
    const model = tinyModel(GPT2);
    const h = injectPrefixTuning(model, { num_virtual_tokens: 4 }, { seed: 6 });
    const dir = join(tmp.dir, 'prefix');
    savePromptLearningAdapter(dir, h, null);
    const loaded = prefixTuningMethod.loadAdapter(tinyModel(GPT2), dir, { seed: 1, logger: undefined as never });
    assert.deepEqual(Array.from(loaded.stateDict().get('prompt_embeddings')!.dataSync()), Array.from(h.stateDict().get('prompt_embeddings')!.dataSync()));
    assert.throws(() => loadPrefixTuningAdapter(tinyModel(LLAMA_GQA), dir), (e: unknown) => e instanceof UserError && /needs \[4, 32\]/.test(e.message));
    const json = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    writeFileSync(join(dir, 'adapter_config.json'), JSON.stringify({ ...json, peft_type: 'PROMPT_TUNING' }));
    assert.throws(() => loadPrefixTuningAdapter(tinyModel(GPT2), dir), (e: unknown) => e instanceof UserError && e.details.pointer === '/peft_type');
  });
});
