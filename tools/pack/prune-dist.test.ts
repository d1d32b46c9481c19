import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pruneDist, sourceOf } from './prune-dist.js';

test('sourceOf maps compiled files back to their sources', () => {
  assert.equal(sourceOf('a/b.js'), 'a/b.ts');
  assert.equal(sourceOf('a/b.d.ts'), 'a/b.ts');
  assert.equal(sourceOf('a/b.js.map'), 'a/b.ts');
  assert.equal(sourceOf('a/b.d.ts.map'), 'a/b.ts');
  assert.equal(sourceOf('x.schema.json'), 'x.schema.json');
  assert.equal(sourceOf('README.md'), undefined);
});

test('pruneDist removes outputs whose source is gone, and the folders they leave empty', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-prune-'));
  try {
    const put = (p: string) => {
      mkdirSync(join(dir, p, '..'), { recursive: true });
      writeFileSync(join(dir, p), '');
    };
    for (const p of ['src/index.ts', 'src/a/kept.ts', 'src/cfg.schema.json']) put(p);
    const kept = ['dist/index.js', 'dist/index.d.ts', 'dist/index.js.map', 'dist/a/kept.js', 'dist/cfg.schema.json', 'dist/notes.txt'];
    const gone = ['dist/old.js', 'dist/old.d.ts', 'dist/old.js.map', 'dist/a/renamed.js', 'dist/b/only.js', 'dist/old.schema.json'];
    for (const p of [...kept, ...gone]) put(p);
    assert.deepEqual(pruneDist(dir).sort(), [...gone].sort());
    for (const p of kept) assert.ok(existsSync(join(dir, p)), `${p} was removed`);
    for (const p of gone) assert.ok(!existsSync(join(dir, p)), `${p} is still there`);
    assert.ok(!existsSync(join(dir, 'dist/b')), 'empty folder left behind');
    assert.ok(existsSync(join(dir, 'dist/a')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
