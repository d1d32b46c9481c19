import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { UserError } from '@peftkit/core';
import { readSafetensorsHeader, readSafetensorsRaw, writeSafetensors, type RawTensor } from '@peftkit/models';
import { deserializeWeight, packQuantState, serializeWeight } from './bnb-format.js';
import { Weight4bit, WeightInt8, bitsPerParameter } from './quantized-weight.js';
import { normals, scratch } from './testing/tiny.js';

const text = (t: RawTensor) => new TextDecoder().decode(t.data as Uint8Array);

test('serialized names, dtypes and shapes: bitsandbytes Linear4bit with double quantization', () => {
  const w = Weight4bit.quantize(normals(3 * 70, 1, 0.1), [3, 70], { quantType: 'nf4', blocksize: 64, doubleQuant: true });
  const sd = serializeWeight(w);
  const meta = Object.fromEntries([...sd].map(([k, t]) => [k, `${t.dtype} [${t.shape.join(', ')}]`]));
  assert.deepEqual(meta, {
    weight: 'U8 [105, 1]', // 210 values, two per byte
    'weight.absmax': 'U8 [4]', // ceil(210 / 64) blocks, 8-bit codes
    'weight.quant_map': 'F32 [16]',
    'weight.nested_absmax': 'F32 [1]',
    'weight.nested_quant_map': 'F32 [256]',
    'weight.quant_state.bitsandbytes__nf4': `U8 [${sd.get('weight.quant_state.bitsandbytes__nf4')!.shape[0]}]`,
  });
  const js = text(sd.get('weight.quant_state.bitsandbytes__nf4')!);
  // json.dumps of QuantState.as_dict(packed=True)'s non-tensor items, in bitsandbytes' key order.
  assert.match(js, /^\{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": \[3, 70\], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": -?\d\.\d+(e-\d\d)?\}$/);
  assert.equal(Math.fround(JSON.parse(js).nested_offset), w.nested!.offset);
});

test('the quant-state JSON is byte for byte what Python writes (offset printed as repr(float))', () => {
  // Absmax of the two blocks: 0.5 and 1 → offset = mean = 0.75 (exact).
  const x = new Float32Array(128);
  x[0] = 0.5;
  x[64] = -1;
  const w = Weight4bit.quantize(x, [2, 64], { quantType: 'fp4', blocksize: 64, doubleQuant: true });
  assert.equal(new TextDecoder().decode(packQuantState(w)), '{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [2, 64], "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.75}');
  const plain = Weight4bit.quantize(x, [2, 64], { quantType: 'nf4', blocksize: 64, doubleQuant: false });
  assert.equal(new TextDecoder().decode(packQuantState(plain)), '{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}');
  assert.deepEqual([...serializeWeight(plain).keys()], ['weight', 'weight.absmax', 'weight.quant_map', 'weight.quant_state.bitsandbytes__nf4']);
  assert.equal(serializeWeight(plain).get('weight.absmax')!.dtype, 'F32');
});

test('storage cost from the stored byte counts: 4 + 8/64 + 32/(64·256) ≈ 4.127 bits with double quantization, 4.5 without', () => {
  // [256, 256]: 65536 values = 1024 blocks of 64 = 4 nested blocks of 256, so no partial blocks.
  const x = normals(256 * 256, 2, 0.02);
  const { dir, cleanup } = scratch();
  try {
    for (const [dq, expected] of [[true, 4 + 8 / 64 + 32 / (64 * 256)], [false, 4 + 32 / 64]] as const) {
      const w = Weight4bit.quantize(x, [256, 256], { quantType: 'nf4', blocksize: 64, doubleQuant: dq });
      const file = join(dir, `w-${dq}.safetensors`);
      writeSafetensors(file, new Map([...serializeWeight(w)].map(([k, t]) => [`l.${k}`, t])));
      const h = readSafetensorsHeader(file).tensors;
      const bytes = (k: string) => (h[k] ? h[k].dataOffsets[1] - h[k].dataOffsets[0] : 0);
      // Per-parameter storage: the packed codes, the (8-bit or float32) absmax, the nested absmax.
      const stored = bytes('l.weight') + bytes('l.weight.absmax') + bytes('l.weight.nested_absmax');
      assert.equal(stored, dq ? 32768 + 1024 + 16 : 32768 + 4096);
      const bits = (8 * stored) / 65536;
      assert.equal(bits, expected);
      assert.equal(bitsPerParameter([w]), expected);
      // Per-tensor constants (quant_map, nested_quant_map, offset) add little at this size.
      assert.ok(bitsPerParameter([w], { includeTables: true }) - expected < (dq ? 0.14 : 0.01));
    }
    assert.ok(Math.abs(4 + 8 / 64 + 32 / (64 * 256) - 4.127) < 5e-4);
  } finally {
    cleanup();
  }
});

test('serialize → safetensors → deserialize gives the same bytes and the same dequantized weight', () => {
  const { dir, cleanup } = scratch();
  try {
    const weights = [
      Weight4bit.quantize(normals(5 * 77, 3, 0.1), [5, 77], { quantType: 'nf4', blocksize: 32, doubleQuant: true }),
      Weight4bit.quantize(normals(4 * 40, 4, 0.1), [4, 40], { quantType: 'fp4', blocksize: 128, doubleQuant: false }),
      WeightInt8.quantize(normals(6 * 9, 5, 0.1), [6, 9]),
    ];
    weights.forEach((w, i) => {
      const file = join(dir, `${i}.safetensors`);
      writeSafetensors(file, new Map([...serializeWeight(w)].map(([k, t]) => [`m.${k}`, t])));
      const names = Object.keys(readSafetensorsHeader(file).tensors);
      const back = deserializeWeight((n) => (names.includes(`m.${n}`) ? readSafetensorsRaw(file, `m.${n}`) : undefined), `${file}: m`);
      assert.equal(back.constructor, w.constructor);
      assert.deepEqual(back.describe(), w.describe());
      assert.deepEqual(Array.from(back.dequantize()), Array.from(w.dequantize()));
      for (const [k, t] of serializeWeight(back)) assert.deepEqual(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength), Buffer.from(readSafetensorsRaw(file, `m.${k}`).bytes), k);
    });
  } finally {
    cleanup();
  }
});

test('inconsistent serialized tensors: UserError naming the layer and what is wrong', () => {
  const w = Weight4bit.quantize(normals(2 * 64, 6, 0.1), [2, 64], { quantType: 'nf4', blocksize: 64, doubleQuant: true });
  const sd = serializeWeight(w);
  const getter = (over: Record<string, RawTensor | undefined>) => (n: string) => (n in over ? over[n] : sd.get(n));
  const qs = (json: string): RawTensor => {
    const b = new TextEncoder().encode(json);
    return { dtype: 'U8', shape: [b.length], data: b };
  };
  const cases: [Record<string, RawTensor | undefined>, RegExp][] = [
    [{ 'weight.absmax': undefined }, /f.safetensors: l: missing tensor "weight.absmax"/],
    [{ weight: { dtype: 'U8', shape: [10, 1], data: new Uint8Array(10) } }, /weight has 10 bytes, but shape \[2, 64\] needs ceil\(128 \/ 2\) = 64/],
    [{ 'weight.quant_state.bitsandbytes__nf4': qs('{"quant_type": "nf4", "blocksize": 100, "dtype": "float32", "shape": [2, 64]}') }, /\/blocksize: 100 is not a power of two/],
    [{ 'weight.quant_state.bitsandbytes__nf4': qs('{"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [2, 64]}') }, /\/quant_type: "fp4" does not match the tensor name \(nf4\)/],
    [{ 'weight.quant_state.bitsandbytes__nf4': qs('{"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [128]}') }, /\/shape: \[128\] is not a 2-D shape/],
    [{ 'weight.quant_state.bitsandbytes__nf4': qs('not json') }, /is not UTF-8 JSON/],
    [{ weight: { dtype: 'BF16', shape: [32, 1], data: new Uint16Array(32) } }, /stored as BF16 \(bnb_4bit_quant_storage\)/],
  ];
  for (const [over, re] of cases) {
    assert.throws(() => deserializeWeight(getter(over), 'f.safetensors: l'), (e: unknown) => e instanceof UserError && re.test(e.message), String(re));
  }
});
