import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PyFloat, pyFloatRepr, pyJsonDumps } from './python-json.js';

test("pyFloatRepr prints Python's repr(float)", () => {
  // Each right-hand side is what CPython 3 prints for repr(x).
  const cases: [number, string][] = [
    [0, '0.0'], [-0, '-0.0'], [1, '1.0'], [0.5, '0.5'], [0.1, '0.1'], [-2.5, '-2.5'], [100, '100.0'],
    [1e-4, '0.0001'], [1e-5, '1e-05'], [1.5e-5, '1.5e-05'], [2.5e-7, '2.5e-07'], [0.00012345, '0.00012345'],
    [1e16, '1e+16'], [1234567890123456, '1234567890123456.0'], [123456789012345680, '1.2345678901234568e+17'],
    [Math.fround(0.1), '0.10000000149011612'], [Math.fround(0.0123), '0.012299999594688416'], [1e22, '1e+22'], [5e-324, '5e-324'],
  ];
  for (const [x, s] of cases) assert.equal(pyFloatRepr(x), s, `repr(${x})`);
});

test("pyJsonDumps matches json.dumps: ', ' and ': ' separators, ints vs floats, insertion order, ASCII escapes", () => {
  const v = { quant_type: 'nf4', blocksize: 64, dtype: 'bfloat16', shape: [4096, 11008], nested_offset: new PyFloat(0.03125), ok: true, none: null, name: 'é' };
  assert.equal(pyJsonDumps(v), '{"quant_type": "nf4", "blocksize": 64, "dtype": "bfloat16", "shape": [4096, 11008], "nested_offset": 0.03125, "ok": true, "none": null, "name": "\\u00e9"}');
  assert.throws(() => pyJsonDumps(0.5), /wrap floats in PyFloat/);
});
