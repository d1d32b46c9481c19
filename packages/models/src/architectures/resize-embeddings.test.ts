/**
 * A tokenizer larger than the model's vocabulary: said at load time with both sizes, a clear error
 * (not tfjs's GatherV2 message) in a forward pass, and `resizeTokenEmbeddings` as transformers'
 * `resize_token_embeddings`.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { createModel, loadPretrained, loadTokenizer, manualSeed, resizeTokenEmbeddings, savePretrained } from '../index.js';
import { hfFixture, scratch } from '../testing/index.js';

const TINY = hfFixture('ckpt-gpt2-tiny-vocab'); // GPT-2 tokenizer with 21 ids
const tmp = scratch('peftkit-resize-');
before(async () => {
  await initBackend('wasm');
  manualSeed(7);
});
after(() => tmp.cleanup());

const ids = (rows: number[][]) => tf.tensor2d(rows, undefined, 'int32');

test('a tokenizer with more ids than embedding rows: a warning at load time naming both sizes, a clear error in a forward pass', async () => {
  const tokenizer = loadTokenizer(TINY);
  assert.equal(tokenizer.vocabSize, 21);
  const model = createModel({ model_type: 'gpt2', vocab_size: 19, n_embd: 4, n_layer: 1, n_head: 2, n_positions: 16 }, 'causal-lm');
  const dir = join(tmp.dir, 'small-vocab');
  savePretrained({ model, tokenizer, source: 'test' }, dir);
  model.dispose();
  const logged: string[] = [];
  const loaded = await loadPretrained(dir, { log: (m) => logged.push(m) });
  assert.equal(loaded.report.warnings.length, 1);
  const w = loaded.report.warnings[0];
  assert.match(w, /the tokenizer has 21 tokens but the model's embedding has 19 rows \(config.json \/vocab_size\); ids 19 to 20 \(19 ".*", 20 ".*"\) have no embedding/);
  assert.ok(w.startsWith(dir) && logged.some((m) => m.includes(w)), 'logged and naming the folder');
  assert.throws(() => loaded.model.forward({ inputIds: ids([[1, 20]]) }), (e: Error) => e instanceof UserError && /token id 20 is outside the model's vocabulary: its embedding has 19 rows \(ids 0 to 18\)/.test(e.message));
  // The same ids within the vocabulary run.
  tf.dispose(loaded.model.forward({ inputIds: ids([[1, 18]]) }).logits);
  loaded.model.dispose();
});

test('resizeTokenEmbeddings: old rows kept, new rows the mean of the old, tied head follows, untied head resized, config updated', () => {
  for (const tied of [true, false]) {
    const model = createModel({ model_type: 'llama', vocab_size: 10, hidden_size: 8, intermediate_size: 16, num_hidden_layers: 1, num_attention_heads: 2, tie_word_embeddings: tied }, 'causal-lm');
    const before = model.getInputEmbeddings().weight.arraySync() as number[][];
    const head = (model.getSubmodule('lm_head') as unknown as { weight: tf.Variable }).weight.arraySync() as number[][];
    const x = ids([[1, 9, 3]]);
    const oldLogits = model.forward({ inputIds: x }).logits;
    resizeTokenEmbeddings(model, 13);
    assert.equal(model.config.vocab_size, 13);
    assert.equal(model.dims().vocabSize, 13);
    const after = model.getInputEmbeddings().weight.arraySync() as number[][];
    assert.equal(after.length, 13);
    assert.deepEqual(after.slice(0, 10), before);
    const mean = before[0].map((_, j) => before.reduce((s, r) => s + r[j], 0) / before.length);
    for (const row of after.slice(10)) row.forEach((v, j) => assert.ok(Math.abs(v - mean[j]) < 1e-6, `new row = mean (${v} vs ${mean[j]})`));
    const newHead = (model.getSubmodule('lm_head') as unknown as { weight: tf.Variable }).weight;
    if (tied) assert.equal(newHead, model.getInputEmbeddings().weight, 'tied head shares the new table');
    else {
      const h = newHead.arraySync() as number[][];
      assert.deepEqual(h.slice(0, 10), head);
      assert.equal(h.length, 13);
    }
    // Old ids: the first 10 logits are unchanged; id 12 now has a row.
    const newLogits = model.forward({ inputIds: x }).logits;
    assert.deepEqual(newLogits.shape, [1, 3, 13]);
    assert.ok(tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(newLogits, [0, 0, 0], [1, 3, 10]), oldLogits))).dataSync()[0]) < 1e-6);
    tf.dispose([x, oldLogits, newLogits, model.forward({ inputIds: ids([[12]]) }).logits]);
    assert.equal(model.namedParameters().filter(([k]) => /embed_tokens|lm_head/.test(k)).length, tied ? 1 : 2);
    model.dispose();
  }
  assert.throws(() => resizeTokenEmbeddings(createModel({ model_type: 'gpt2', vocab_size: 5, n_embd: 4, n_layer: 1, n_head: 2 }), 0), UserError);
});
