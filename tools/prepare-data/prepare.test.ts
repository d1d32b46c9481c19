import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareSpamData, type RawMail } from './prepare.js';

const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

test('quick mode on the real corpus: stratified 70/10/20 label counts, corpus without test mails, idempotent', () => {
  const out = mkdtempSync(join(tmpdir(), 'peftkit-prepare-'));
  const r = prepareSpamData({ out, quick: true });
  assert.equal(r.skipped, false);
  // 60 ham -> 42 / 6 / 12, 30 spam -> 21 / 3 / 6
  const count = (f: string) => {
    const rows = read(out, f);
    return { ham: rows.filter((x) => x.label === 'ham').length, spam: rows.filter((x) => x.label === 'spam').length };
  };
  assert.deepEqual(count('spam/train.jsonl'), { ham: 42, spam: 21 });
  assert.deepEqual(count('spam/validation.jsonl'), { ham: 6, spam: 3 });
  assert.deepEqual(count('spam/test.jsonl'), { ham: 12, spam: 6 });
  const train = read(out, 'spam/train.jsonl');
  const test = read(out, 'spam/test.jsonl');
  for (const row of train) {
    assert.match(row.id, /^(easy-ham-[12]|hard-ham-1|spam-[12])\/\d{5}$/);
    assert.equal(row.label, row.id.startsWith('spam') ? 'spam' : 'ham');
    assert.ok(!/^(Received|Return-Path|Message-ID):/m.test(row.text), `headers left in ${row.id}`);
    assert.ok(row.text.length <= 2000 + 200 + 11);
  }
  const corpus = read(out, 'corpus/train.jsonl').map((x) => x.text);
  assert.deepEqual(corpus, train.map((x) => x.text));
  const testTexts = new Set(test.map((x) => x.text));
  const ids = new Set([...train, ...read(out, 'spam/validation.jsonl')].map((x) => x.id));
  assert.ok(test.every((x) => !ids.has(x.id)));
  assert.ok([...corpus, ...read(out, 'corpus/validation.jsonl').map((x) => x.text)].every((t) => !testTexts.has(t)));

  // Unchanged inputs: skipped. A damaged output: rebuilt, identically.
  const before = readFileSync(join(out, 'spam/test.jsonl'), 'utf8');
  assert.equal(prepareSpamData({ out, quick: true }).skipped, true);
  writeFileSync(join(out, 'spam/test.jsonl'), 'damaged');
  assert.equal(prepareSpamData({ out, quick: true }).skipped, false);
  assert.equal(readFileSync(join(out, 'spam/test.jsonl'), 'utf8'), before);
});

test('duplicates (by checksum, then by cleaned text) and empty bodies are dropped', () => {
  const mail = (id: string, group: string, sum: string, body: string): RawMail => ({ id, group, checksum: { type: 'MD5', value: sum }, text: `Subject: s\nFrom: x\n\n${body}` });
  const mails = [
    mail('00001', 'easy-ham-1', 'a', 'hello there'),
    mail('00002', 'easy-ham-1', 'a', 'same checksum'),
    mail('00003', 'easy-ham-2', 'b', 'hello   there'), // same text once normalised
    mail('00004', 'spam-1', 'c', '   '),
    mail('00005', 'spam-1', 'd', 'buy now'),
  ];
  const out = mkdtempSync(join(tmpdir(), 'peftkit-prepare-'));
  const r = prepareSpamData({ out, mails });
  assert.deepEqual(r.dropped, { duplicateChecksum: 1, duplicateText: 1, empty: 1 });
  const all = ['train', 'validation', 'test'].flatMap((s) => read(out, `spam/${s}.jsonl`));
  assert.deepEqual(all.map((x) => x.text).sort(), ['Subject: s\n\nbuy now', 'Subject: s\n\nhello there']);
});
