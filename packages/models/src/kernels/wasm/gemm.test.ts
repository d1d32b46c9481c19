import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import '../../index.js'; // registers the kernels on backend ready
import { matMulReference } from '../reference/matmul.js';
import { gemmBinary, guidedChunks, heapGemm, requestedWasmGemm, wasmGemmInfo, WASM_GEMM_ENV } from './gemm.js';
import { FEW_ROWS, KC, MC, NC, SCRATCH_BYTES } from './gemm-wat.js';
import type { WasmHeapBackend } from './heap.js';

// Two threads where the machine allows them, so that the split between threads is exercised.
process.env.PEFTKIT_WASM_THREADS ??= '2';

const vals = (n: number, seed: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * (1 + (i % 5) / 4));

/** |got − ref| ≤ tol · (1 + Σ_p |a_ip · b_pj|): float32 summation error grows with the terms' magnitudes, not the result's. */
function assertClose(got: ArrayLike<number>, ref: Float64Array, absRef: Float64Array, what: string, tol = 2e-6): void {
  assert.equal(got.length, ref.length, what);
  for (let i = 0; i < got.length; i++) {
    assert.ok(Math.abs(got[i] - ref[i]) <= tol * (1 + absRef[i]), `${what} [${i}]: ${got[i]} vs ${ref[i]}`);
  }
}

const abs = (x: Float32Array) => x.map(Math.abs);

// [aShape, bShape, transposeA, transposeB]: partial tiles in rows and columns, K over one and several KC blocks
// (K not a multiple of KC), M over one MC block, N over one NC block, all four transpose combinations, batches with
// either operand broadcast.
const CASES: [number[], number[], boolean, boolean][] = [
  [[17, 5], [5, 9], false, false],
  [[33, KC + 44], [KC + 44, 17], false, false],
  [[33, 2 * KC + 1], [17, 2 * KC + 1], false, true],
  [[300, 33], [300, 17], true, false],
  [[300, 33], [17, 300], true, true],
  [[MC + 9, 70], [70, 9], false, false],
  [[2, 3, 20, 7], [2, 3, 7, 4], false, false],
  [[2, 3, 20, 7], [2, 3, 6, 7], false, true],
  [[1, 20, 7], [3, 7, 4], false, false],
  [[3, 20, 7], [7, 4], false, false],
  [[3, 7, 20], [1, 9, 7], true, true],
  [[40, 23], [19, 23], false, true], // inner size not a multiple of 4: the vector packs' remainders
  [[23, 40], [23, 19], true, false],
  // B's column blocks: two of them, the second with a partial panel; K's last block not a multiple of 4 (the row
  // packing's one-row tail), row-major B and transposed.
  [[FEW_ROWS + 5, KC + 3], [KC + 3, NC + 13], false, false],
  [[FEW_ROWS + 5, KC + 3], [NC + 13, KC + 3], false, true],
  // Few rows (no packing): row-major B with K and N not multiples of 4, K under 4, A transposed; transposed B with
  // K and N not multiples of 4, K under 4, batched (a decoding step's attention); both transposed (the packed path).
  [[1, 70], [70, 37], false, false],
  [[FEW_ROWS, 3], [3, 9], false, false],
  [[70, 3], [70, 9], true, false],
  [[FEW_ROWS, 70], [37, 70], false, true],
  [[2, 3], [5, 3], false, true],
  [[2, 3, 1, 7], [2, 3, 9, 7], false, true],
  [[70, 3], [9, 70], true, true],
];

test('the GEMM module, fused and unfused, equals the float64 reference on its own memory', async () => {
  const WA = (globalThis as any).WebAssembly;
  for (const fma of [true, false]) {
    let mod;
    try {
      mod = new WA.Module(gemmBinary(false, fma));
    } catch (e) {
      if (fma) continue; // an engine without relaxed SIMD (the kernel module turns Node 20's flag on; this test does not)
      throw e;
    }
    const memory = new WA.Memory({ initial: 256 });
    const gemm = new WA.Instance(mod, { env: { memory } }).exports.gemm;
    for (const [as, bs, ta, tb] of CASES.filter((c) => c[0].length === 2 && c[1].length === 2)) {
      const av = vals(as[0] * as[1], 1), bv = vals(bs[0] * bs[1], 2);
      const ref = matMulReference(av, as, bv, bs, ta, tb);
      const absRef = matMulReference(abs(av), as, abs(bv), bs, ta, tb).values;
      const [m, n] = ref.shape, k = ta ? as[0] : as[1];
      const heap = new Float32Array(memory.buffer);
      const pa = 0, pb = SCRATCH_BYTES.a, tile = pb + SCRATCH_BYTES.b, a = tile + SCRATCH_BYTES.tile, b = a + 4 * av.length, c = b + 4 * bv.length;
      heap.set(av, a / 4);
      heap.set(bv, b / 4);
      heap.fill(Number.NaN, c / 4, c / 4 + m * n); // every element must be written
      gemm(a, ta ? 4 : 4 * k, ta ? 4 * m : 4, b, tb ? 4 : 4 * n, tb ? 4 * k : 4, c, 4 * n, m, n, k, 1, 0, 0, 0, pa, pb, tile);
      assertClose(heap.subarray(c / 4, c / 4 + m * n), ref.values, absRef, `${fma ? 'fma' : 'mul+add'} ${as}·${bs} (${ta}, ${tb})`);
    }
  }
});

test('wasm matMul through peftkit\'s GEMM equals the reference, and one thread gives the same bits as all', async () => {
  await initBackend('wasm');
  const info = wasmGemmInfo();
  assert.notEqual(info.kind, 'xnnpack', 'peftkit\'s GEMM is in use on wasm');
  for (const [as, bs, ta, tb] of CASES) {
    const av = vals(as.reduce((x, y) => x * y), 1), bv = vals(bs.reduce((x, y) => x * y), 2);
    const ref = matMulReference(av, as, bv, bs, ta, tb);
    const absRef = matMulReference(abs(av), as, abs(bv), bs, ta, tb).values;
    const got = tf.tidy(() => tf.matMul(tf.tensor(av, as), tf.tensor(bv, bs), ta, tb));
    assert.deepEqual(got.shape, ref.shape);
    assertClose(got.dataSync(), ref.values, absRef, `${as}·${bs} (${ta}, ${tb})`);
    got.dispose();
  }
  // Products big enough to be shared between threads (by rows, columns, slices), run again on one thread.
  const backend = tf.backend() as unknown as WasmHeapBackend;
  // Rows, columns, slices; 3 slices on 2 threads (each cut by rows, then by columns); a narrow product (small chunks).
  for (const [batch, m, n] of [[1, 203, 77], [1, 45, 203], [6, 45, 77], [3, 203, 77], [3, 45, 203], [1, 128, 40]]) {
    const k = 300;
    const a = tf.tensor(vals(batch * m * k, 3), [batch, m, k]), b = tf.tensor(vals(k * n, 4), [k, n]);
    const all = tf.matMul(a, b);
    const one = backend.makeOutput([batch, m, n], 'float32');
    const at = (t: tf.TensorInfo) => backend.typedArrayFromHeap(t).byteOffset;
    assert.ok(heapGemm(backend, { a: at(a), ars: 4 * k, aks: 4, b: at(b), bks: 4 * n, bcs: 4, c: at(one), M: m, N: n, K: k, batch, sa: 4 * m * k, sb: 0, sc: 4 * m * n }, 1));
    assert.deepEqual(Array.from(backend.typedArrayFromHeap(one)), Array.from(all.dataSync()), `batch ${batch}, ${m} x ${n}: ${info.threads} threads against 1`);
    backend.disposeData(one.dataId);
    tf.dispose([a, b, all]);
  }
});

test('guided chunks cover the work once, large first, none under the minimum, at most 512', () => {
  // GPT-2 small's c_fc at 2 threads: 3072 columns in units of 8, smallest chunk 8 units.
  assert.deepEqual(guidedChunks(384, 2, 8), [96, 72, 54, 41, 31, 23, 17, 13, 10, 8, 8, 11]);
  for (const [units, threads, min] of [[1, 2, 1], [6, 2, 1], [51, 2, 16], [6283, 2, 8], [100_000, 4, 1]]) {
    const sizes = guidedChunks(units, threads, min);
    assert.equal(sizes.reduce((a, b) => a + b, 0), units, `${units}, ${threads}, ${min}`);
    assert.ok(sizes.length <= 512);
    for (let i = 1; i < sizes.length - 1; i++) assert.ok(sizes[i] <= sizes[i - 1], `${units}: non-increasing but the last`);
    for (const s of sizes) assert.ok(s >= Math.min(min, units), `${units}: ${s} under ${min}`);
  }
  assert.deepEqual(guidedChunks(1, 2, 8), [1]);
  assert.ok(guidedChunks(100_000, 2, 1, 100).length <= 100, 'a smaller table');
});

test(`${WASM_GEMM_ENV} accepts fma, simd and xnnpack and names itself otherwise`, () => {
  assert.equal(requestedWasmGemm({}), 'fma');
  assert.equal(requestedWasmGemm({ [WASM_GEMM_ENV]: 'simd' }), 'simd');
  assert.equal(requestedWasmGemm({ [WASM_GEMM_ENV]: 'xnnpack' }), 'xnnpack');
  assert.throws(() => requestedWasmGemm({ [WASM_GEMM_ENV]: 'blas' }), /PEFTKIT_WASM_GEMM=blas: must be fma, simd or xnnpack/);
});
