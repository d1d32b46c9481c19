import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { hfFixture } from '@peftkit/models/testing';
import { byteAlphabet, EOT, trainTokenizer } from './train.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-tok-'));
const words = ['spam', 'free', 'money', 'meeting', 'tomorrow', 'the', 'quick', 'brown', 'fox', 'hello', 'world', 'café', 'naïve'];
let s = 1;
const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
const docs = Array.from({ length: 120 }, () => Array.from({ length: 12 }, () => words[Math.floor(rand() * words.length)]).join(rand() < 0.2 ? '\n' : ' '));
const input = join(dir, 'corpus.jsonl');
writeFileSync(input, docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');

test('the byte alphabet is GPT-2\'s: ids 0..255 of the real GPT-2 vocab.json', () => {
  const gpt2 = JSON.parse(readFileSync(join(hfFixture('ckpt-gpt2-fake-nembd2'), 'vocab.json'), 'utf8')) as Record<string, number>;
  const { order, byteToChar } = byteAlphabet();
  order.forEach((c, i) => assert.equal(gpt2[c], i, `byte char ${c}`));
  assert.equal(byteToChar[32], 'Ġ');
  assert.equal(byteToChar[10], 'Ċ');
});

test('trains a byte-level BPE that round-trips text, unseen bytes included, with <|endoftext|> as BOS/EOS/PAD', async () => {
  const out = join(dir, 'tok');
  const r = await trainTokenizer({ input: [input], out, vocabSize: 300 });
  assert.equal(r.skipped, false);
  assert.equal(r.vocabSize, 300);
  assert.equal(r.merges, 300 - 257);
  assert.equal(r.checked, 120);
  assert.ok(r.charsPerToken > 1.5, `charsPerToken ${r.charsPerToken}`);
  const json = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8'));
  assert.deepEqual([config.bos_token, config.eos_token, config.pad_token], [EOT, EOT, EOT]);
  assert.equal(json.model.vocab[EOT], 299);
  assert.equal(Object.keys(json.model.vocab).length, 300);
  const tok = new Tokenizer(json, config);
  for (const text of ['the quick brown fox', 'Ünïcödé € 日本語 \t tabs\n\nand newlines', `free money${EOT}`]) {
    const ids = tok.encode(text, { add_special_tokens: false }).ids;
    assert.equal(tok.decode(ids, { skip_special_tokens: false }), text);
  }
  // EOT is one token.
  assert.deepEqual(tok.encode(EOT, { add_special_tokens: false }).ids, [299]);
  // vocab.json + merges.txt agree with tokenizer.json
  assert.deepEqual(JSON.parse(readFileSync(join(out, 'vocab.json'), 'utf8')), json.model.vocab);
  assert.equal(readFileSync(join(out, 'merges.txt'), 'utf8').trim().split('\n').length, 1 + 43);
});

test('a vocab larger than the corpus supports: every merge taken, each word one token', async () => {
  const out = join(dir, 'big');
  const r = await trainTokenizer({ input: [input], out, vocabSize: 5000 });
  const json = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8'));
  assert.ok(r.vocabSize < 5000);
  assert.equal(Object.keys(json.model.vocab).length, r.vocabSize);
  assert.equal(json.model.vocab[EOT], r.vocabSize - 1);
  const tok = new Tokenizer(json, JSON.parse(readFileSync(join(out, 'tokenizer_config.json'), 'utf8')));
  for (const w of words) assert.equal(tok.encode(' ' + w, { add_special_tokens: false }).ids.length, 1, w);
});

test('deterministic and idempotent', async () => {
  const a = join(dir, 'a');
  const b = join(dir, 'b');
  await trainTokenizer({ input: [input], out: a, vocabSize: 280 });
  await trainTokenizer({ input: [input], out: b, vocabSize: 280 });
  assert.equal(readFileSync(join(a, 'tokenizer.json'), 'utf8'), readFileSync(join(b, 'tokenizer.json'), 'utf8'));
  assert.equal((await trainTokenizer({ input: [input], out: a, vocabSize: 280 })).skipped, true);
  assert.equal((await trainTokenizer({ input: [input], out: a, vocabSize: 281 })).skipped, false);
  await assert.rejects(trainTokenizer({ input: [input], out: a, vocabSize: 100 }), /from 257/);
});
