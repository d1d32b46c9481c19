import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NF4_CODE, nf4Index } from './nf4.js';
import { FP4_CODE, fp4Index } from './fp4.js';
import { nextUpF32 } from '../testing/tiny.js';

// bitsandbytes/functional.py get_4bit_type("nf4"), the list as written there (index 0..15).
const BNB_NF4 = [
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
];

// csrc/kernels.cu dQuantizeNF4: the float32 literals between index k and k+1.
const BNB_NF4_PIVOTS = [
  -0.8480964004993439, -0.6106329262256622, -0.4599952697753906, -0.33967943489551544, -0.23460740596055984, -0.13791173323988914, -0.045525018125772476,
  0.03979014977812767, 0.1202552504837513, 0.2035212516784668, 0.2920137718319893, 0.3893125355243683, 0.5016634166240692, 0.6427869200706482, 0.8614784181118011,
].map(Math.fround);

test('NF4 code table: the 16 values of bitsandbytes, as float32, exactly', () => {
  assert.equal(NF4_CODE.length, 16);
  for (let i = 0; i < 16; i++) assert.equal(NF4_CODE[i], Math.fround(BNB_NF4[i]), `index ${i}`);
  // bitsandbytes' literals are float32 values printed in full: the table is stored without rounding.
  for (const v of BNB_NF4) assert.equal(Math.fround(v), v);
});

test('NF4 rounding: each code maps to itself; bitsandbytes pivots split with strict >, ties to the lower code', () => {
  for (let k = 0; k < 16; k++) assert.equal(nf4Index(NF4_CODE[k]), k);
  for (let k = 0; k < 15; k++) {
    const p = BNB_NF4_PIVOTS[k];
    assert.equal(nf4Index(p), k, `exactly on pivot ${k}/${k + 1} → ${k}`);
    assert.equal(nf4Index(nextUpF32(p)), k + 1, `just above pivot ${k}/${k + 1} → ${k + 1}`);
    // The pivots are the midpoints of adjacent codes (to float32 precision).
    assert.ok(Math.abs(p - (BNB_NF4[k] + BNB_NF4[k + 1]) / 2) < 1e-7, `pivot ${k} is a midpoint`);
  }
  assert.equal(nf4Index(1.5), 15); // outside [-1, 1]: clamps
  assert.equal(nf4Index(-7), 0);
  assert.equal(nf4Index(NaN), 0); // a zero block on the GPU: 0 * (1/0)
});

test('FP4 code table: bitsandbytes get_4bit_type("fp4") divided by its absmax 12', () => {
  // 0b000 = 0, 0b001 = 0.0625, 0b010 = 8, 0b011 = 12, 0b100 = 4, 0b101 = 6, 0b110 = 2, 0b111 = 3; bit 3 = sign.
  const raw = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0];
  for (let i = 0; i < 16; i++) assert.ok(Object.is(FP4_CODE[i], Math.fround(raw[i] / 12)), `index ${i}: ${FP4_CODE[i]} vs ${raw[i] / 12}`);
  // The kernel's dDequantizeFP4Tree constants are the same float32 values.
  assert.equal(FP4_CODE[6], Math.fround(0.16666667));
  assert.equal(FP4_CODE[4], Math.fround(0.33333333));
  assert.equal(FP4_CODE[2], Math.fround(0.66666667));
  assert.equal(FP4_CODE[1], Math.fround(5.208333333e-3));
});

test('FP4 rounding: nearest magnitude by the kernel pivots, sign from x < 0, ties to the smaller magnitude', () => {
  for (let i = 0; i < 16; i++) if (i !== 8) assert.equal(fp4Index(FP4_CODE[i]), i, `code ${i}`);
  // (magnitude index low, high, pivot literal from kernels.cu)
  const pairs: [number, number, number][] = [
    [0b000, 0b001, 0.00260417], [0b001, 0b110, 0.0859375], [0b110, 0b111, 0.20833333], [0b111, 0b100, 0.29166667],
    [0b100, 0b101, 0.4166667], [0b101, 0b010, 0.583333], [0b010, 0b011, 0.8333333],
  ];
  for (const [lo, hi, p] of pairs) {
    const pf = Math.fround(p);
    assert.equal(fp4Index(pf), lo);
    assert.equal(fp4Index(nextUpF32(pf)), hi);
    assert.equal(fp4Index(-pf), lo | 8);
    assert.equal(fp4Index(-nextUpF32(pf)), hi | 8);
  }
  assert.equal(fp4Index(-0.001), 0b1000); // negative, rounds to -0
  assert.equal(fp4Index(-0), 0b0000); // -0 < 0 is false: no sign bit
  assert.equal(fp4Index(NaN), 0);
});
