import assert from 'node:assert/strict';
import { test } from 'node:test';
import { getRngState, manualSeed, mulberry32, nextSeed, nextSeedPair, random, setRngState } from './rng.js';

test('mulberry32(1) gives the reference generator\'s first outputs', () => {
  // Values of Tommy Ettinger's C mulberry32 from seed 1 (recomputed in Python with 32-bit masks).
  const r = mulberry32(1);
  assert.deepEqual([r(), r(), r()], [0.6270739405881613, 0.002735721180215478, 0.5274470399599522]);
});

test('a private stream is the global stream after manualSeed, and does not move it', () => {
  manualSeed(1234);
  const globalDraws = Array.from({ length: 5 }, () => random());
  manualSeed(99);
  const before = getRngState();
  const r = mulberry32(1234);
  assert.deepEqual(Array.from({ length: 5 }, () => r()), globalDraws);
  assert.equal(getRngState(), before);
});

test('nextSeedPair takes one step of the stream, as nextSeed does, and a restored state gives the same pairs', () => {
  manualSeed(11);
  const p1 = nextSeedPair();
  const after = random();
  manualSeed(11);
  nextSeed();
  assert.equal(random(), after); // the same number of draws
  manualSeed(11);
  const s = getRngState();
  assert.deepEqual(nextSeedPair(), p1);
  const p2 = nextSeedPair();
  setRngState(s);
  assert.deepEqual([nextSeedPair(), nextSeedPair()], [p1, p2]);
  assert.notDeepEqual(p2, p1);
  for (const w of [...p1, ...p2]) assert.ok(Number.isInteger(w) && w >= 0 && w < 2 ** 32);
});
