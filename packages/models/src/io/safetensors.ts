/**
 * Reading and writing the safetensors format (huggingface/safetensors, `safetensors/src/tensor.rs`):
 * an 8-byte little-endian header length N, N bytes of JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}`, then the
 * data region, tensors row-major and contiguous, offsets relative to the start of that region.
 *
 * Files are read tensor by tensor from the file descriptor: the whole file is never held in one
 * buffer beside the tensors made from it.
 */
import * as tf from '@tensorflow/tfjs';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { UserError, writeFileAtomic } from '@peftkit/core';

/** A checkpoint file that cannot be read as it is: names the file and says what to do. */
export class CheckpointError extends UserError {
  constructor(message: string, details: { file?: string; pointer?: string; hint?: string } = {}) {
    super(message, details);
    this.name = 'CheckpointError';
  }
}

/** Element types of the safetensors format. */
export type SafetensorsDtype =
  | 'BOOL' | 'U8' | 'I8' | 'F8_E5M2' | 'F8_E4M3' | 'I16' | 'U16' | 'F16' | 'BF16'
  | 'I32' | 'U32' | 'F32' | 'F64' | 'I64' | 'U64';

/**
 * Bytes per element, in the order of the Rust crate's `Dtype` enum (which is also the order its
 * writer sorts by, descending, to keep every tensor aligned).
 */
const DTYPE_SIZE: Record<SafetensorsDtype, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4, F64: 8, I64: 8, U64: 8,
};
const DTYPE_RANK = Object.keys(DTYPE_SIZE) as SafetensorsDtype[];

/** One tensor's header entry. `dataOffsets` are in bytes from the start of the data region. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  dataOffsets: [number, number];
}

/** A validated safetensors header. */
export interface SafetensorsHeader {
  /** N, the length in bytes of the JSON header (padding included). */
  headerBytes: number;
  tensors: Record<string, SafetensorsEntry>;
  /** `__metadata__`, `{}` when absent. */
  metadata: Record<string, string>;
  /** Byte position of the data region in the file: 8 + N. */
  dataStart: number;
  /** File size in bytes. */
  fileSize: number;
}

/** A tensor's bytes as stored (for packed 4-bit weights and other dtypes tfjs lacks). */
export interface RawTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  data: Uint8Array | Int8Array | Int32Array | Uint32Array | Float32Array | Float64Array | Int16Array | Uint16Array | BigInt64Array | BigUint64Array;
}

const MAX_HEADER = 100_000_000; // the Rust crate's own limit
const LFS_MAGIC = 'version https://git-lfs';

function fail(file: string, message: string, hint?: string): never {
  throw new CheckpointError(`${file}: ${message}`, { file, hint });
}

function readExactly(fd: number, buf: Uint8Array, position: number, file: string): void {
  let off = 0;
  while (off < buf.length) {
    const n = readSync(fd, buf, off, buf.length - off, position + off);
    if (n === 0) fail(file, `file is truncated: expected ${buf.length} bytes at byte ${position}, the file ended after ${off}`, 're-download or re-save the checkpoint');
    off += n;
  }
}

/**
 * Refuses files that are not safetensors before anything is parsed: Git LFS pointers and PyTorch
 * pickles (`.bin`, `.pt`, `.pth`, `.ckpt`, or pickle / torch-zip bytes). A pickle can run arbitrary
 * code when loaded, so it is never executed, only named.
 * @throws CheckpointError naming the file.
 */
export function refuseNonSafetensors(file: string, head: Uint8Array): void {
  const text = Buffer.from(head.subarray(0, LFS_MAGIC.length)).toString('latin1');
  if (text === LFS_MAGIC) {
    fail(file, 'is a Git LFS pointer, not a checkpoint: run `git lfs pull` in its repository (or download the file itself) and try again',
      'git lfs install && git lfs pull');
  }
  const isPickle = head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5;
  const isTorchZip = head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04;
  if (/\.(bin|pt|pth|ckpt|pkl)$/i.test(file) || isPickle || isTorchZip) {
    fail(file, 'is a PyTorch pickle checkpoint; peftkit does not load pickles (they can execute code). Convert it to safetensors first, ' +
      'e.g. in Python: `from safetensors.torch import save_file; save_file(torch.load(path, weights_only=True), "model.safetensors")`, ' +
      'or `model.save_pretrained(folder, safe_serialization=True)`',
      'convert to safetensors');
  }
}

/** Validates the parsed header JSON against the file's size. */
function parseHeader(file: string, json: string, headerBytes: number, fileSize: number): SafetensorsHeader {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (e) {
    fail(file, `the header is not valid JSON (${(e as Error).message}); the file is corrupt`, 're-download or re-save the checkpoint');
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) fail(file, 'the header is not a JSON object; the file is corrupt');
  const dataStart = 8 + headerBytes;
  const dataLen = fileSize - dataStart;
  const tensors: Record<string, SafetensorsEntry> = {};
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(raw as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v) || Object.values(v as object).some((x) => typeof x !== 'string')) {
        fail(file, 'header field /__metadata__ must map strings to strings');
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const where = `tensor "${name}"`;
    if (!e || typeof e !== 'object') fail(file, `${where}: header entry is not an object`);
    if (typeof e.dtype !== 'string' || !(e.dtype in DTYPE_SIZE)) fail(file, `${where}: unknown dtype ${JSON.stringify(e.dtype)} (known: ${DTYPE_RANK.join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(file, `${where}: shape must be a list of non-negative integers`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      fail(file, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    const dtype = e.dtype as SafetensorsDtype;
    const shape = e.shape as number[];
    const expected = shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
    if (off[1] - off[0] !== expected) {
      fail(file, `${where}: ${dtype} [${shape.join(', ')}] needs ${expected} bytes but data_offsets [${off[0]}, ${off[1]}] span ${off[1] - off[0]}; the file is corrupt`);
    }
    if (off[1] > dataLen) {
      fail(file, `${where}: data_offsets [${off[0]}, ${off[1]}] run past the data region (${Math.max(dataLen, 0)} bytes); the file is truncated or corrupt`,
        're-download or re-save the checkpoint');
    }
    tensors[name] = { dtype, shape, dataOffsets: [off[0], off[1]] };
  }
  // Contiguous, non-overlapping coverage of the whole data region, as the Rust crate's `validate`.
  const sorted = Object.entries(tensors).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let pos = 0;
  let prev = '';
  for (const [name, e] of sorted) {
    const [b, end] = e.dataOffsets;
    if (b < pos) fail(file, `tensors "${prev}" and "${name}" overlap (byte ${b} < ${pos}); the file is corrupt`);
    if (b > pos) fail(file, `bytes ${pos} to ${b} of the data region belong to no tensor (before "${name}"); the file is corrupt`);
    pos = end;
    prev = name;
  }
  if (pos !== dataLen) {
    fail(file, pos < dataLen
      ? `the data region has ${dataLen - pos} bytes after the last tensor; the file is corrupt`
      : `the file is truncated: the tensors need ${pos} bytes of data, the file holds ${dataLen}`, 're-download or re-save the checkpoint');
  }
  return { headerBytes, tensors, metadata, dataStart, fileSize };
}

function readHeaderFd(fd: number, file: string): SafetensorsHeader {
  const fileSize = fstatSync(fd).size;
  const head = new Uint8Array(Math.min(fileSize, 64));
  readExactly(fd, head, 0, file);
  refuseNonSafetensors(file, head);
  if (fileSize < 8) fail(file, `file is truncated: ${fileSize} bytes, shorter than the 8-byte header length`, 're-download or re-save the checkpoint');
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER)) fail(file, `header length ${n} is not plausible (limit ${MAX_HEADER}); this is not a safetensors file or it is corrupt`);
  const headerBytes = Number(n);
  if (8 + headerBytes > fileSize) fail(file, `file is truncated: the header claims ${headerBytes} bytes, the file has ${fileSize - 8} after the length`, 're-download or re-save the checkpoint');
  const buf = new Uint8Array(headerBytes);
  readExactly(fd, buf, 8, file);
  if (buf[0] !== 0x7b /* { */) fail(file, 'the header does not start with "{"; this is not a safetensors file or it is corrupt');
  return parseHeader(file, Buffer.from(buf).toString('utf8'), headerBytes, fileSize);
}

/**
 * Reads and validates a safetensors header: 8-byte little-endian length, JSON object, known dtypes,
 * `dtype size × Π shape == end − begin`, offsets inside the data region, non-overlapping and covering
 * it contiguously, data region ending exactly at the end of the file.
 * @throws CheckpointError (naming the file) for LFS pointers, pickles, truncated files, bad JSON, bad offsets.
 */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  const fd = openFile(path);
  try {
    return readHeaderFd(fd, path);
  } finally {
    closeSync(fd);
  }
}

function openFile(path: string): number {
  try {
    return openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail(path, 'file not found');
    if (code === 'EISDIR') fail(path, 'is a folder, not a safetensors file');
    throw e;
  }
}

/** Half precision (IEEE 754 binary16) bits to float32. */
function f16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    out[i] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return out;
}

/** bfloat16 bits are the top half of a float32's bits. */
function bf16ToF32(src: Uint16Array): Float32Array {
  const bits = new Uint32Array(src.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return new Float32Array(bits.buffer);
}

/** float32 to binary16 bits, round to nearest even. */
function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) { out[i] = sign | 0x7c00 | (mant ? 0x200 : 0); continue; }
    let e = exp - 127 + 15;
    if (e >= 31) { out[i] = sign | 0x7c00; continue; }
    if (e <= 0) {
      if (e < -10) { out[i] = sign; continue; }
      mant |= 0x800000;
      const shift = 14 - e;
      let h = mant >>> shift;
      const rem = mant & ((1 << shift) - 1);
      const half = 1 << (shift - 1);
      if (rem > half || (rem === half && h & 1)) h++;
      out[i] = sign | h;
      continue;
    }
    let h = (e << 10) | (mant >>> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++;
    out[i] = sign | h;
  }
  return out;
}

/** float32 to bfloat16 bits, round to nearest even (as `torch.Tensor.to(torch.bfloat16)`). */
function f32ToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const u = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) {
    const x = u[i];
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) { out[i] = (x >>> 16) | 0x40; continue; }
    out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A typed view of a tensor's stored bytes (`bytes` is a fresh, aligned buffer). */
function typedView(dtype: SafetensorsDtype, bytes: Uint8Array): RawTensor['data'] {
  if (!LITTLE_ENDIAN && DTYPE_SIZE[dtype] > 1) throw new Error('safetensors: big-endian hosts are not supported');
  const b = bytes.buffer;
  const o = bytes.byteOffset;
  const n = bytes.byteLength / DTYPE_SIZE[dtype];
  switch (dtype) {
    case 'F32': return new Float32Array(b, o, n);
    case 'F64': return new Float64Array(b, o, n);
    case 'I32': return new Int32Array(b, o, n);
    case 'U32': return new Uint32Array(b, o, n);
    case 'I16': return new Int16Array(b, o, n);
    case 'U16': case 'F16': case 'BF16': return new Uint16Array(b, o, n);
    case 'I64': return new BigInt64Array(b, o, n);
    case 'U64': return new BigUint64Array(b, o, n);
    case 'I8': return new Int8Array(b, o, n);
    default: return bytes; // U8, BOOL, F8_*
  }
}

/**
 * Converts stored bytes to a tfjs tensor: F32/F16/BF16/F64 to float32; I64/I32/U32/I16/U16/I8/U8/BOOL
 * to int32 (64-bit and U32 values checked to fit int32). FP8 is refused.
 */
function toTensor(file: string, name: string, entry: SafetensorsEntry, bytes: Uint8Array): tf.Tensor {
  const { dtype, shape } = entry;
  const v = typedView(dtype, bytes);
  switch (dtype) {
    case 'F32': return tf.tensor(v as Float32Array, shape, 'float32');
    case 'F16': return tf.tensor(f16ToF32(v as Uint16Array), shape, 'float32');
    case 'BF16': return tf.tensor(bf16ToF32(v as Uint16Array), shape, 'float32');
    case 'F64': return tf.tensor(Float32Array.from(v as Float64Array), shape, 'float32');
    case 'I32': return tf.tensor(v as Int32Array, shape, 'int32');
    case 'I16': case 'U16': case 'I8': case 'U8': case 'BOOL':
      return tf.tensor(Int32Array.from(v as ArrayLike<number>), shape, 'int32');
    case 'U32': case 'I64': case 'U64': {
      const out = new Int32Array(v.length);
      for (let i = 0; i < v.length; i++) {
        const x = (v as ArrayLike<number | bigint>)[i];
        if (x > 2147483647 || x < -2147483648) {
          fail(file, `tensor "${name}" (${dtype}) holds ${x} at element ${i}, outside the int32 range tfjs computes with`);
        }
        out[i] = Number(x);
      }
      return tf.tensor(out, shape, 'int32');
    }
    default:
      fail(file, `tensor "${name}" has dtype ${dtype}, which cannot be converted to a tfjs tensor; read it with readSafetensorsRaw`);
  }
}

/** Options of {@link iterateSafetensors} and friends. */
export interface ReadSafetensorsOptions {
  /** Only these tensors (in this order); absent: all, in file order. A name the file lacks throws. */
  names?: string[];
}

function selectEntries(path: string, header: SafetensorsHeader, names?: string[]): [string, SafetensorsEntry][] {
  if (!names) return Object.entries(header.tensors).sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
  const missing = names.filter((n) => !(n in header.tensors));
  if (missing.length) fail(path, `has no tensor named ${missing.map((m) => `"${m}"`).join(', ')}`);
  return names.map((n) => [n, header.tensors[n]]);
}

/**
 * Yields the tensors of a safetensors file one at a time, each read on its own from the file
 * descriptor (memory: one tensor's bytes at a time). The caller owns (and disposes) each tensor.
 * The file is closed when the iteration ends or is abandoned (`break`, `return`, a throw).
 * @throws CheckpointError for a bad file (see {@link readSafetensorsHeader}) or a dtype tfjs cannot hold.
 */
export function* iterateSafetensors(path: string, opts: ReadSafetensorsOptions = {}): Generator<{ name: string; entry: SafetensorsEntry; tensor: tf.Tensor }, void, undefined> {
  const fd = openFile(path);
  try {
    const header = readHeaderFd(fd, path);
    for (const [name, entry] of selectEntries(path, header, opts.names)) {
      const bytes = new Uint8Array(entry.dataOffsets[1] - entry.dataOffsets[0]);
      readExactly(fd, bytes, header.dataStart + entry.dataOffsets[0], path);
      yield { name, entry, tensor: toTensor(path, name, entry, bytes) };
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `cb` with each tensor of a safetensors file, streaming (one tensor in memory at a time);
 * the tensor is disposed when `cb` returns, so `cb` copies (e.g. `variable.assign`) what it keeps.
 * Synchronous: `cb` must not be async.
 * @throws CheckpointError for a bad file; whatever `cb` throws.
 */
export function forEachSafetensor(path: string, cb: (name: string, tensor: tf.Tensor, entry: SafetensorsEntry) => void, opts: ReadSafetensorsOptions = {}): void {
  for (const { name, entry, tensor } of iterateSafetensors(path, opts)) {
    try {
      cb(name, tensor, entry);
    } finally {
      tensor.dispose();
    }
  }
}

/**
 * Reads a safetensors file (or the tensors named in `opts.names`) into tfjs tensors: floats as
 * float32, integers and BOOL as int32. The caller disposes the tensors.
 * @throws CheckpointError for a bad file (see {@link readSafetensorsHeader}).
 */
export function readSafetensors(path: string, opts: ReadSafetensorsOptions = {}): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
  const metadata = readSafetensorsHeader(path).metadata;
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const { name, tensor } of iterateSafetensors(path, opts)) tensors.set(name, tensor);
  } catch (e) {
    for (const t of tensors.values()) t.dispose();
    throw e;
  }
  return { tensors, metadata };
}

/**
 * One tensor's stored bytes, unconverted: for packed 4-bit weights (U8) and dtypes tfjs lacks.
 * `data` is a typed array matching `dtype` (Uint8Array for U8/BOOL/FP8, Uint16Array for F16/BF16,
 * BigInt64Array for I64, ...) over a fresh buffer; `bytes` is the same memory as a Uint8Array.
 * @throws CheckpointError when the file is bad or has no tensor called `name`.
 */
export function readSafetensorsRaw(path: string, name: string): RawTensor & { bytes: Uint8Array } {
  const fd = openFile(path);
  try {
    const header = readHeaderFd(fd, path);
    const [[, entry]] = selectEntries(path, header, [name]);
    const bytes = new Uint8Array(entry.dataOffsets[1] - entry.dataOffsets[0]);
    readExactly(fd, bytes, header.dataStart + entry.dataOffsets[0], path);
    return { dtype: entry.dtype, shape: [...entry.shape], data: typedView(entry.dtype, bytes), bytes };
  } finally {
    closeSync(fd);
  }
}

/** What {@link writeSafetensors} accepts per name: a tfjs tensor, or raw data with its stored dtype. */
export type WritableTensor = tf.Tensor | RawTensor;

/** Options of {@link writeSafetensors}. */
export interface WriteSafetensorsOptions {
  /** Stored dtype of float tfjs tensors (default F32). F16/BF16 round to nearest even. */
  floatDtype?: 'F32' | 'F16' | 'BF16';
}

const isRaw = (t: WritableTensor): t is RawTensor => !(t instanceof tf.Tensor);

/**
 * Downloads the values of every tensor in `tensors` to the host (tfjs keeps them with the tensor), so that a
 * later synchronous read such as {@link writeSafetensors}'s needs no read-back from the device. Call it before
 * writing tensors that may live on the WebGPU backend, which in Node can only read asynchronously. A no-op on
 * backends whose tensors are on the host (WASM, CPU); raw arrays are skipped.
 */
export async function readToHost(tensors: Iterable<WritableTensor>): Promise<void> {
  await Promise.all([...tensors].filter((t): t is tf.Tensor => !isRaw(t)).map((t) => t.data()));
}

/** Byte-wise comparison of names, as Rust's `String::cmp`. */
function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function storedBytes(name: string, t: WritableTensor, floatDtype: 'F32' | 'F16' | 'BF16'): () => Uint8Array {
  if (isRaw(t)) {
    return () => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  }
  return () => {
    if (t.dtype === 'float32') {
      const f = t.dataSync() as Float32Array;
      const out = floatDtype === 'F32' ? f : floatDtype === 'F16' ? f32ToF16(f) : f32ToBf16(f);
      return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    }
    if (t.dtype === 'int32') {
      const f = t.dataSync() as Int32Array;
      return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
    }
    if (t.dtype === 'bool') return Uint8Array.from(t.dataSync() as Uint8Array);
    throw new Error(`writeSafetensors: tensor "${name}" has dtype ${t.dtype}, which safetensors cannot store`);
  };
}

/**
 * Writes tensors to a safetensors file as the Rust/Python library lays it out: tensors sorted by
 * descending dtype alignment then by name, the header (`__metadata__` first) padded with spaces to a
 * multiple of 8 bytes. Float tensors are stored as `opts.floatDtype` (F32), int32 as I32, bool as
 * BOOL; raw entries `{dtype, shape, data}` are written as given (e.g. U8 packed 4-bit weights).
 *
 * Written atomically with `writeFileAtomic` from @peftkit/core (temporary file in the same folder,
 * fsync, rename), streamed tensor by tensor so the file is never assembled in one buffer.
 * @throws Error for a raw entry whose byte length does not match dtype × shape.
 */
export function writeSafetensors(path: string, tensors: Map<string, WritableTensor> | Record<string, WritableTensor>, metadata?: Record<string, string>, opts: WriteSafetensorsOptions = {}): void {
  const floatDtype = opts.floatDtype ?? 'F32';
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const items = entries.map(([name, t]) => {
    let dtype: SafetensorsDtype;
    if (isRaw(t)) {
      dtype = t.dtype;
      if (!(dtype in DTYPE_SIZE)) throw new Error(`writeSafetensors: tensor "${name}" has unknown dtype ${dtype}`);
      const need = t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype];
      if (t.data.byteLength !== need) throw new Error(`writeSafetensors: tensor "${name}" is ${dtype} [${t.shape.join(', ')}] (${need} bytes) but its data has ${t.data.byteLength} bytes`);
    } else {
      dtype = t.dtype === 'float32' ? floatDtype : t.dtype === 'int32' ? 'I32' : t.dtype === 'bool' ? 'BOOL' : (() => { throw new Error(`writeSafetensors: tensor "${name}" has dtype ${t.dtype}, which safetensors cannot store`); })();
    }
    const shape = [...t.shape];
    return { name, dtype, shape, nbytes: shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[dtype], bytes: storedBytes(name, t, floatDtype) };
  });
  items.sort((a, b) => DTYPE_RANK.indexOf(b.dtype) - DTYPE_RANK.indexOf(a.dtype) || compareNames(a.name, b.name));
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = Object.fromEntries(Object.entries(metadata).sort((a, b) => compareNames(a[0], b[0])));
  let offset = 0;
  for (const it of items) {
    header[it.name] = { dtype: it.dtype, shape: it.shape, data_offsets: [offset, offset + it.nbytes] };
    offset += it.nbytes;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  writeFileAtomic(path, (function* () {
    yield len;
    yield json;
    for (const it of items) yield it.bytes();
  })());
}
