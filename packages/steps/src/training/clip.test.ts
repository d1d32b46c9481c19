import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { clipGradNorm } from './clip.js';
import { countHostReads } from './testing/host-reads.js';

await initBackend('wasm');

/** Runs clipGradNorm, asserting it reads nothing back, and returns the norm's value. */
function clip(grads: Map<string, tf.Tensor>, maxNorm: number): number {
  const reads = countHostReads();
  let norm: tf.Scalar;
  try {
    norm = clipGradNorm(grads, maxNorm);
  } finally {
    reads.stop();
  }
  assert.equal(reads.count, 0, 'clipping read a value back to the host');
  const v = norm.dataSync()[0];
  norm.dispose();
  return v;
}

test('global-norm clipping scales every gradient by max_norm / (total + 1e-6) and returns the total', () => {
  const grads = new Map<string, tf.Tensor>([['a', tf.tensor1d([3, 4])], ['b', tf.tensor1d([12])]]);
  const total = clip(grads, 1);
  assert.ok(Math.abs(total - 13) < 1e-5);
  const c = 1 / (13 + 1e-6);
  const a = grads.get('a')!.dataSync();
  assert.ok(Math.abs(a[0] - 3 * c) < 1e-7 && Math.abs(a[1] - 4 * c) < 1e-7);
  assert.ok(Math.abs(grads.get('b')!.dataSync()[0] - 12 * c) < 1e-7);
  // The clipped set has norm ~1.
  const n = Math.hypot(...a, grads.get('b')!.dataSync()[0]);
  assert.ok(Math.abs(n - 1) < 1e-5);
});

test('below max_norm the gradients are multiplied by exactly 1; with clipping off they are not touched', () => {
  const g = tf.tensor1d([0.3, 0.4, -1e-30, 7e-3]);
  const before = Array.from(g.dataSync());
  const grads = new Map<string, tf.Tensor>([['a', g]]);
  assert.ok(Math.abs(clip(grads, 1) - Math.hypot(...before)) < 1e-6);
  assert.deepEqual(Array.from(grads.get('a')!.dataSync()), before);
  const big = tf.tensor1d([30, 40]);
  const off = new Map<string, tf.Tensor>([['a', big]]);
  assert.ok(Math.abs(clip(off, 0) - 50) < 1e-4);
  assert.equal(off.get('a'), big);
  assert.deepEqual(Array.from(big.dataSync()), [30, 40]);
});

test('the device coefficient equals the host one (maxNorm / (total + 1e-6) in float64) within float32 rounding', () => {
  for (const [seed, scale, maxNorm] of [[1, 3, 1], [2, 0.5, 0.25], [3, 100, 1], [4, 1e-3, 1e-4]] as const) {
    const shapes = [[5, 7], [7], [3, 2, 4]];
    const grads = new Map<string, tf.Tensor>(shapes.map((s, i) => [`p${i}`, tf.randomNormal(s, 0, scale, 'float32', seed * 10 + i)]));
    const raw = new Map([...grads].map(([n, t]) => [n, Array.from(t.dataSync())]));
    const total = Math.sqrt([...raw.values()].flat().reduce((s, x) => s + x * x, 0));
    const norm = clip(grads, maxNorm);
    assert.ok(Math.abs(norm - total) < 1e-6 * total, `seed ${seed}: norm ${norm} vs ${total}`);
    const coef = Math.min(maxNorm / (total + 1e-6), 1);
    assert.ok(coef < 1, 'the case should clip');
    for (const [n, t] of grads) {
      const got = t.dataSync();
      raw.get(n)!.forEach((x, j) => assert.ok(Math.abs(got[j] - x * coef) <= 4e-7 * Math.abs(x * coef) + 1e-30, `seed ${seed}, ${n}[${j}]: ${got[j]} vs ${x * coef}`));
      t.dispose();
    }
  }
});

test('a non-finite gradient gives a non-finite norm', () => {
  const grads = new Map<string, tf.Tensor>([['a', tf.tensor1d([1, NaN])], ['b', tf.tensor1d([2])]]);
  assert.ok(Number.isNaN(clip(grads, 1)));
  const inf = new Map<string, tf.Tensor>([['a', tf.tensor1d([Infinity, 1])]]);
  assert.equal(clip(inf, 1), Infinity);
});
