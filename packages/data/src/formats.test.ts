import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as aq from 'arquero';
import { UserError } from '@peftkit/core';
import { detectFormat, readTable } from './formats.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-formats-'));
function file(name: string, content: string | Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

test('JSONL: one object per line, blank lines skipped, rows located by line', () => {
  const p = file('a.jsonl', '{"text":"one","n":1}\n\n{"text":"two","extra":true}\r\n');
  const t = readTable(p);
  assert.equal(t.format, 'jsonl');
  assert.deepEqual(t.table.columnNames(), ['text', 'n', 'extra']);
  assert.deepEqual(t.table.array('text'), ['one', 'two']);
  assert.equal(t.locate(1), 'line 3');
});

test('JSONL: a malformed line is reported with its file and line number', () => {
  const p = file('bad.jsonl', '{"text":"ok"}\n{"text": oops}\n');
  assert.throws(() => readTable(p, 'auto', '/files/train'), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.match(e.message, /bad\.jsonl: line 2: invalid JSON/);
    assert.equal(e.details.pointer, '/files/train');
    return true;
  });
  assert.throws(() => readTable(file('arr.jsonl', '{"a":1}\n[1,2]\n')), /arr\.jsonl: line 2: expected a JSON object, got an array/);
});

test('JSON: an array of records or {"data": [...]}; a bad record is named by its pointer', () => {
  assert.deepEqual(readTable(file('a.json', '[{"text":"x"},{"text":"y"}]')).table.array('text'), ['x', 'y']);
  const t = readTable(file('b.json', '{"data":[{"text":"x"}]}'));
  assert.equal(t.locate(0), 'record /data/0');
  assert.throws(() => readTable(file('c.json', '[{"text":"x"}, 3]')), /c\.json: record \/1: expected a JSON object, got a number/);
  assert.throws(() => readTable(file('d.json', '{"text":"x"}')), /expected an array of records/);
});

test('CSV: quoted fields with commas, quotes and newlines; values stay strings; lines located', () => {
  const p = file('a.csv', 'text,label\n"hello, ""you""\nthere",1\n\nplain,0\n');
  const t = readTable(p);
  assert.deepEqual(t.table.objects(), [{ text: 'hello, "you"\nthere', label: '1' }, { text: 'plain', label: '0' }]);
  assert.equal(t.locate(0), 'line 2');
  assert.equal(t.locate(1), 'line 5');
});

test('CSV: wrong field counts and unterminated quotes are errors with line numbers', () => {
  assert.throws(() => readTable(file('b.csv', 'text,label\na,1\nb,2,3\n')), /b\.csv: line 3: record has 3 fields, the header has 2/);
  assert.throws(() => readTable(file('c.csv', 'text,label\n"a,1\nb,2\n')), /c\.csv: line 2: unterminated quoted field/);
  assert.throws(() => readTable(file('d.csv', 'text,label\n"a"x,1\n')), /d\.csv: line 2: unexpected text after a closing quote/);
});

test('TSV', () => {
  const t = readTable(file('a.tsv', 'text\tlabel\na, b\tham\n'));
  assert.equal(t.format, 'tsv');
  assert.deepEqual(t.table.objects(), [{ text: 'a, b', label: 'ham' }]);
});

test('Arrow IPC (.arrow / .feather), list-of-struct columns included', () => {
  const src = aq.from([
    { text: 'a', label: 'ham', messages: [{ role: 'user', content: 'hi' }] },
    { text: 'b', label: 'spam', messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] },
  ]);
  const bytes = aq.toArrowIPC(src);
  for (const name of ['a.arrow', 'a.feather']) {
    const t = readTable(file(name, bytes));
    assert.equal(t.format, 'arrow');
    assert.deepEqual(t.table.array('label'), ['ham', 'spam']);
    assert.deepEqual(t.table.get('messages', 1), [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }]);
  }
  assert.throws(() => readTable(file('junk.arrow', 'not arrow')), /junk\.arrow: file: not a readable Arrow IPC file/);
});

test('format detection and missing files', () => {
  assert.equal(detectFormat('x/y.NDJSON'), 'jsonl');
  assert.throws(() => detectFormat('x.parquet'), /cannot tell the file format from the extension "\.parquet"/);
  assert.throws(() => readTable(join(dir, 'nope.jsonl')), /nope\.jsonl: no such file/);
  // An explicit format overrides the extension.
  assert.deepEqual(readTable(file('rows.txt', '{"text":"x"}\n'), 'jsonl').table.array('text'), ['x']);
});
