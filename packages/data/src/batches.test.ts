import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBatchIterator } from './batches.js';
import type { Batch, TokenizedExample } from './types.js';

/** Example i: tokens 10i+1 .. 10i+len, len = 1 + i % 4; the first token masked. */
function examples(n: number): TokenizedExample[] {
  return Array.from({ length: n }, (_, i) => {
    const ids = Array.from({ length: 1 + (i % 4) }, (_, k) => 10 * i + k + 1);
    return { inputIds: Int32Array.from(ids), labels: Int32Array.from(ids, (t, k) => (k === 0 ? -100 : t)), promptLength: 1, label: i % 2, row: i };
  });
}
const flat = (b: Batch) => JSON.stringify({ ...b, inputIds: [...b.inputIds], attentionMask: [...b.attentionMask], labels: [...b.labels], indices: [...b.indices], classLabels: [...(b.classLabels ?? [])], promptLengths: [...b.promptLengths] });

test('right padding with the pad id, attention mask and -100 labels on padding', () => {
  const ex = examples(3);
  const [b] = [...createBatchIterator(ex, 99, 8, { batchSize: 3 })];
  assert.deepEqual(b.shape, [3, 3]);
  assert.deepEqual([...b.inputIds], [1, 99, 99, 11, 12, 99, 21, 22, 23]);
  assert.deepEqual([...b.attentionMask], [1, 0, 0, 1, 1, 0, 1, 1, 1]);
  assert.deepEqual([...b.labels], [-100, -100, -100, -100, 12, -100, -100, 22, 23]);
  assert.deepEqual([...b.classLabels!], [0, 1, 0]);
  assert.deepEqual([...b.indices], [0, 1, 2]);
  const [m] = [...createBatchIterator(ex, 99, 5, { batchSize: 3, padTo: 'max_length' })];
  assert.deepEqual(m.shape, [3, 5]);
});

test('shuffled epochs: each a seeded permutation, different per epoch, fixed batch size (last partial dropped)', () => {
  const ex = examples(10);
  const run = (seed: number) => [...createBatchIterator(ex, 0, 8, { batchSize: 3, shuffle: true, seed, epochs: 2 })];
  const a = run(5);
  assert.equal(a.length, 6); // floor(10 / 3) per epoch
  assert.ok(a.every((b) => b.shape[0] === 3));
  const epoch0 = a.slice(0, 3).flatMap((b) => [...b.indices]);
  const epoch1 = a.slice(3).flatMap((b) => [...b.indices]);
  assert.equal(new Set(epoch0).size, 9);
  assert.notDeepEqual(epoch0, epoch1);
  assert.deepEqual(a.map(flat), run(5).map(flat));
  assert.notDeepEqual(a.map((b) => [...b.indices]), run(6).map((b) => [...b.indices]));
  assert.deepEqual(a.map((b) => [b.epoch, b.batch]), [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
});

test('unshuffled: file order, last batch partial', () => {
  const bs = [...createBatchIterator(examples(5), 0, 8, { batchSize: 2 })];
  assert.deepEqual(bs.map((b) => [...b.indices]), [[0, 1], [2, 3], [4]]);
});

test('resume: the position after k batches gives exactly the remaining batches of the full run', () => {
  const ex = examples(11);
  const o = { batchSize: 2, shuffle: true, seed: 123, epochs: 3 };
  const full = [...createBatchIterator(ex, 0, 8, o)].map(flat);
  assert.equal(full.length, 15);
  for (const k of [0, 1, 4, 5, 9, 14, 15]) {
    const it = createBatchIterator(ex, 0, 8, o);
    for (let i = 0; i < k; i++) it.next();
    const saved = JSON.parse(JSON.stringify(it.position));
    const rest = [...createBatchIterator(ex, 0, 8, { ...o, seed: 999, position: saved })].map(flat);
    assert.deepEqual(rest, full.slice(k), `resume after ${k} batches`);
  }
  const it = createBatchIterator(ex, 0, 8, o);
  for (let i = 0; i < 5; i++) it.next();
  assert.deepEqual(it.position, { epoch: 1, batch: 0, seed: 123, batchSize: 2, examples: 11 });
  assert.throws(() => createBatchIterator(ex, 0, 8, { ...o, batchSize: 3, position: it.position }), /batch size 2 over 11 examples, now 3 over 11/);
});

test('epochs: Infinity cycles', () => {
  const it = createBatchIterator(examples(4), 0, 8, { batchSize: 4, shuffle: true, seed: 1, epochs: Infinity });
  const seen = Array.from({ length: 7 }, () => it.next().value!.epoch);
  assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6]);
});
