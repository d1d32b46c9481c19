import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fsyncDir, writeFileAtomic, writeJsonAtomic } from './atomic.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('writes a string as UTF-8 and bytes as they are, creating parent folders', () => {
  const text = join(dir, 'a', 'b', 'text.txt');
  writeFileAtomic(text, 'café\n');
  assert.deepEqual([...readFileSync(text)], [0x63, 0x61, 0x66, 0xc3, 0xa9, 0x0a]);
  const bytes = join(dir, 'bytes.bin');
  writeFileAtomic(bytes, new Uint8Array([0, 255, 7]));
  assert.deepEqual([...readFileSync(bytes)], [0, 255, 7]);
});

test('writes chunks in the order they are produced', () => {
  const file = join(dir, 'chunks.bin');
  const produced: number[] = [];
  writeFileAtomic(file, (function* () {
    for (let i = 0; i < 3; i++) {
      produced.push(i);
      yield Uint8Array.from({ length: i + 1 }, () => 10 + i);
    }
  })());
  assert.deepEqual(produced, [0, 1, 2]);
  assert.deepEqual([...readFileSync(file)], [10, 11, 11, 12, 12, 12]);
});

test('a chunk source that throws leaves the old file and no temporary file', () => {
  const sub = mkdtempSync(join(dir, 'fail-'));
  const file = join(sub, 'model.safetensors');
  writeFileSync(file, 'old');
  assert.throws(() => writeFileAtomic(file, (function* () {
    yield new Uint8Array([1, 2, 3]);
    throw new Error('tensor 2 cannot be stored');
  })()), /tensor 2 cannot be stored/);
  assert.equal(readFileSync(file, 'utf8'), 'old');
  assert.deepEqual(readdirSync(sub), ['model.safetensors']);
});

test('writeJsonAtomic writes two-space JSON and a newline, replacing the file', () => {
  const file = join(dir, 'x.json');
  writeJsonAtomic(file, { a: 1 });
  writeJsonAtomic(file, { b: [2] });
  assert.equal(readFileSync(file, 'utf8'), '{\n  "b": [\n    2\n  ]\n}\n');
});

test('fsyncDir flushes an existing folder and ignores one it cannot open', () => {
  assert.doesNotThrow(() => fsyncDir(dir));
  assert.doesNotThrow(() => fsyncDir(join(dir, 'no-such-folder')));
});
