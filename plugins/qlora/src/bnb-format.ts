/**
 * The serialized form bitsandbytes and transformers give a quantized linear layer's weight in a
 * state dict / safetensors file (`bitsandbytes/nn/modules.py` `Linear4bit._save_to_state_dict`,
 * `bitsandbytes/functional.py` `QuantState.as_dict(packed=True)` / `QuantState.from_dict`,
 * `bitsandbytes/utils.py` `pack_dict_to_tensor`).
 *
 * 4-bit, per layer `<p>` (names relative to the layer):
 *
 * | name | dtype | shape | what |
 * | --- | --- | --- | --- |
 * | `weight` | U8 | [ceil(n/2), 1] | packed codes, first element in the high nibble |
 * | `weight.absmax` | F32 (U8 with DQ) | [blocks] | per-block absmax (or its 8-bit codes) |
 * | `weight.quant_map` | F32 | [16] | the 4-bit code values |
 * | `weight.nested_absmax` | F32 | [ceil(blocks/256)] | DQ only: scale per 256 blocks |
 * | `weight.nested_quant_map` | F32 | [256] | DQ only: the 8-bit dynamic code |
 * | `weight.quant_state.bitsandbytes__nf4` | U8 | [len] | UTF-8 JSON, Python `json.dumps` of `{"quant_type", "blocksize", "dtype", "shape"[, "nested_blocksize", "nested_dtype", "nested_offset"]}` |
 *
 * (`__fp4` for FP4.) 8-bit (LLM.int8(), `Linear8bitLt._save_to_state_dict`): `weight` I8 [out, in],
 * `SCB` F32 [out], `weight_format` U8 [] (0: row-major).
 */
import { UserError } from '@peftkit/core';
import type { RawTensor } from '@peftkit/models';
import { NESTED_BLOCKSIZE, type NestedAbsmax } from './quant/double-quant.js';
import { assertBlocksize, type QuantType4bit } from './quant/four-bit.js';
import { PyFloat, pyJsonDumps, type PyJson } from './python-json.js';
import { Weight4bit, WeightInt8, type QuantizedWeight } from './quantized-weight.js';

/** The keys `QuantState.from_dict` accepts (bitsandbytes `QuantState.valid_qs_keys`). */
const VALID_QS_KEYS = ['absmax', 'quant_map', 'nested_absmax', 'nested_quant_map', 'quant_state', 'quant_type', 'blocksize', 'dtype', 'shape', 'nested_blocksize', 'nested_dtype', 'nested_offset'];

/** The quant-state tensor's name for a 4-bit type: `weight.quant_state.bitsandbytes__nf4`. */
export function quantStateKey(quantType: QuantType4bit): string {
  return `weight.quant_state.bitsandbytes__${quantType}`;
}

/** The quant state's non-tensor items, as bitsandbytes packs them: JSON bytes, byte for byte as Python writes them. */
export function packQuantState(w: Weight4bit): Uint8Array {
  const d: Record<string, PyJson> = { quant_type: w.quantType, blocksize: w.blocksize, dtype: w.dtype, shape: [...w.shape] };
  const n = w.nested;
  if (n) Object.assign(d, { nested_blocksize: n.nestedBlocksize, nested_dtype: 'float32', nested_offset: new PyFloat(n.offset) });
  return new TextEncoder().encode(pyJsonDumps(d));
}

const u8 = (data: Uint8Array, shape: number[]): RawTensor => ({ dtype: 'U8', shape, data });
const f32raw = (data: Float32Array): RawTensor => ({ dtype: 'F32', shape: [data.length], data });

/**
 * The serialized tensors of one quantized weight, keyed relative to its layer (`weight`,
 * `weight.absmax`, ... or `weight`, `SCB`, `weight_format`). Raw entries for `writeSafetensors`;
 * the arrays are the layer's own (do not modify them).
 */
export function serializeWeight(w: QuantizedWeight): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  if (w instanceof WeightInt8) {
    out.set('weight', { dtype: 'I8', shape: [...w.shape], data: w.cb });
    out.set('SCB', f32raw(w.scb));
    out.set('weight_format', u8(new Uint8Array([0]), []));
    return out;
  }
  if (!(w instanceof Weight4bit)) throw new Error(`serializeWeight: unsupported weight ${w.constructor.name}`);
  out.set('weight', u8(w.packed, [w.packed.length, 1]));
  const n = w.nested;
  out.set('weight.absmax', n ? u8(n.absmax, [n.absmax.length]) : f32raw(w.absmax as Float32Array));
  out.set('weight.quant_map', f32raw(w.code));
  if (n) {
    out.set('weight.nested_absmax', f32raw(n.nestedAbsmax));
    out.set('weight.nested_quant_map', f32raw(n.nestedCode));
  }
  const qs = packQuantState(w);
  out.set(quantStateKey(w.quantType), u8(qs, [qs.length]));
  return out;
}

/** How a layer's weight is stored in a checkpoint, judged from the names present. */
export function storedQuantType(has: (name: string) => boolean): QuantType4bit | 'int8' | undefined {
  if (has(quantStateKey('nf4'))) return 'nf4';
  if (has(quantStateKey('fp4'))) return 'fp4';
  if (has('SCB')) return 'int8';
  return undefined;
}

function asF32(t: RawTensor, what: string, where: string): Float32Array {
  if (t.dtype !== 'F32') throw new UserError(`${where}: ${what} is ${t.dtype}, expected F32`, { hint: 'the file was not written by bitsandbytes / transformers, or is damaged' });
  return t.data instanceof Float32Array ? t.data : new Float32Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 4);
}

function asU8(t: RawTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/**
 * Rebuilds a quantized weight from its serialized tensors (`get(name)` with names relative to the
 * layer). The arrays are used as they are (no copy, no re-quantization): saving again writes the
 * same bytes.
 * @param where - `file: layer` for messages.
 * @throws UserError naming the file, the layer and the tensor or quant-state field that is missing
 *   or inconsistent (e.g. packed bytes that do not hold `shape`, an unknown quant_type or blocksize).
 */
export function deserializeWeight(get: (name: string) => RawTensor | undefined, where: string): QuantizedWeight {
  const need = (name: string): RawTensor => {
    const t = get(name);
    if (!t) throw new UserError(`${where}: missing tensor "${name}" of a bitsandbytes-quantized layer`, { hint: 'the checkpoint is incomplete: re-download or re-save it' });
    return t;
  };
  const qt = storedQuantType((n) => get(n) !== undefined);
  if (qt === 'int8') {
    const w = need('weight');
    if (w.dtype !== 'I8' || w.shape.length !== 2) throw new UserError(`${where}: weight is ${w.dtype} [${w.shape.join(', ')}], expected I8 [out, in] for an 8-bit layer (it has SCB)`);
    const fmt = get('weight_format');
    if (fmt && asU8(fmt)[0] !== 0) throw new UserError(`${where}: weight_format ${asU8(fmt)[0]} is not row-major (0)`, { hint: 'save the model with a recent bitsandbytes, which writes row-major weights' });
    const cb = new Int8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength);
    return new WeightInt8([w.shape[0], w.shape[1]], cb, asF32(need('SCB'), 'SCB', where));
  }
  if (!qt) throw new UserError(`${where}: no quant state (weight.quant_state.bitsandbytes__nf4 / __fp4, or SCB): not a bitsandbytes-quantized layer`);

  const qsName = quantStateKey(qt);
  let qs: Record<string, unknown>;
  try {
    qs = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(asU8(need(qsName))));
  } catch (e) {
    throw new UserError(`${where}: ${qsName} is not UTF-8 JSON (${(e as Error).message})`, { hint: 'the checkpoint is damaged: re-download or re-save it' });
  }
  const field = (k: string) => `${where}: ${qsName}: /${k}`;
  for (const k of Object.keys(qs)) if (!VALID_QS_KEYS.includes(k)) throw new UserError(`${field(k)}: unknown quant-state field`, { hint: `bitsandbytes knows ${VALID_QS_KEYS.join(', ')}` });
  if (qs.quant_type !== qt) throw new UserError(`${field('quant_type')}: "${String(qs.quant_type)}" does not match the tensor name (${qt})`);
  const blocksize = qs.blocksize as number;
  assertBlocksize(blocksize, `${field('blocksize')}:`);
  const shape = qs.shape as number[];
  if (!Array.isArray(shape) || shape.length !== 2 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new UserError(`${field('shape')}: ${JSON.stringify(shape)} is not a 2-D shape [out, in]; only linear layers are supported`);
  }
  const n = shape[0] * shape[1];
  const packedT = need('weight');
  if (packedT.dtype !== 'U8') {
    throw new UserError(`${where}: weight is stored as ${packedT.dtype} (bnb_4bit_quant_storage); only uint8 storage is supported`, { hint: 'save the model with bnb_4bit_quant_storage=torch.uint8 (the default)' });
  }
  const packed = asU8(packedT);
  if (packed.length !== Math.ceil(n / 2)) throw new UserError(`${where}: weight has ${packed.length} bytes, but shape [${shape.join(', ')}] needs ceil(${n} / 2) = ${Math.ceil(n / 2)}`);
  const code = asF32(need('weight.quant_map'), 'weight.quant_map', where);
  if (code.length !== 16) throw new UserError(`${where}: weight.quant_map has ${code.length} values, expected 16`);
  const blocks = Math.ceil(n / blocksize);
  const absmaxT = need('weight.absmax');
  let absmax: Float32Array | NestedAbsmax;
  if (get('weight.nested_absmax') !== undefined || qs.nested_offset !== undefined) {
    for (const k of ['nested_blocksize', 'nested_offset', 'nested_dtype']) if (qs[k] === undefined) throw new UserError(`${field(k)}: missing (the layer has weight.nested_absmax)`);
    if (qs.nested_blocksize !== NESTED_BLOCKSIZE) throw new UserError(`${field('nested_blocksize')}: ${String(qs.nested_blocksize)}; bitsandbytes double-quantizes in blocks of ${NESTED_BLOCKSIZE}`);
    if (qs.nested_dtype !== 'float32') throw new UserError(`${field('nested_dtype')}: "${String(qs.nested_dtype)}"; expected "float32"`);
    if (typeof qs.nested_offset !== 'number') throw new UserError(`${field('nested_offset')}: not a number`);
    if (absmaxT.dtype !== 'U8') throw new UserError(`${where}: weight.absmax is ${absmaxT.dtype}; with double quantization it holds uint8 codes`);
    const nestedAbsmax = asF32(need('weight.nested_absmax'), 'weight.nested_absmax', where);
    const nestedCode = asF32(need('weight.nested_quant_map'), 'weight.nested_quant_map', where);
    if (nestedCode.length !== 256) throw new UserError(`${where}: weight.nested_quant_map has ${nestedCode.length} values, expected 256`);
    if (nestedAbsmax.length !== Math.ceil(blocks / NESTED_BLOCKSIZE)) throw new UserError(`${where}: weight.nested_absmax has ${nestedAbsmax.length} values for ${blocks} blocks (expected ${Math.ceil(blocks / NESTED_BLOCKSIZE)})`);
    absmax = { absmax: asU8(absmaxT), nestedAbsmax, nestedCode, offset: Math.fround(qs.nested_offset), nestedBlocksize: NESTED_BLOCKSIZE };
  } else {
    absmax = asF32(absmaxT, 'weight.absmax', where);
  }
  const have = absmax instanceof Float32Array ? absmax.length : absmax.absmax.length;
  if (have !== blocks) throw new UserError(`${where}: weight.absmax has ${have} values, but ${n} values in blocks of ${blocksize} make ${blocks}`);
  return new Weight4bit(qt, [shape[0], shape[1]], blocksize, packed, absmax, code, typeof qs.dtype === 'string' ? qs.dtype : 'float32');
}
