import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import {
  CheckpointError, forEachSafetensor, iterateSafetensors, readSafetensors, readSafetensorsHeader, readSafetensorsRaw, writeSafetensors,
} from './safetensors.js';
import { hfFixture, scratch } from '../testing/index.js';

const tiny = join(hfFixture('ckpt-gpt2-tiny-vocab'), 'model.safetensors');
let tmp: ReturnType<typeof scratch>;
before(async () => {
  await initBackend('wasm');
  tmp = scratch();
});
after(() => tmp.cleanup());

/** Builds a safetensors file by hand from a header object and a data region. */
function handMade(name: string, header: object, data: Uint8Array, pad = 0): string {
  const json = Buffer.concat([Buffer.from(JSON.stringify(header)), Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const p = join(tmp.dir, name);
  writeFileSync(p, Buffer.concat([len, json, data]));
  return p;
}

function throwsCheckpoint(fn: () => unknown, re: RegExp, file: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected CheckpointError, got ${e}`);
    assert.match(e.message, re);
    assert.ok(e.message.includes(file), `message names the file: ${e.message}`);
    assert.equal(e.details.file, file);
    return true;
  });
}

test('header of a real GPT-2 checkpoint: names, shapes, offsets and metadata', () => {
  const h = readSafetensorsHeader(tiny);
  assert.deepEqual(h.metadata, { format: 'pt' });
  assert.equal(h.headerBytes, 1200);
  assert.deepEqual(h.tensors['h.0.attn.c_attn.weight'], { dtype: 'F32', shape: [2, 6], dataOffsets: [24, 72] });
  assert.equal(h.dataStart + Math.max(...Object.values(h.tensors).map((e) => e.dataOffsets[1])), h.fileSize);
  assert.ok('wte.weight' in h.tensors && !('lm_head.weight' in h.tensors));
});

test('tensor values equal the bytes in the file (float32 little-endian)', () => {
  const h = readSafetensorsHeader(tiny);
  const e = h.tensors['wte.weight'];
  const raw = readFileSync(tiny).subarray(h.dataStart + e.dataOffsets[0], h.dataStart + e.dataOffsets[1]);
  const expected = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const { tensors, metadata } = readSafetensors(tiny, { names: ['wte.weight'] });
  assert.equal(metadata.format, 'pt');
  assert.equal(tensors.size, 1);
  const t = tensors.get('wte.weight')!;
  assert.deepEqual(t.shape, [21, 2]);
  assert.deepEqual(Array.from(t.dataSync()), Array.from(expected));
  t.dispose();
});

test('forEachSafetensor streams every tensor in file order and disposes it', () => {
  const before = tf.memory().numTensors;
  const seen: string[] = [];
  let sum = 0;
  forEachSafetensor(tiny, (name, t) => {
    seen.push(name);
    sum += t.size;
  });
  const h = readSafetensorsHeader(tiny);
  const byOffset = Object.entries(h.tensors).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]).map(([n]) => n);
  assert.deepEqual(seen, byOffset);
  assert.equal(sum * 4, h.fileSize - h.dataStart);
  assert.equal(tf.memory().numTensors, before);
});

test('abandoning an iteration leaves no open state and the caller owns yielded tensors', () => {
  for (const { tensor } of iterateSafetensors(tiny)) {
    tensor.dispose();
    break;
  }
  assert.throws(() => readSafetensors(tiny, { names: ['nope'] }), /has no tensor named "nope"/);
});

test('F16, BF16, I64, U8, BOOL convert; raw bytes of packed weights come back unchanged', () => {
  // 1.5 = F16 0x3E00, -2 = 0xC000; 1.5 = BF16 0x3FC0, -2 = 0xC000
  const f16 = new Uint16Array([0x3e00, 0xc000, 0x0001]);
  const bf16 = new Uint16Array([0x3fc0, 0xc000]);
  const i64 = new BigInt64Array([5n, -7n]);
  const u8 = new Uint8Array([0x12, 0xab, 0xff]);
  const bool = new Uint8Array([1, 0]);
  const parts = [f16, bf16, i64, u8, bool].map((a) => new Uint8Array(a.buffer));
  const offs: [number, number][] = [];
  let o = 0;
  for (const p of parts) { offs.push([o, o + p.length]); o += p.length; }
  const p = handMade('dtypes.safetensors', {
    h: { dtype: 'F16', shape: [3], data_offsets: offs[0] },
    b: { dtype: 'BF16', shape: [2], data_offsets: offs[1] },
    l: { dtype: 'I64', shape: [2], data_offsets: offs[2] },
    q: { dtype: 'U8', shape: [3], data_offsets: offs[3] },
    m: { dtype: 'BOOL', shape: [2, 1], data_offsets: offs[4] },
  }, Buffer.concat(parts));
  const { tensors } = readSafetensors(p);
  assert.deepEqual(Array.from(tensors.get('h')!.dataSync()), [1.5, -2, 2 ** -24]);
  assert.deepEqual(Array.from(tensors.get('b')!.dataSync()), [1.5, -2]);
  assert.equal(tensors.get('l')!.dtype, 'int32');
  assert.deepEqual(Array.from(tensors.get('l')!.dataSync()), [5, -7]);
  assert.deepEqual(Array.from(tensors.get('q')!.dataSync()), [0x12, 0xab, 0xff]);
  assert.deepEqual(tensors.get('m')!.shape, [2, 1]);
  tensors.forEach((t) => t.dispose());
  const raw = readSafetensorsRaw(p, 'q');
  assert.equal(raw.dtype, 'U8');
  assert.deepEqual(Array.from(raw.data as Uint8Array), [0x12, 0xab, 0xff]);
  assert.deepEqual(raw.shape, [3]);
});

test('I64 outside the int32 range is refused, naming tensor and file', () => {
  const p = handMade('big.safetensors', { x: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(new BigInt64Array([2n ** 40n]).buffer));
  throwsCheckpoint(() => readSafetensors(p), /"x".*outside the int32 range/, p);
});

test('write then read: bit-identical values, library layout (sorted, padded to 8, metadata first)', () => {
  const a = tf.tensor([[1.25, -3.5e-20, 7], [Math.PI, -0, 1e30]]);
  const b = tf.tensor([3, -4], [2], 'int32');
  const packed = { dtype: 'U8' as const, shape: [4], data: new Uint8Array([0x01, 0x23, 0x45, 0xfe]) };
  const p = join(tmp.dir, 'out', 'w.safetensors');
  writeSafetensors(p, { 'z.weight': a, 'a.ids': b, 'q.packed': packed, 'b.weight': a }, { format: 'pt' });
  const bytes = readFileSync(p);
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0);
  const json = bytes.subarray(8, 8 + n).toString('utf8');
  assert.match(json, /^\{"__metadata__":\{"format":"pt"\},"b\.weight":\{"dtype":"F32","shape":\[2,3\],"data_offsets":\[0,24\]\},"z\.weight":/);
  assert.ok(json.indexOf('"a.ids"') > json.indexOf('"z.weight"') && json.indexOf('"q.packed"') > json.indexOf('"a.ids"'));
  const h = readSafetensorsHeader(p);
  assert.deepEqual(Object.keys(h.tensors), ['b.weight', 'z.weight', 'a.ids', 'q.packed']);
  const back = readSafetensors(p).tensors;
  assert.deepEqual(Array.from(back.get('z.weight')!.dataSync()), Array.from(a.dataSync()));
  assert.ok(Object.is(back.get('z.weight')!.dataSync()[4], -0));
  assert.deepEqual(Array.from(back.get('a.ids')!.dataSync()), [3, -4]);
  assert.deepEqual(Array.from(readSafetensorsRaw(p, 'q.packed').data as Uint8Array), [0x01, 0x23, 0x45, 0xfe]);
  back.forEach((t) => t.dispose());
  a.dispose();
  b.dispose();
});

test('re-writing real HF files (Python safetensors) gives the same bytes: same layout, header and padding', () => {
  for (const [set, file] of [['ckpt-gpt2-fake-nembd2', 'model.safetensors'], ['gpt2-lora-tigrinya', 'adapter_model.safetensors'], ['distilbert-lora-emotion-seqcls', 'adapter_model.safetensors'], ['bloom-prompt-tuning', 'adapter_model.safetensors']]) {
    const src = join(hfFixture(set), file);
    const { tensors, metadata } = readSafetensors(src);
    const out = join(tmp.dir, `rewrite-${set}.safetensors`);
    writeSafetensors(out, tensors, metadata);
    tensors.forEach((t) => t.dispose());
    assert.ok(readFileSync(out).equals(readFileSync(src)), `${set}/${file} re-written byte for byte`);
  }
});

test('F16 and BF16 writing rounds to nearest and reads back', () => {
  const x = tf.tensor([1, 0.1, -65504, 1e-7, 3.140625]);
  const p = join(tmp.dir, 'half.safetensors');
  writeSafetensors(p, { x }, undefined, { floatDtype: 'F16' });
  assert.deepEqual(Array.from(readSafetensorsRaw(p, 'x').data as Uint16Array), [0x3c00, 0x2e66, 0xfbff, 0x0002, 0x4248]);
  writeSafetensors(p, { x }, undefined, { floatDtype: 'BF16' });
  assert.deepEqual(Array.from(readSafetensorsRaw(p, 'x').data as Uint16Array), [0x3f80, 0x3dcd, 0xc780, 0x33d7, 0x4049]);
  x.dispose();
});

test('a raw entry whose bytes do not match dtype x shape is refused', () => {
  assert.throws(() => writeSafetensors(join(tmp.dir, 'bad.safetensors'), { q: { dtype: 'I32', shape: [3], data: new Uint8Array(4) } }), /"q" is I32 \[3\] \(12 bytes\) but its data has 4 bytes/);
});

// Corrupt inputs, each built from the valid fixture, each with one clear error naming the file.
test('truncated file', () => {
  const p = join(tmp.dir, 'trunc.safetensors');
  writeFileSync(p, readFileSync(tiny).subarray(0, 5000));
  throwsCheckpoint(() => readSafetensorsHeader(p), /truncated/, p);
  const q = join(tmp.dir, 'trunc-header.safetensors');
  writeFileSync(q, readFileSync(tiny).subarray(0, 600));
  throwsCheckpoint(() => readSafetensors(q), /truncated: the header claims 1200 bytes/, q);
});

test('bad header JSON', () => {
  const b = Buffer.from(readFileSync(tiny));
  b.write('!', 8 + 1, 'latin1'); // `{"__metadata__"` becomes `{!__metadata__"`
  const p = join(tmp.dir, 'badjson.safetensors');
  writeFileSync(p, b);
  throwsCheckpoint(() => readSafetensorsHeader(p), /header is not valid JSON/, p);
});

test('overlapping and out-of-range offsets', () => {
  const h = readSafetensorsHeader(tiny);
  const data = readFileSync(tiny).subarray(h.dataStart);
  const header: Record<string, unknown> = { __metadata__: h.metadata };
  for (const [n, e] of Object.entries(h.tensors)) header[n] = { dtype: e.dtype, shape: e.shape, data_offsets: e.dataOffsets };
  const ok = handMade('same.safetensors', header, data);
  assert.equal(Object.keys(readSafetensorsHeader(ok).tensors).length, Object.keys(h.tensors).length);

  const overlap = structuredClone(header) as any;
  overlap['h.0.attn.c_attn.weight'].data_offsets = [16, 64];
  const p = handMade('overlap.safetensors', overlap, data);
  throwsCheckpoint(() => readSafetensorsHeader(p), /"h\.0\.attn\.c_attn\.bias" and "h\.0\.attn\.c_attn\.weight" overlap/, p);

  const out = structuredClone(header) as any;
  out['wte.weight'].data_offsets = [data.length, data.length + 168];
  const q = handMade('outside.safetensors', out, data);
  throwsCheckpoint(() => readSafetensorsHeader(q), /"wte\.weight".*run past the data region/, q);

  const size = structuredClone(header) as any;
  size['wte.weight'].shape = [20, 2];
  const r = handMade('size.safetensors', size, data);
  throwsCheckpoint(() => readSafetensorsHeader(r), /"wte\.weight": F32 \[20, 2\] needs 160 bytes/, r);

  const s = handMade('extra.safetensors', header, Buffer.concat([data, Buffer.alloc(4)]));
  throwsCheckpoint(() => readSafetensorsHeader(s), /4 bytes after the last tensor/, s);
});

test('Git LFS pointer', () => {
  const p = join(tmp.dir, 'model.safetensors');
  writeFileSync(p, 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a2146c3b1a1bd4e0a36bd8b0f0d6e3f1e1f3b2a3c4d5e6f708192a3b4c5d6\nsize 548105171\n');
  throwsCheckpoint(() => readSafetensors(p), /is a Git LFS pointer, not a checkpoint: run `git lfs pull`/, p);
});

test('pickle .bin is refused, never executed', () => {
  const p = join(tmp.dir, 'pytorch_model.bin');
  // A protocol-2 pickle that would call os.system if it were unpickled.
  writeFileSync(p, Buffer.from('80025d71002e', 'hex'));
  throwsCheckpoint(() => readSafetensorsHeader(p), /PyTorch pickle checkpoint.*Convert it to safetensors/, p);
  const z = join(tmp.dir, 'weights.safetensors');
  writeFileSync(z, Buffer.concat([Buffer.from('504b0304', 'hex'), Buffer.alloc(40)]));
  throwsCheckpoint(() => readSafetensorsHeader(z), /pickle/, z);
  copyFileSync(tiny, join(tmp.dir, 'fine.safetensors'));
  assert.ok(readSafetensorsHeader(join(tmp.dir, 'fine.safetensors')).headerBytes > 0);
});
