import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '@peftkit/core';
import { loadTokenizer, hasTokenizer } from './load.js';
import { hfFixture, scratch } from '../testing/index.js';

const tmp = scratch('peftkit-tok-');
after(() => tmp.cleanup());

const SAMPLE = [
  'Hello world',
  "The quick brown fox, isn't it? 12345 tokens… naïve café — ünïcödé ሰላም",
  '  leading spaces and\ttabs\nnew lines  ',
];

test('real GPT-2 tokenizer.json (merges as strings): known ids, special tokens, round trip', () => {
  const tok = loadTokenizer(hfFixture('ckpt-gpt2-fake-nembd2'));
  assert.deepEqual(tok.encode('Hello world'), [15496, 995]);
  assert.deepEqual(tok.encode(' Hello'), [18435]);
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosTokenId, 50256);
  assert.equal(tok.bosTokenId, 50256);
  assert.equal(tok.padTokenId, undefined); // GPT-2 has no pad token
  assert.deepEqual(tok.encode('a<|endoftext|>b'), [64, 50256, 65]);
  assert.equal(tok.decode([64, 50256, 65], { skipSpecialTokens: true }), 'ab');
  for (const s of SAMPLE) assert.equal(tok.decode(tok.encode(s)), s);
  assert.equal(tok.decode([]), '');
  assert.throws(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }]), /no chat template/);
});

test('tokenizer.json with merges as pairs (gpt2-lora-tigrinya) encodes like the string form; pad = eos', () => {
  const pairs = loadTokenizer(hfFixture('gpt2-lora-tigrinya'));
  const strings = loadTokenizer(hfFixture('ckpt-gpt2-fake-nembd2'));
  for (const s of SAMPLE) {
    assert.deepEqual(pairs.encode(s), strings.encode(s));
    assert.equal(pairs.decode(pairs.encode(s)), s);
  }
  assert.equal(pairs.padTokenId, 50256);
});

test('vocab.json + merges.txt only (ckpt-gpt2-tiny-vocab): slow GPT-2 files through the same library', () => {
  const tok = loadTokenizer(hfFixture('ckpt-gpt2-tiny-vocab'));
  assert.equal(tok.vocabSize, 21);
  // merges: "Ġ l", "Ġl o", "Ġlo w", "e r"; vocab: l 0, o 1, w 2, e 3, s 5, t 6, Ġlow 14, er 15.
  assert.deepEqual(tok.encode(' lower'), [14, 15]);
  assert.deepEqual(tok.encode('lowest'), [0, 1, 2, 3, 5, 6]);
  assert.deepEqual(tok.encode('Hi'), [19, 7]); // "H" is not in the vocab: <unk>
  assert.equal(tok.eosTokenId, 20);
  assert.equal(tok.padTokenId, undefined);
  assert.equal(tok.decode(tok.encode(' lowest newer wider')), ' lowest newer wider');
});

test('vocab.json + merges.txt of the real GPT-2 encode exactly as its tokenizer.json', () => {
  const src = hfFixture('ckpt-gpt2-fake-nembd2');
  const dir = join(tmp.dir, 'gpt2-slow');
  mkdirSync(dir);
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(src, f), join(dir, f));
  const slow = loadTokenizer(dir);
  const fast = loadTokenizer(src);
  assert.equal(slow.vocabSize, fast.vocabSize);
  for (const s of [...SAMPLE, 'a<|endoftext|>b']) assert.deepEqual(slow.encode(s), fast.encode(s));
});

test('Llama-style tokenizer (smollm-lora-instruct): chat template, pad = eos, added tokens', () => {
  const tok = loadTokenizer(hfFixture('smollm-lora-instruct'));
  assert.equal(tok.vocabSize, 49152);
  assert.equal(tok.bosTokenId, 1);
  assert.equal(tok.eosTokenId, 2);
  assert.equal(tok.padTokenId, tok.eosTokenId);
  const chat = tok.applyChatTemplate([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi!' }], { addGenerationPrompt: true });
  assert.equal(chat, '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n');
  const ids = tok.encode(chat);
  assert.equal(ids[0], 1);
  assert.equal(ids.filter((i) => i === 2).length, 2);
  assert.equal(tok.decode(ids), chat);
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'system\nBe brief.\nuser\nHi!\nassistant\n');
  // Digits pre-tokenizer: one token per digit.
  assert.equal(tok.encode('2024').length, 4);
});

test('WordPiece (distilbert): [CLS] ... [SEP] added, lower-cased, ## pieces', () => {
  const tok = loadTokenizer(hfFixture('distilbert-lora-emotion-seqcls'));
  const ids = tok.encode('Hello world');
  assert.deepEqual(ids, [101, 7592, 2088, 102]);
  assert.deepEqual(tok.encode('Hello world', { addSpecialTokens: false }), [7592, 2088]);
  assert.equal(tok.padTokenId, 0);
  assert.equal(tok.decode(ids), '[CLS] hello world [SEP]');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'hello world');
  const t = tok.encode('tokenization', { addSpecialTokens: false });
  assert.ok(t.length > 1, 'split into word pieces');
  assert.equal(tok.decode(t), 'tokenization');
});

test('vocab.txt only builds the same WordPiece tokenizer', () => {
  const src = hfFixture('distilbert-lora-emotion-seqcls');
  const vocab = (JSON.parse(readFileSync(join(src, 'tokenizer.json'), 'utf8')).model.vocab) as Record<string, number>;
  const lines = Object.entries(vocab).sort((a, b) => a[1] - b[1]).map(([t]) => t);
  const dir = join(tmp.dir, 'bert-slow');
  mkdirSync(dir);
  writeFileSync(join(dir, 'vocab.txt'), lines.join('\n') + '\n');
  copyFileSync(join(src, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const slow = loadTokenizer(dir);
  const fast = loadTokenizer(src);
  assert.equal(slow.vocabSize, 30522);
  for (const s of [...SAMPLE, 'I feel SO happy today!!', '[CLS] mixed [SEP] text']) assert.deepEqual(slow.encode(s), fast.encode(s));
  assert.equal(slow.padTokenId, 0);
});

test('save writes the source files back unchanged, and they load again', () => {
  const src = hfFixture('smollm-lora-instruct');
  const tok = loadTokenizer(src);
  const out = join(tmp.dir, 'saved-smollm');
  const written = tok.save(out).sort();
  assert.deepEqual(written, ['special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
  for (const f of written) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(src, f))), f);
  assert.deepEqual(loadTokenizer(out).encode('Hi there'), tok.encode('Hi there'));
  assert.deepEqual(readdirSync(out).filter((f) => f.endsWith('.tmp')), []);
});

test('no tokenizer, bad JSON, LFS pointer: clear errors naming the folder or file', () => {
  const empty = join(tmp.dir, 'empty');
  mkdirSync(empty);
  assert.equal(hasTokenizer(empty), false);
  assert.throws(() => loadTokenizer(empty), (e: unknown) => e instanceof UserError && /no tokenizer found: expected tokenizer\.json/.test(e.message) && e.message.includes(empty));
  const bad = join(tmp.dir, 'bad');
  mkdirSync(bad);
  writeFileSync(join(bad, 'tokenizer.json'), '{"model": ');
  assert.throws(() => loadTokenizer(bad), (e: unknown) => e instanceof UserError && e.message.includes(join(bad, 'tokenizer.json')) && /not valid JSON/.test(e.message));
  const lfs = join(tmp.dir, 'lfs');
  mkdirSync(lfs);
  writeFileSync(join(lfs, 'tokenizer.json'), 'version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 2\n');
  assert.throws(() => loadTokenizer(lfs), /Git LFS pointer.*git lfs pull/);
});
