/**
 * Python's `json.dumps` output (default separators `", "` and `": "`, `ensure_ascii=True`), for the
 * JSON bitsandbytes packs into a uint8 tensor (`bitsandbytes/utils.py` `pack_dict_to_tensor`).
 * Python tells ints from floats; JavaScript does not, so floats are wrapped in {@link PyFloat}.
 */

/** A number Python holds as `float` (printed as `repr(float)`: `0.5`, `1.0`, `1e-05`). */
export class PyFloat {
  constructor(readonly value: number) {}
}

/**
 * `repr(x)` of a Python float: the shortest digits that round-trip (the same digits JavaScript
 * prints), in fixed notation when the decimal exponent is in [-4, 16), else `d.ddde±XX`.
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const sign = x < 0 ? '-' : '';
  const [mant, expStr] = Math.abs(x).toExponential().split('e'); // shortest round-trip digits
  const digits = mant.replace('.', '');
  const exp = Number(expStr); // value = d.ddd × 10^exp
  const decpt = exp + 1; // position of the decimal point after the first `decpt` digits
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
    if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
    return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
  }
  const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
  return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/** A value {@link pyJsonDumps} can write. Plain numbers must be integers; wrap floats in {@link PyFloat}. */
export type PyJson = string | number | boolean | null | PyFloat | PyJson[] | { [k: string]: PyJson };

/** Python's `json.dumps(value)` (keys in insertion order). @throws Error for a non-integer plain number. */
export function pyJsonDumps(value: PyJson): string {
  if (value === null) return 'null';
  if (value instanceof PyFloat) return pyFloatRepr(value.value);
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`pyJsonDumps: ${value} is not an integer; wrap floats in PyFloat`);
    return String(value);
  }
  if (typeof value === 'string') return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (Array.isArray(value)) return `[${value.map(pyJsonDumps).join(', ')}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pyJsonDumps(k)}: ${pyJsonDumps(v)}`).join(', ')}}`;
}
