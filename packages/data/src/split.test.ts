import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allocate, sampleIndices, splitIndices } from './split.js';

test('allocate: counts sum to n and follow the weights (largest remainder)', () => {
  assert.deepEqual(allocate(10, [0.8, 0.1, 0.1]), [8, 1, 1]);
  assert.deepEqual(allocate(7, [0.5, 0.5]), [4, 3]);
  assert.deepEqual(allocate(3, [0.7, 0.1, 0.2]), [2, 0, 1]);
});

test('seeded split: deterministic for a seed, different for another, disjoint and covering', () => {
  const a = splitIndices(100, { train: 0.8, validation: 0.1, test: 0.1 }, 42);
  const b = splitIndices(100, { train: 0.8, validation: 0.1, test: 0.1 }, 42);
  const c = splitIndices(100, { train: 0.8, validation: 0.1, test: 0.1 }, 43);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a.test, c.test);
  assert.deepEqual([a.train.length, a.validation.length, a.test.length], [80, 10, 10]);
  const all = [...a.train, ...a.validation, ...a.test].sort((x, y) => x - y);
  assert.deepEqual(all, Array.from({ length: 100 }, (_, i) => i));
  for (const s of [a.train, a.validation, a.test]) assert.deepEqual(s, [...s].sort((x, y) => x - y));
});

test('stratified split keeps each label\'s share in every split', () => {
  const labels = Array.from({ length: 90 }, (_, i) => (i % 3 === 0 ? 'spam' : 'ham')); // 30 spam, 60 ham
  const s = splitIndices(90, { train: 0.7, validation: 0.1, test: 0.2 }, 7, labels);
  const count = (idx: number[], l: string) => idx.filter((i) => labels[i] === l).length;
  assert.deepEqual([count(s.train, 'spam'), count(s.validation, 'spam'), count(s.test, 'spam')], [21, 3, 6]);
  assert.deepEqual([count(s.train, 'ham'), count(s.validation, 'ham'), count(s.test, 'ham')], [42, 6, 12]);
});

test('a split with fraction 0 is empty; fractions must sum to 1', () => {
  const s = splitIndices(10, { train: 0.5, test: 0.5 }, 1);
  assert.equal(s.validation.length, 0);
  assert.equal(s.train.length + s.test.length, 10);
  assert.throws(() => splitIndices(10, { train: 0.5, test: 0.2 }, 1), /sum to 1/);
});

test('sampleIndices: seeded, stratified, ascending subsets', () => {
  const labels = Array.from({ length: 40 }, (_, i) => (i < 10 ? 'a' : 'b'));
  const s = sampleIndices(40, 8, 3, labels);
  assert.deepEqual(s, sampleIndices(40, 8, 3, labels));
  assert.equal(s.length, 8);
  assert.equal(s.filter((i) => labels[i] === 'a').length, 2);
  assert.deepEqual(s, [...s].sort((x, y) => x - y));
  assert.equal(new Set(s).size, 8);
  assert.deepEqual(sampleIndices(5, 9, 3), [0, 1, 2, 3, 4]);
});
