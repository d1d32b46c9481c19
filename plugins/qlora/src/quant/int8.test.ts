import { test } from 'node:test';
import assert from 'node:assert/strict';
import { INV_127, dequantizeInt8Rowwise, quantizeInt8Rowwise } from './int8.js';
import { normals } from '../testing/tiny.js';

test('int8 row-wise: SCB = row absmax, CB = round(x · 127/SCB) half to even, back as CB · SCB · (1/127)', () => {
  // Row 0: absmax 2 → scale 63.5: [2, -1, 0.5, 0] → [127, -63.5 → -64 (even), 31.75 → 32, 0].
  // Row 1: absmax 127 → scale 1: [127, 2.5, -2.5, 1.5] → [127, 2, -2, 2] (halves to even).
  // Row 2: zeros → SCB 0, codes 0.
  const w = Float32Array.from([2, -1, 0.5, 0, 127, 2.5, -2.5, 1.5, 0, 0, 0, 0]);
  const q = quantizeInt8Rowwise(w, 3, 4);
  assert.deepEqual(Array.from(q.scb), [2, 127, 0]);
  assert.deepEqual(Array.from(q.cb), [127, -64, 32, 0, 127, 2, -2, 2, 0, 0, 0, 0]);
  assert.equal(INV_127, Math.fround(1 / 127));
  const y = dequantizeInt8Rowwise(q, 3, 4);
  assert.equal(y[1], Math.fround(Math.fround(-64 * 2) * Math.fround(1 / 127)));
  assert.equal(y[4], Math.fround(Math.fround(127 * 127) * Math.fround(1 / 127)));
  assert.ok(y.slice(8).every((v) => v === 0));
});

test('int8 round trip error ≤ SCB / 254 per element (half a step)', () => {
  const rows = 7, cols = 33;
  const w = normals(rows * cols, 4, 0.05);
  const q = quantizeInt8Rowwise(w, rows, cols);
  const y = dequantizeInt8Rowwise(q, rows, cols);
  for (let i = 0; i < w.length; i++) assert.ok(Math.abs(w[i] - y[i]) <= (q.scb[Math.floor(i / cols)] / 254) * (1 + 1e-5), `element ${i}`);
});
