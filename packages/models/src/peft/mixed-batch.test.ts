import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { applyPerRow, groupRows, mixedBatchAdapterNames, withMixedBatch } from './mixed-batch.js';

before(async () => {
  await initBackend('wasm');
});

test('groupRows: rows per name in order of first appearance', () => {
  assert.deepEqual(groupRows(['b', 'a', 'b', '__base__', 'a']), [
    { name: 'b', rows: [0, 2] },
    { name: 'a', rows: [1, 4] },
    { name: '__base__', rows: [3] },
  ]);
});

test('applyPerRow: each row gets its group\'s result, zeros for null groups; no tensor leaks', () => {
  const x = tf.tensor3d([[[1, 2]], [[3, 4]], [[5, 6]], [[7, 8]]]); // [4, 1, 2]
  const before = tf.memory().numTensors;
  const seen: [string, number[]][] = [];
  const y = applyPerRow(x, ['a', 'b', 'a', 'none'], (name, rows) => {
    seen.push([name, rows.shape]);
    if (name === 'none') return null;
    return tf.mul(rows, name === 'a' ? 10 : -1).sum(-1, true); // [n, 1, 1]
  })!;
  assert.deepEqual(seen, [['a', [2, 1, 2]], ['b', [1, 1, 2]], ['none', [1, 1, 2]]]);
  assert.deepEqual(y.arraySync(), [[[30]], [[-7]], [[110]], [[0]]]);
  y.dispose();
  assert.equal(tf.memory().numTensors, before);
  assert.equal(applyPerRow(x, ['n', 'n', 'n', 'n'], () => null), null);
  assert.throws(() => applyPerRow(x, ['a'], () => null, 'h.0.c_attn'), /h\.0\.c_attn: adapterNames has 1 entries but the batch has 4 rows/);
});

test('withMixedBatch sets the names for the call only, and nests', () => {
  assert.equal(mixedBatchAdapterNames(), undefined);
  const inner = withMixedBatch(['a', 'b'], () => {
    const outer = mixedBatchAdapterNames();
    const nested = withMixedBatch(['c'], () => mixedBatchAdapterNames());
    return { outer, nested, after: mixedBatchAdapterNames() };
  });
  assert.deepEqual(inner, { outer: ['a', 'b'], nested: ['c'], after: ['a', 'b'] });
  assert.throws(() => withMixedBatch(['x'], () => {
    throw new Error('boom');
  }), /boom/);
  assert.equal(mixedBatchAdapterNames(), undefined, 'restored after a throw');
});
