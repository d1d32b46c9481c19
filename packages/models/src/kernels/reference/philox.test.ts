import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dropoutMaskReference, dropoutReference, dropoutScale, keepThreshold, mulhi32, philox4x32_10, uniformFromWord } from './philox.js';

// Random123's kat_vectors, philox4x32_10 lines (counter, key -> output).
const KAT: Array<[number[], number[], number[]]> = [
  [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
  [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
  [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
];

test('philox4x32_10 reproduces the Random123 known-answer vectors', () => {
  for (const [ctr, key, want] of KAT) assert.deepEqual(philox4x32_10(ctr, key), want);
});

test('mulhi32 is the exact high word of the 64-bit product', () => {
  const vals = [0, 1, 0xffff, 0x10000, 0xd2511f53, 0xcd9e8d57, 0xffffffff, 0x80000000, 0x12345678, 0xdeadbeef];
  for (const a of vals) for (const b of vals) assert.equal(mulhi32(a, b), Number((BigInt(a) * BigInt(b)) >> 32n), `${a} * ${b}`);
});

test('the mask reads word i % 4 of block floor(i / 4) and keeps iff u >= rate', () => {
  const n = 10;
  const m = dropoutMaskReference(n, 0.5, 7, 9);
  for (let i = 0; i < n; i++) {
    const w = philox4x32_10([Math.floor(i / 4), 0, 0, 0], [7, 9])[i % 4];
    assert.equal(m[i], (w >>> 8) * 2 ** -24 >= 0.5 ? 1 : 0);
    assert.equal(m[i], (w >>> 8) >= keepThreshold(0.5) ? 1 : 0);
  }
});

test('keepThreshold agrees with u >= rate at and around every representable u', () => {
  for (const rate of [0, 0.1, 0.25, 1 / 3, 0.5, 0.9, 1 - 2 ** -24]) {
    const t = keepThreshold(rate);
    for (const m of [t - 1, t, t + 1]) if (m >= 0 && m < 2 ** 24) assert.equal(m >= t, uniformFromWord(m << 8) >= rate, `rate ${rate} m ${m}`);
  }
});

test('dropout keeps about 1 - rate of the elements, scaled by 1 / (1 - rate), and rate 0 is the identity', () => {
  const n = 40000;
  const x = Float32Array.from({ length: n }, (_, i) => 1 + (i % 7));
  const y = dropoutReference(x, 0.1, 123, 456);
  let kept = 0;
  for (let i = 0; i < n; i++) {
    if (y[i] !== 0) {
      kept++;
      assert.equal(y[i], Math.fround(x[i] * Math.fround(1 / Math.fround(0.9))));
    }
  }
  // Binomial(40000, 0.9): sd 60; 5 sd either side.
  assert.ok(Math.abs(kept - 36000) < 300, `kept ${kept}`);
  assert.deepEqual(dropoutReference(x, 0, 1, 2), x);
  assert.equal(dropoutScale(0.1), Math.fround(1 / Math.fround(0.9)));
  // Another seed gives another mask; the same seed the same one.
  assert.notDeepEqual(dropoutMaskReference(64, 0.5, 1, 2), dropoutMaskReference(64, 0.5, 1, 3));
  assert.deepEqual(dropoutMaskReference(64, 0.5, 1, 2), dropoutMaskReference(64, 0.5, 1, 2));
  assert.throws(() => dropoutReference(x, 1, 0, 0), /rate must be in \[0, 1\)/);
});
