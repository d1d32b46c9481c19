import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '@peftkit/core';
import { BLOCKSIZES, assertBlocksize, codeOf, dequantize4bit, quantize4bit } from './four-bit.js';
import { NF4_CODE } from './nf4.js';
import { FP4_CODE } from './fp4.js';
import { nextUpF32, normals } from '../testing/tiny.js';

const T7 = Math.fround(0.03979014977812767); // kernels.cu pivot between NF4 codes 7 (0) and 8
const T0 = Math.fround(-0.8480964004993439); // pivot between codes 0 (-1) and 1

test('NF4: hand-checked codes, bytes and absmax; odd length (37) and a partial last block (5 of 32)', () => {
  // Block 0 (32 values), absmax 2, so 1/absmax = 0.5 exactly and x * 0.5 is exact.
  const block0 = [
    -2, // → -1: index 0 (also the absmax)
    ...Array.from(NF4_CODE, (c) => 2 * c), // 2·code[k] → exactly code[k]: index k (k = 15 gives 2 = the absmax again)
    2 * T7, // exactly on the 7|8 pivot → 7 (strict >: ties go down)
    2 * nextUpF32(T7), // one ulp above → 8
    2 * T0, // exactly on the 0|1 pivot → 0
    2 * nextUpF32(T0), // → 1
    0, // → 0: index 7
    -0, // → -0 > -0.0455: index 7
    0.3, // → 0.15, between 0.0796 (8) and 0.1609 (9), above their midpoint 0.1203 → 9
    -0.3, // → -0.15, between -0.1848 (5) and -0.0911 (6), below their midpoint -0.1379 → 5
    1.9, // → 0.95 > 0.8615 → 15
    -1.9, // → -0.95 < -0.8481 → 0
    0.5, // → 0.25, between 0.2461 (10) and 0.3379 (11), below 0.2920 → 10
    -0.5, // → -0.25, between -0.2844 (4) and -0.1848 (5), below -0.2346 → 4
    1.0, // → 0.5, between 0.4407 (12) and 0.5626 (13), below 0.5017 → 12
    -1.0, // → -0.5, between -0.5251 (2) and -0.3949 (3), below -0.4600 → 2
    1.3, // → 0.65, between 0.5626 (13) and 0.7230 (14), above 0.6428 → 14
  ];
  const idx0 = [0, ...Array.from({ length: 16 }, (_, k) => k), 7, 8, 0, 1, 7, 7, 9, 5, 15, 0, 10, 4, 12, 2, 14];
  // Block 1 (5 values, partial), absmax 0.5 → 1/absmax = 2: normalised 1, -0.5, 0.2, 0, -1.
  const block1 = [0.5, -0.25, 0.1, 0, -0.5];
  const idx1 = [15, 2, 9, 7, 0]; // 0.1·2 = 0.2 < 0.2035 (the 9|10 pivot) → 9
  assert.equal(block0.length, 32);
  const x = Float32Array.from([...block0, ...block1]);
  const { packed, absmax } = quantize4bit(x, 'nf4', 32);

  assert.deepEqual(Array.from(absmax), [2, 0.5]);
  assert.equal(packed.length, 19); // ceil(37 / 2)
  // Two codes per byte, first in the high nibble; the 37th value pairs with the zero padding, index 7.
  const expected = [0x00, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf7, 0x80, 0x17, 0x79, 0x5f, 0x0a, 0x4c, 0x2e, 0xf2, 0x97, 0x07];
  assert.deepEqual(Array.from(packed), expected);
  // Same bytes from the index lists (a second, independent reading of the table above).
  const all = [...idx0, ...idx1, 7];
  assert.deepEqual(Array.from(packed), Array.from({ length: 19 }, (_, i) => (all[2 * i] << 4) | all[2 * i + 1]));

  const y = dequantize4bit(packed, absmax, 37, 32, NF4_CODE);
  for (let i = 0; i < 37; i++) {
    const a = i < 32 ? 2 : 0.5;
    assert.equal(y[i], Math.fround(NF4_CODE[[...idx0, ...idx1][i]] * a), `value ${i}`);
  }
});

test('FP4: hand-checked codes with an absmax whose reciprocal is inexact (3), odd length, sign of tiny negatives', () => {
  // absmax 3: the kernel multiplies by float32(1/3) = 0.3333333432674408.
  //  -3   → -1.00000003 → float32 -1     → |x| > 0.8333: 0b011 + sign 0b1000 = 11
  //  1.5  → 0.50000001  → float32 0.5    → 0.4167 < 0.5 ≤ 0.5833: 0b101 = 5
  //  0.25 → 0.08333334  → 0.0026 < x ≤ 0.0859: 0b001 = 1 (0.0625/12: the subnormal, not 2/12)
  //  pad  → 0                          → 0b000
  const q = quantize4bit(Float32Array.from([-3, 1.5, 0.25]), 'fp4', 64);
  assert.deepEqual(Array.from(q.absmax), [3]);
  assert.deepEqual(Array.from(q.packed), [0xb5, 0x10]);
  const y = dequantize4bit(q.packed, q.absmax, 3, 64, FP4_CODE);
  assert.deepEqual(Array.from(y), [-3, 1.5, Math.fround(Math.fround(0.0625 / 12) * 3)]);

  const neg = quantize4bit(Float32Array.from([-1, -0.001]), 'fp4', 64);
  assert.deepEqual(Array.from(neg.packed), [0xb8]); // -1 → 11, -0.001 → -0 (0b1000)
  assert.ok(Object.is(dequantize4bit(neg.packed, neg.absmax, 2, 64, FP4_CODE)[1], -0));
});

test('a block of zeros: absmax 0, every index 0 (NaN on the GPU), dequantized to ±0', () => {
  const q = quantize4bit(new Float32Array(70), 'nf4', 64); // 64 zeros + a partial block of 6
  assert.deepEqual(Array.from(q.absmax), [0, 0]);
  assert.ok(q.packed.every((b) => b === 0));
  const y = dequantize4bit(q.packed, q.absmax, 70, 64, NF4_CODE);
  assert.ok(y.every((v) => v === 0));
  assert.ok(Object.is(y[0], -0)); // code[0] = -1 times 0
});

test('round trip: |x − x̂| ≤ absmax · (largest half-gap between adjacent codes), and x̂ is the nearest code', () => {
  const x = normals(1000, 3, 0.02); // 15 full blocks of 64 and a partial one of 40
  for (const qt of ['nf4', 'fp4'] as const) {
    const code = codeOf(qt);
    const sorted = [...code].sort((a, b) => a - b);
    let halfGap = 0;
    for (let k = 0; k + 1 < sorted.length; k++) halfGap = Math.max(halfGap, (sorted[k + 1] - sorted[k]) / 2);
    // NF4's widest gap is its asymmetric end, -1 to -0.6962; FP4's is 8/12 to 12/12.
    assert.equal(halfGap, qt === 'nf4' ? (Math.fround(-0.6961928009986877) + 1) / 2 : (1 - Math.fround(8 / 12)) / 2);
    for (const bs of [64, 256]) {
      const { packed, absmax } = quantize4bit(x, qt, bs);
      const y = dequantize4bit(packed, absmax, x.length, bs, code);
      for (let i = 0; i < x.length; i++) {
        const a = absmax[Math.floor(i / bs)];
        assert.ok(Math.abs(x[i] - y[i]) <= a * halfGap * (1 + 1e-6), `${qt}/${bs} value ${i}: |${x[i]} − ${y[i]}| > ${a} · ${halfGap}`);
        const t = x[i] / a;
        const best = Math.min(...sorted.map((c) => Math.abs(t - c)));
        assert.ok(Math.abs(t - y[i] / a) <= best + 1e-6, `${qt}/${bs} value ${i} is not on the nearest code`);
      }
    }
  }
});

test('blocksize must be a power of two from 32 to 4096: a clear UserError otherwise', () => {
  assert.deepEqual(BLOCKSIZES, [32, 64, 128, 256, 512, 1024, 2048, 4096]);
  for (const b of BLOCKSIZES) assert.doesNotThrow(() => assertBlocksize(b));
  const cases: [number, RegExp][] = [[100, /not a power of two/], [16, /outside 32\.\.4096/], [8192, /outside 32\.\.4096/], [63.5, /not an integer/]];
  for (const [b, why] of cases) {
    assert.throws(() => quantize4bit(new Float32Array(8), 'nf4', b), (e: unknown) => {
      assert.ok(e instanceof UserError);
      assert.match(e.message, new RegExp(`blocksize ${b} `));
      assert.match(e.message, why);
      assert.match(e.details.hint ?? '', /32, 64, 128, 256, 512, 1024, 2048, 4096/);
      return true;
    });
  }
});
