import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { UserError } from '@peftkit/core';
import { hfAdapterSubfolder, pythonJsonDumps, readHfAdapterFolder, writeFolderAtomic } from './hf-adapter-io.js';

test('pythonJsonDumps writes json.dumps(indent=2, sort_keys=True): keys sorted at every depth, non-ASCII escaped', () => {
  assert.equal(pythonJsonDumps({ r: 8, alpha_pattern: {}, b: { z: 1, a: [2, { y: 'é', x: null }] } }),
    '{\n  "alpha_pattern": {},\n  "b": {\n    "a": [\n      2,\n      {\n        "x": null,\n        "y": "\\u00e9"\n      }\n    ],\n    "z": 1\n  },\n  "r": 8\n}');
  assert.equal(hfAdapterSubfolder('/a', 'default'), '/a');
  assert.equal(hfAdapterSubfolder('/a', 'fr'), join('/a', 'fr'));
});

test('writeFolderAtomic replaces a folder whole, and leaves the old one when the writer fails', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-hfio-'));
  try {
    const target = join(dir, 'adapter');
    writeFolderAtomic(target, (tmp) => writeFileSync(join(tmp, 'a.txt'), 'one'));
    writeFolderAtomic(target, (tmp) => writeFileSync(join(tmp, 'b.txt'), 'two'));
    assert.deepEqual(readdirSync(target), ['b.txt']);
    assert.throws(() => writeFolderAtomic(target, (tmp) => {
      writeFileSync(join(tmp, 'c.txt'), 'half');
      throw new Error('disk full');
    }), /disk full/);
    assert.deepEqual(readdirSync(target), ['b.txt']);
    assert.deepEqual(readdirSync(dir), ['adapter'], 'no temporary folder left');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('readHfAdapterFolder: clear errors for a missing config (naming adapter subfolders) and a pickle-only adapter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'peftkit-hfio-'));
  try {
    mkdirSync(join(dir, 'fr'));
    writeFileSync(join(dir, 'fr', 'adapter_config.json'), '{"peft_type": "LORA"}');
    assert.throws(() => readHfAdapterFolder(dir), (e: Error) => e instanceof UserError && /no adapter_config.json/.test(e.message) && /subfolders: fr/.test(e.details.hint!));
    writeFileSync(join(dir, 'fr', 'adapter_model.bin'), Buffer.from([0x80, 0x02]));
    assert.throws(() => readHfAdapterFolder(join(dir, 'fr')), /adapter_model.bin: a PyTorch pickle, which peftkit does not load/);
    writeFileSync(join(dir, 'fr', 'adapter_config.json'), '[1]');
    assert.throws(() => readHfAdapterFolder(join(dir, 'fr')), /must hold a JSON object/);
    assert.ok(existsSync(join(dir, 'fr')) && readFileSync(join(dir, 'fr', 'adapter_config.json'), 'utf8') === '[1]');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
