import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDataset, IGNORE_INDEX } from '@peftkit/data';
import { loadTokenizer } from '@peftkit/models';
import { prepareSpamData } from '../prepare-data/prepare.js';
import { trainTokenizer } from './train.js';

test('quick spam data -> trained tokenizer -> loaded by @peftkit/models -> tokenized datasets', async () => {
  const out = mkdtempSync(join(tmpdir(), 'peftkit-e2e-'));
  prepareSpamData({ out, quick: true });
  await trainTokenizer({ input: [join(out, 'corpus', 'train.jsonl')], out: join(out, 'tokenizer'), vocabSize: 512 });
  const tokenizer = loadTokenizer(join(out, 'tokenizer'));
  assert.equal(tokenizer.vocabSize, 512);
  assert.equal(tokenizer.eosTokenId, 511);
  assert.equal(tokenizer.padTokenId, 511);

  // Classification as a causal LM: the prompt masked, " ham"/" spam" + EOS the only targets.
  const cls = buildDataset({
    tokenizer, seed: 42, baseDir: out, shape: 'classification', maxLength: 128, labelWords: true, textTemplate: '{text}\nLabel:',
    files: { train: 'spam/train.jsonl', validation: 'spam/validation.jsonl', test: 'spam/test.jsonl' },
  });
  assert.deepEqual(cls.labelNames, ['ham', 'spam']);
  assert.deepEqual(cls.summary.splits.test!.labelCounts, { ham: 12, spam: 6 });
  for (const ex of cls.splits.train!.examples) {
    const targets = Array.from(ex.labels.subarray(ex.promptLength));
    assert.deepEqual(targets, [...cls.labelWordIds![ex.label!], 511]);
    assert.ok(Array.from(ex.labels.subarray(0, ex.promptLength)).every((l) => l === IGNORE_INDEX));
    assert.ok(tokenizer.decode(Array.from(ex.inputIds.subarray(0, ex.promptLength))).endsWith('\nLabel:'));
    assert.ok(ex.inputIds.length <= 128);
  }
  assert.ok(cls.summary.splits.train!.truncated > 0);

  // The corpus packed into blocks for pretraining.
  const lm = buildDataset({ tokenizer, seed: 42, baseDir: out, shape: 'text', maxLength: 64, packing: true, files: { train: 'corpus/train.jsonl', validation: 'corpus/validation.jsonl' } });
  const s = lm.summary.splits.train!;
  const texts = lm.splits.train!.table.array('text') as string[];
  const total = texts.reduce((n, t) => n + tokenizer.encode(t).length + 1, 0); // + EOS per document
  assert.equal(s.examples, Math.floor(total / 64));
  assert.equal(s.packingRemainder, total % 64);
  const [b0, b1] = [...lm.batches('train', { batchSize: 4, shuffle: false })];
  assert.deepEqual(b0.shape, [4, 64]);
  assert.ok(b0.attentionMask.every((m) => m === 1));
  // Blocks in order are the documents joined by <|endoftext|>.
  const joined = texts.map((t) => t + '<|endoftext|>').join('');
  const decoded = tokenizer.decode([...b0.inputIds, ...b1.inputIds]);
  assert.equal(decoded, joined.slice(0, decoded.length));
});
