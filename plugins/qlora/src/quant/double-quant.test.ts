import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDynamicMap, dynamicMap } from './dynamic-map.js';
import { dequantizeBlockwise8, dynamicIndex, quantizeBlockwise8 } from './blockwise-8bit.js';
import { NESTED_BLOCKSIZE, compressAbsmax, decompressAbsmax, meanF32 } from './double-quant.js';
import { fmaF32 } from './float32.js';
import { normals } from '../testing/tiny.js';

test('fmaF32 rounds a·b + c once to float32', () => {
  // a·b = 2^30 · (1 + 2^-23)(1 - 2^-23) = 2^30 - 2^-16, exact in float64.
  const a = 2 ** 15 * (1 + 2 ** -23);
  const b = 2 ** 15 * (1 - 2 ** -23);
  const c = 2 ** 54 + 2 ** 31; // a float32 with an odd last mantissa bit (ulp 2^31 here)
  // True value: c + 2^30 - 2^-16, just below the tie between c and c + 2^31, so float32 gives c.
  // In float64 the 2^-16 is lost, the sum lands on the tie and ties-to-even goes up: wrong.
  assert.equal(Math.fround(a * b + c), 2 ** 54 + 2 ** 32);
  assert.equal(fmaF32(a, b, c), c);
  assert.equal(fmaF32(3, 5, 7), 22);
  assert.equal(fmaF32(1, 1, 2 ** -24), 1); // an exact tie: to even
});

test("bitsandbytes' dynamic map: 256 ascending float32 values, -0.9929688 .. 0 .. 1", () => {
  const m = dynamicMap();
  assert.equal(m.length, 256);
  for (let i = 1; i < 256; i++) assert.ok(m[i] > m[i - 1], `ascending at ${i}`);
  assert.equal(m[127], 0); // 127 negatives (1 + 2 + ... + 64), then 0
  assert.equal(m[255], 1);
  for (let i = 0; i < 127; i++) assert.equal(m[i], -m[254 - i], `symmetric at ${i}`);
  // Extremes: 10^0 · mean of the last two points of linspace(0.1, 1, 65) = 0.1 + 0.9 · 63.5/64 = 0.99296875,
  // and 10^-6 · mean(linspace(0.1, 1, 2)) = 1e-6 · 0.55, both in float32 arithmetic.
  assert.equal(m[0], Math.fround(-0.99296875));
  assert.equal(m[128], Math.fround(Math.fround(1e-6) * Math.fround(0.55)));
  // Top decade: within one float32 ulp of the exact 0.1 + 0.9·(k + 0.5)/64.
  for (let k = 0; k < 64; k++) assert.ok(Math.abs(m[191 + k] - (0.1 + (0.9 * (k + 0.5)) / 64)) < 1.2e-7, `top decade ${k}`);
  // Fused and unfused float32 linspace (how PyTorch's kernel was compiled) differ by 1 ulp in 42 entries.
  const unfused = createDynamicMap({ fused: false });
  const diff = [...m].filter((v, i) => v !== unfused[i]).length;
  assert.equal(diff, 42);
});

test('8-bit dynamic quantization: the kernel binary search picks the nearest code (midpoint rule)', () => {
  const m = dynamicMap();
  for (let i = 0; i < 256; i++) assert.equal(dynamicIndex(m, m[i]), i, `code ${i} maps to itself`);
  assert.equal(dynamicIndex(m, -1), 0); // below the smallest code (-0.9929688)
  assert.equal(dynamicIndex(m, NaN), 0);
  const x = normals(3000, 5, 0.3).map((v) => Math.max(-1, Math.min(1, v)));
  for (const v of x) {
    const i = dynamicIndex(m, Math.fround(v));
    const best = Math.min(...Array.from(m, (c) => Math.abs(v - c)));
    assert.ok(Math.abs(v - m[i]) <= best + 1e-7, `${v} → code ${i} (${m[i]}) is not nearest`);
  }
  const q = quantizeBlockwise8(Float32Array.from([0.5, -0.25, 1, 0]), m, 256);
  assert.deepEqual(Array.from(q.absmax), [1]);
  assert.deepEqual(Array.from(dequantizeBlockwise8(q.codes, q.absmax, m, 256)).map((v, i) => Math.abs(v - [0.5, -0.25, 1, 0][i]) < 0.01), [true, true, true, true]);
});

test('double quantization, by hand: absmax [1, 2, 3] → offset 2, codes [0, 127, 255], nested scale 1', () => {
  // mean 2; centred [-1, 0, 1]; one nested block with absmax 1; -1 → the smallest code (index 0,
  // -0.9929688), 0 → index 127, 1 → index 255; back: code · 1 + 2.
  const n = compressAbsmax(Float32Array.from([1, 2, 3]));
  assert.equal(n.offset, 2);
  assert.equal(n.nestedBlocksize, 256);
  assert.deepEqual(Array.from(n.absmax), [0, 127, 255]);
  assert.deepEqual(Array.from(n.nestedAbsmax), [1]);
  assert.deepEqual(Array.from(decompressAbsmax(n)), [Math.fround(Math.fround(-0.99296875) + 2), 2, 3]);
});

test('double quantization of many absmax values: 1 byte each plus a float32 per 256, small relative error', () => {
  const absmax = Float32Array.from(normals(1000, 9, 0.01), (v) => Math.abs(v) + 0.02); // 4 nested blocks (3 full, 1 of 232)
  const n = compressAbsmax(absmax);
  assert.equal(n.absmax.length, 1000);
  assert.equal(n.nestedAbsmax.length, Math.ceil(1000 / NESTED_BLOCKSIZE));
  assert.equal(n.offset, meanF32(absmax));
  const back = decompressAbsmax(n);
  for (let i = 0; i < 1000; i++) {
    // The dynamic code's largest relative gap near the top of a block is ~1.4% of that block's scale.
    const scale = n.nestedAbsmax[Math.floor(i / 256)];
    assert.ok(Math.abs(back[i] - absmax[i]) <= 0.0071 * scale + 1e-7, `absmax ${i}: ${absmax[i]} → ${back[i]}`);
  }
});
