/**
 * A frozen weight matrix [out_features, in_features] held only in its quantized storage: 4-bit
 * (NF4/FP4, block-wise absmax, optionally double-quantized) or 8-bit row-wise. No float32 copy is
 * kept; {@link QuantizedWeight.dequantize} makes a fresh one each time it is called.
 */
import { UserError } from '@peftkit/core';
import { compressAbsmax, decompressAbsmax, type NestedAbsmax } from './quant/double-quant.js';
import { assertBlocksize, codeOf, dequantize4bit, quantize4bit, type QuantType4bit } from './quant/four-bit.js';
import { dequantizeInt8Rowwise, quantizeInt8Rowwise } from './quant/int8.js';

/** The quantization schemes: bitsandbytes' 4-bit types and 8-bit row-wise. */
export type QuantType = QuantType4bit | 'int8';

/** Layout of a dequantized matrix: `out-in` is [out, in] (PyTorch's Linear), `in-out` its transpose. */
export type Layout = 'out-in' | 'in-out';

/** Stored bytes of one quantized weight, by role. */
export interface StorageBytes {
  /** Packed codes (4-bit: ceil(n/2); int8: n). */
  codes: number;
  /** First-level scales: float32 absmax (4 bytes per block), or 1 byte per block when double-quantized; int8: SCB. */
  scales: number;
  /** Second-level scales of double quantization (float32 per 256 blocks). */
  nestedScales: number;
  /** Per-tensor constants: code tables (quant_map, nested_quant_map) and the offset. */
  tables: number;
}

/** A quantized weight matrix. */
export interface QuantizedWeight {
  readonly quantType: QuantType;
  /** [out_features, in_features]. */
  readonly shape: [number, number];
  /** A fresh float32 copy, row-major in `layout` (default [out, in]). */
  dequantize(layout?: Layout): Float32Array;
  storage(): StorageBytes;
  /** What it is, for reports: `{quant_type, blocksize, double_quant}`. */
  describe(): Record<string, unknown>;
}

function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  // Tiled so that both the reads and the writes stay mostly in cache.
  const B = 64;
  for (let r0 = 0; r0 < rows; r0 += B) {
    for (let c0 = 0; c0 < cols; c0 += B) {
      const r1 = Math.min(rows, r0 + B);
      const c1 = Math.min(cols, c0 + B);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) t[c * rows + r] = a[r * cols + c];
    }
  }
  return t;
}

/** Options of {@link Weight4bit.quantize}. */
export interface Quantize4bitOptions {
  quantType: QuantType4bit;
  /** Power of two in [32, 4096]; 64 by default (QLoRA). */
  blocksize?: number;
  /** Double-quantize the absmax values (QLoRA's default). */
  doubleQuant?: boolean;
}

/**
 * A 4-bit weight in bitsandbytes' layout: the [out, in] matrix flattened row-major, packed two codes
 * per byte, with block-wise absmax (float32, or double-quantized).
 */
export class Weight4bit implements QuantizedWeight {
  constructor(
    readonly quantType: QuantType4bit,
    readonly shape: [number, number],
    readonly blocksize: number,
    readonly packed: Uint8Array,
    /** float32 absmax per block, or their double-quantized form. */
    readonly absmax: Float32Array | NestedAbsmax,
    /** The 16 code values (`quant_map`): the type's table, or a checkpoint's own. */
    readonly code: Float32Array = codeOf(quantType),
    /** The dtype the weight had before quantization, as the quant state names it (`float32`, `bfloat16`, ...). */
    readonly dtype = 'float32',
  ) {
    assertBlocksize(blocksize);
    const n = shape[0] * shape[1];
    if (packed.length !== Math.ceil(n / 2)) throw new Error(`Weight4bit: ${packed.length} packed bytes for ${n} values (expected ${Math.ceil(n / 2)})`);
    const blocks = Math.ceil(n / blocksize);
    const have = this.nested ? this.nested.absmax.length : (absmax as Float32Array).length;
    if (have !== blocks) throw new Error(`Weight4bit: ${have} absmax values for ${blocks} blocks of ${blocksize}`);
  }

  /** Quantizes a float32 [out, in] matrix (row-major). */
  static quantize(data: Float32Array, shape: [number, number], opts: Quantize4bitOptions): Weight4bit {
    const blocksize = opts.blocksize ?? 64;
    if (data.length !== shape[0] * shape[1]) throw new Error(`Weight4bit.quantize: ${data.length} values for shape [${shape.join(', ')}]`);
    const { packed, absmax } = quantize4bit(data, opts.quantType, blocksize);
    return new Weight4bit(opts.quantType, shape, blocksize, packed, opts.doubleQuant ?? true ? compressAbsmax(absmax) : absmax);
  }

  /** The double-quantized absmax, when double quantization is on. */
  get nested(): NestedAbsmax | undefined {
    return this.absmax instanceof Float32Array ? undefined : this.absmax;
  }

  /** The float32 absmax per block (decoded from the double quantization when on). */
  blockAbsmax(): Float32Array {
    return this.absmax instanceof Float32Array ? this.absmax : decompressAbsmax(this.absmax);
  }

  dequantize(layout: Layout = 'out-in'): Float32Array {
    const [rows, cols] = this.shape;
    const w = dequantize4bit(this.packed, this.blockAbsmax(), rows * cols, this.blocksize, this.code);
    return layout === 'out-in' ? w : transpose(w, rows, cols);
  }

  storage(): StorageBytes {
    const n = this.nested;
    return {
      codes: this.packed.byteLength,
      scales: n ? n.absmax.byteLength : (this.absmax as Float32Array).byteLength,
      nestedScales: n ? n.nestedAbsmax.byteLength : 0,
      tables: this.code.byteLength + (n ? n.nestedCode.byteLength + 4 : 0),
    };
  }

  describe(): Record<string, unknown> {
    return { quant_type: this.quantType, blocksize: this.blocksize, double_quant: !!this.nested };
  }
}

/** An 8-bit row-wise weight (LLM.int8() storage): `CB` int8 [out, in], `SCB` float32 [out]. */
export class WeightInt8 implements QuantizedWeight {
  readonly quantType = 'int8' as const;
  constructor(
    readonly shape: [number, number],
    readonly cb: Int8Array,
    readonly scb: Float32Array,
  ) {
    if (cb.length !== shape[0] * shape[1]) throw new Error(`WeightInt8: ${cb.length} codes for shape [${shape.join(', ')}]`);
    if (scb.length !== shape[0]) throw new Error(`WeightInt8: ${scb.length} row scales for ${shape[0]} rows`);
  }

  static quantize(data: Float32Array, shape: [number, number]): WeightInt8 {
    const { cb, scb } = quantizeInt8Rowwise(data, shape[0], shape[1]);
    return new WeightInt8(shape, cb, scb);
  }

  dequantize(layout: Layout = 'out-in'): Float32Array {
    const [rows, cols] = this.shape;
    const w = dequantizeInt8Rowwise({ cb: this.cb, scb: this.scb }, rows, cols);
    return layout === 'out-in' ? w : transpose(w, rows, cols);
  }

  storage(): StorageBytes {
    return { codes: this.cb.byteLength, scales: this.scb.byteLength, nestedScales: 0, tables: 0 };
  }

  describe(): Record<string, unknown> {
    return { quant_type: 'int8' };
  }
}

/**
 * Bits per parameter of a set of quantized weights, from their stored bytes: codes, scales and nested
 * scales (the figure the QLoRA paper quotes, 4 + 8/64 + 32/(64·256) ≈ 4.127 for NF4 + DQ at
 * blocksize 64); with `includeTables`, also the per-tensor code tables and offsets.
 * @throws UserError for an empty set.
 */
export function bitsPerParameter(weights: QuantizedWeight[], opts: { includeTables?: boolean } = {}): number {
  let bytes = 0;
  let params = 0;
  for (const w of weights) {
    const s = w.storage();
    bytes += s.codes + s.scales + s.nestedScales + (opts.includeTables ? s.tables : 0);
    params += w.shape[0] * w.shape[1];
  }
  if (!params) throw new UserError('no quantized weights to measure', { hint: 'quantize the model first (a quantize step)' });
  return (8 * bytes) / params;
}
