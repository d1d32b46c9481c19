import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { PeftModel, generate, loadTokenizer, type PreTrainedModel } from '@peftkit/models';
import { injectPromptTuning, promptTuningMethod } from '../index.js';
import { hfFixture, logitsOf, maxAbsDiff, sampleIds, scratch, tinyModel } from '@peftkit/models/testing';
import { GPT2, LLAMA_GQA } from '../testing/tiny-models.js';

const tmp = scratch();
before(async () => {
  await initBackend('wasm');
});
after(() => tmp.cleanup());

/** A PeftModel whose soft prompt is the token embeddings of `promptIds` [1, P]. */
function promptedWith(model: PreTrainedModel, promptIds: tf.Tensor2D) {
  const P = promptIds.shape[1];
  const h = injectPromptTuning(model, { num_virtual_tokens: P }, { seed: 1 });
  const rows = tf.tidy(() => model.getInputEmbeddings().forward(promptIds).reshape([P, -1]));
  h.loadStateDict(new Map([['prompt_embeddings', rows]]));
  rows.dispose();
  const peft = new PeftModel({ model, source: 'tiny' });
  peft.addAdapter(h);
  return { h, peft };
}

describe('prompt tuning: forward', () => {
  for (const [name, config] of [['gpt2', GPT2], ['llama (GQA)', LLAMA_GQA]] as const) {
    it(`${name}: a prompt of token embeddings gives the logits of the base model reading those tokens first`, () => {
      const model = tinyModel(config);
      const A = sampleIds(1, 3, 50, 11);
      const B = sampleIds(2, 5, 50, 12);
      const { peft } = promptedWith(model, A);
      const got = logitsOf(peft, B); // [2, 5, V]: the virtual positions are stripped
      assert.deepEqual(got.shape, [2, 5, 50]);
      const both = tf.concat([tf.tile(A, [2, 1]), B], 1) as tf.Tensor2D;
      const want = tf.slice(logitsOf(model, both), [0, 3, 0], [-1, 5, -1]);
      assert.ok(maxAbsDiff(got, want) < 1e-4, `diff ${maxAbsDiff(got, want)}`);
      assert.ok(maxAbsDiff(got, logitsOf(model, B)) > 1e-3, 'the prompt changes the outputs');
      // Disabled: the base model.
      peft.withAdaptersDisabled(() => assert.equal(maxAbsDiff(logitsOf(peft, B), logitsOf(model, B)), 0));
    });
  }

  it('the attention mask gets P ones in front; given position ids move behind the prompt', () => {
    const model = tinyModel(GPT2);
    const h = injectPromptTuning(model, { num_virtual_tokens: 4 }, { seed: 1 });
    const inputs = { inputIds: sampleIds(2, 3, 50), attentionMask: tf.tensor2d([[1, 1, 1], [0, 1, 1]], [2, 3], 'int32'), positionIds: tf.tensor2d([[0, 1, 2], [0, 0, 1]], [2, 3], 'int32') };
    const prepared = h.prepareInputs(inputs);
    assert.equal(prepared.inputIds, undefined);
    assert.deepEqual(prepared.inputsEmbeds!.shape, [2, 7, 16]);
    assert.deepEqual(prepared.attentionMask!.arraySync(), [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 1, 1]]);
    assert.deepEqual(prepared.positionIds!.arraySync(), [[0, 1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 4, 5]]);
    const out = h.postprocessOutput(model.forward(prepared), inputs);
    assert.deepEqual(out.logits.shape, [2, 3, 50]);
    assert.ok(prepared.inputsEmbeds!.isDisposed, 'what prepareInputs made is freed by postprocessOutput');
  });

  it('no tensors leak across forward passes', () => {
    const model = tinyModel(LLAMA_GQA);
    const { peft } = promptedWith(model, sampleIds(1, 2, 50));
    const ids = sampleIds(2, 4, 50);
    const mask = tf.ones([2, 4], 'int32') as tf.Tensor2D;
    const run = () => {
      const out = peft.forward({ inputIds: ids, attentionMask: mask });
      tf.dispose([out.logits, out.lastHiddenState!, ...(out.leadingLogits ? [out.leadingLogits] : [])]);
    };
    run();
    const n = tf.memory().numTensors;
    run();
    run();
    assert.equal(tf.memory().numTensors, n);
  });

  it('gradients reach the soft prompt (no gather gradient needed on wasm)', () => {
    const model = tinyModel(GPT2);
    const { h, peft } = promptedWith(model, sampleIds(1, 2, 50));
    const ids = sampleIds(2, 4, 50);
    const [[, v]] = h.trainableParameters();
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(tf.square(peft.forward({ inputIds: ids }).logits)) as tf.Scalar), [v]);
    assert.deepEqual(grads[v.name].shape, [2, 16]);
    assert.ok(tf.tidy(() => tf.max(tf.abs(grads[v.name])).dataSync()[0]) > 0);
    assert.ok(model.namedParameters().every(([, p]) => !p.trainable));
    tf.dispose(grads);
  });

  it('generation: greedy tokens equal the base model continuing the prompt tokens', () => {
    const model = tinyModel(GPT2);
    const A = sampleIds(1, 3, 50, 21);
    const { peft } = promptedWith(model, A);
    const prompt = [[5, 6, 7], [8, 9, 10]];
    const got = generate(peft, prompt, { maxNewTokens: 5, eosTokenId: null });
    const a = Array.from(A.dataSync());
    const want = generate(model, prompt.map((p) => [...a, ...p]), { maxNewTokens: 5, eosTokenId: null });
    assert.deepEqual(got.generated, want.generated);
    assert.deepEqual(got.sequences, prompt.map((p, i) => [...p, ...want.generated[i]]));
  });
});

describe('prompt tuning: initialisation', () => {
  it('RANDOM is N(0, 1) and seeded', () => {
    const model = tinyModel(GPT2);
    const a = injectPromptTuning(model, { num_virtual_tokens: 20 }, { seed: 3 });
    const b = injectPromptTuning(model, { num_virtual_tokens: 20 }, { seed: 3 });
    assert.equal(maxAbsDiff(a.promptEmbeddings, b.promptEmbeddings), 0);
    const { mean, variance } = tf.moments(a.promptEmbeddings);
    assert.ok(Math.abs(mean.dataSync()[0]) < 0.2 && Math.abs(Math.sqrt(variance.dataSync()[0]) - 1) < 0.15);
  });

  it('SAMPLE_VOCAB takes rows of the token embedding table', () => {
    const model = tinyModel(GPT2);
    const h = injectPromptTuning(model, { num_virtual_tokens: 6, prompt_tuning_init: 'SAMPLE_VOCAB' }, { seed: 3 });
    const table = model.getInputEmbeddings().weight.arraySync() as number[][];
    for (const row of h.promptEmbeddings.arraySync() as number[][]) assert.ok(table.some((r) => r.every((x, i) => x === row[i])));
  });

  it('TEXT: the embeddings of the text\'s tokens, repeated to num_virtual_tokens (tokenizer from tokenizer_name_or_path)', () => {
    const tokDir = hfFixture('ckpt-gpt2-tiny-vocab');
    const model = tinyModel({ ...GPT2, vocab_size: 21 });
    const text = 'abc';
    const ids = loadTokenizer(tokDir).encode(text);
    assert.ok(ids.length > 0 && ids.length < 7);
    const h = injectPromptTuning(model, { num_virtual_tokens: 7, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: text, tokenizer_name_or_path: tokDir }, { seed: 1 });
    const want = Array.from({ length: 7 }, (_, i) => ids[i % ids.length]);
    const rows = tf.gather(model.getInputEmbeddings().weight, tf.tensor1d(want, 'int32'));
    assert.equal(maxAbsDiff(h.promptEmbeddings, rows), 0);
    // Without a tokenizer TEXT cannot start.
    assert.throws(() => injectPromptTuning(model, { prompt_tuning_init: 'TEXT', prompt_tuning_init_text: text }, {}), (e: unknown) => e instanceof UserError && e.details.pointer === '/tokenizer_name_or_path');
    assert.deepEqual(promptTuningMethod.validateConfig({ prompt_tuning_init: 'TEXT' }).map((i) => i.pointer), ['/prompt_tuning_init_text']);
  });

  it('TEXT uses the tokenizer handed over with a LoadedModel', () => {
    const tokDir = hfFixture('ckpt-gpt2-tiny-vocab');
    const model = tinyModel({ ...GPT2, vocab_size: 21 });
    const tokenizer = loadTokenizer(tokDir);
    const h = injectPromptTuning({ model, tokenizer, source: tokDir }, { num_virtual_tokens: 2, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'abcabc' }, {});
    const ids = tokenizer.encode('abcabc').slice(0, 2);
    assert.equal(maxAbsDiff(h.promptEmbeddings, tf.gather(model.getInputEmbeddings().weight, tf.tensor1d(ids, 'int32'))), 0);
  });

  it('TEXT uses the tokenizer the inject step passes in the method context', () => {
    const tokDir = hfFixture('ckpt-gpt2-tiny-vocab');
    const model = tinyModel({ ...GPT2, vocab_size: 21 });
    const tokenizer = loadTokenizer(tokDir);
    const h = promptTuningMethod.inject(model, { num_virtual_tokens: 3, prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'abcabc' }, { logger: undefined as never, seed: 1, tokenizer });
    const ids = tokenizer.encode('abcabc').slice(0, 3);
    assert.equal(maxAbsDiff(h.promptEmbeddings, tf.gather(model.getInputEmbeddings().weight, tf.tensor1d(ids, 'int32'))), 0);
  });
});
