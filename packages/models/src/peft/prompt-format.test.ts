import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { loadPretrained } from '../io/checkpoint.js';
import { hfFixture } from '../testing/index.js';
import { applyPromptFormat, readPromptFormat, writePromptFormat, type PromptFormat } from './prompt-format.js';
import { classifyByLabelWords } from './serve.js';

const spam: PromptFormat = { shape: 'classification', text_template: 'Mail: {text}\nThis mail is', labels: ['ham', 'spam'], label_words: [' ham', ' spam'] };

test('the prompt format wraps text as training did, and round-trips through prompt_format.json', () => {
  assert.equal(applyPromptFormat(spam, 'Win {now}'), 'Mail: Win {now}\nThis mail is');
  assert.equal(applyPromptFormat({ shape: 'instruction', instruction_template: '### Instruction:\n{instruction}\n\n### Response:\n' }, 'Say hi'), '### Instruction:\nSay hi\n\n### Response:\n');
  assert.equal(applyPromptFormat({ shape: 'text' }, 'as is'), 'as is');
  assert.equal(applyPromptFormat(undefined, 'as is'), 'as is');
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-format-'));
  try {
    assert.equal(readPromptFormat(dir), undefined);
    writePromptFormat(dir, spam);
    assert.deepEqual(readPromptFormat(dir), spam);
    writeFileSync(join(dir, 'prompt_format.json'), '{"shape": "poem"}');
    assert.throws(() => readPromptFormat(dir), (e: Error) => e instanceof UserError && e.details.pointer === '/shape');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('label-word classification picks the label whose word is likelier after the wrapped text', async () => {
  const loaded = await loadPretrained(hfFixture('ckpt-gpt2-tiny-vocab'), { task: 'causal-lm' });
  const tok = loaded.tokenizer!;
  const texts = ['Hello world', 'the cat sat'];
  const words = spam.label_words!.map((w) => tok.encode(w, { addSpecialTokens: false }));
  assert.ok(words.some((w) => w.length > 1), 'a tiny vocabulary: multi-token words are scored token by token');
  const got = await classifyByLabelWords(loaded, texts, spam);
  for (const [i, text] of texts.entries()) {
    // Independent route: one unpadded forward pass per label, summing log p of the word's tokens.
    const prompt = tok.encode(applyPromptFormat(spam, text));
    const score = words.map((w) =>
      tf.tidy(() => {
        const ids = [...prompt, ...w];
        const logp = tf.logSoftmax(loaded.model.forward({ inputIds: tf.tensor2d([ids], undefined, 'int32') }).logits as tf.Tensor3D, -1).arraySync() as number[][][];
        return w.reduce((s, id, j) => s + logp[0][prompt.length - 1 + j][id], 0);
      }),
    );
    const pSpam = 1 / (1 + Math.exp(score[0] - score[1]));
    assert.ok(Math.abs(got[i].probabilities.spam - pSpam) < 1e-5, `${got[i].probabilities.spam} vs ${pSpam}`);
    assert.equal(got[i].label, pSpam > 0.5 ? 'spam' : 'ham');
    assert.equal(got[i].text, text);
  }
  await assert.rejects(classifyByLabelWords(loaded, texts, { shape: 'classification' }), /no label_words/);
  loaded.model.dispose();
});
