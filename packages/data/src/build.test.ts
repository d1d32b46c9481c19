import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '@peftkit/core';
import { buildDataset, formatSummary } from './build.js';
import { CharTokenizer } from './testing/char-tokenizer.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-build-'));
const jsonl = (name: string, rows: unknown[]) => writeFileSync(join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
const tok = new CharTokenizer({ pad: true });

// 30 ham, 10 spam
const mails = Array.from({ length: 40 }, (_, i) => ({ text: `mail ${i}`, label: i % 4 === 0 ? 'spam' : 'ham' }));
jsonl('mails.jsonl', mails);

test('one file split by fractions, stratified and seeded; label list derived; summary counts', () => {
  const build = (seed: number) => buildDataset({ tokenizer: tok, seed, baseDir: dir, path: 'mails.jsonl', split: { train: 0.5, validation: 0.25, test: 0.25 }, shape: 'classification', maxLength: 32 });
  const d = build(42);
  assert.deepEqual(d.labelNames, ['ham', 'spam']);
  assert.deepEqual(d.summary.splits.train!.labelCounts, { ham: 15, spam: 5 });
  // ham 30 -> 15, 7.5, 7.5 and spam 10 -> 5, 2.5, 2.5: the tied remainder goes to the earlier split (validation)
  assert.deepEqual(d.summary.splits.validation!.labelCounts, { ham: 8, spam: 3 });
  assert.deepEqual(d.summary.splits.test!.labelCounts, { ham: 7, spam: 2 });
  const texts = (s: 'train' | 'validation' | 'test') => d.splits[s]!.table.array('text') as string[];
  const all = [...texts('train'), ...texts('validation'), ...texts('test')];
  assert.equal(new Set(all).size, 40);
  assert.deepEqual(texts('test'), build(42).splits.test!.table.array('text'));
  assert.notDeepEqual(texts('test'), build(1).splits.test!.table.array('text'));
  // Examples point back at their rows.
  const ex = d.splits.train!.examples[3];
  assert.equal(tok.decode(Array.from(ex.inputIds)), texts('train')[ex.row]);
  assert.equal(d.padTokenId, 4);
  const lines = formatSummary(d.summary);
  assert.match(lines[0], /^train: 20 rows -> 20 examples, \d+ tokens .*labels ham=15 spam=5$/);
});

test('files per split, limit (seeded stratified subset), batches with class labels', () => {
  jsonl('train.jsonl', mails);
  jsonl('val.jsonl', mails.slice(0, 8));
  const d = buildDataset({ tokenizer: tok, seed: 3, baseDir: dir, files: { train: 'train.jsonl', validation: 'val.jsonl' }, shape: 'classification', labels: ['spam', 'ham'], maxLength: 32, limit: { train: 8 } });
  assert.deepEqual(Object.keys(d.splits), ['train', 'validation']);
  assert.deepEqual(d.summary.splits.train!.labelCounts, { spam: 2, ham: 6 });
  assert.equal(d.summary.splits.validation!.rows, 8);
  const batches = [...d.batches('validation', { batchSize: 3 })];
  assert.deepEqual(batches.map((b) => b.shape[0]), [3, 3, 2]);
  // labels given as [spam, ham]: spam is class 0
  assert.deepEqual([...batches[0].classLabels!], [0, 1, 1]);
  assert.throws(() => d.batches('test', { batchSize: 2 }), /no "test" split/);
});

test('text shape with packing through buildDataset; pad falls back to EOS', () => {
  jsonl('docs.jsonl', [{ body: 'abc' }, { body: 'de' }, { body: 'fghij' }]);
  const d = buildDataset({ tokenizer: new CharTokenizer(), seed: 0, baseDir: dir, files: { train: 'docs.jsonl' }, shape: 'text', columns: { text: 'body' }, maxLength: 4, packing: true });
  assert.equal(d.summary.splits.train!.examples, 3);
  assert.equal(d.padTokenId, 0);
  const [b] = [...d.batches('train', { batchSize: 3 })];
  assert.deepEqual(b.shape, [3, 4]);
});

test('errors name the file, the row and the setting', () => {
  jsonl('noout.jsonl', [{ instruction: 'a', output: 'b' }, { instruction: 'c' }]);
  const check = (f: () => unknown, msg: RegExp, pointer: string) => assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof UserError, String(e));
    assert.match(e.message, msg);
    assert.equal(e.details.pointer, pointer);
    return true;
  });
  const base = { tokenizer: tok, seed: 0, baseDir: dir, maxLength: 64 };
  check(() => buildDataset({ ...base, files: { train: 'noout.jsonl' }, shape: 'instruction' }), /noout\.jsonl: line 2: field "output" must be a string, got nothing/, '/columns/output');
  check(() => buildDataset({ ...base, files: { train: 'mails.jsonl' }, shape: 'instruction' }), /no column "instruction"/, '/columns/instruction');
  check(() => buildDataset({ ...base, files: { train: 'mails.jsonl' }, shape: 'classification', labels: ['ham', 'eggs'] }), /mails\.jsonl: line 1: label "spam" is not one of the labels \[ham, eggs\]/, '/labels');
  check(() => buildDataset({ ...base, files: { train: 'missing.jsonl' }, shape: 'text' }), /missing\.jsonl: no such file/, '/files/train');
  check(() => buildDataset({ ...base, path: 'mails.jsonl', split: { train: 0.5 }, shape: 'text' }), /sum to 1/, '/split');
  check(() => buildDataset({ ...base, shape: 'text' }), /no data/, '/files');
  check(() => buildDataset({ ...base, files: { train: 'mails.jsonl' }, shape: 'classification', labelWords: ['a'] }), /1 words for 2 labels/, '/label_words');
});

test('chat rows from CSV (messages as a JSON string, ShareGPT from/value) mask all but the assistant turns', () => {
  const conv = JSON.stringify([{ from: 'human', value: 'hi' }, { from: 'gpt', value: 'yo' }]).replace(/"/g, '""');
  writeFileSync(join(dir, 'chat.csv'), `messages\n"${conv}"\n`);
  const d = buildDataset({ tokenizer: tok, seed: 0, baseDir: dir, files: { train: 'chat.csv' }, shape: 'chat', maxLength: 64 });
  const ex = d.splits.train!.examples[0];
  assert.equal(tok.decode(Array.from(ex.inputIds)), '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nyo<|im_end|>\n');
  const targets = Array.from(ex.labels).filter((l) => l !== -100);
  assert.equal(tok.decode(targets), 'yo<|im_end|>\n');
  writeFileSync(join(dir, 'nochat.csv'), 'messages\n"[{""role"":""user"",""content"":""hi""}]"\n');
  assert.throws(() => buildDataset({ tokenizer: tok, seed: 0, baseDir: dir, files: { train: 'nochat.csv' }, shape: 'chat', maxLength: 64 }), /nochat\.csv: line 2: field "messages" has no assistant message/);
});
