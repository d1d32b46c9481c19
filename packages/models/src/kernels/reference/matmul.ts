/**
 * The batched matrix product in plain TypeScript, the reference the backends' BatchMatMul kernels
 * (kernels/wasm/batch-mat-mul.ts) are tested against: `out[..., i, j] = Σ_p A[..., i, p] · B[..., p, j]`
 * with A given as [..., k, m] when `transposeA` and B as [..., n, k] when `transposeB`, batch axes
 * broadcast as in NumPy's `matmul` (tf.matMul's contract). Sums in float64.
 * @returns the values and shape of the product, row-major.
 * @throws Error when the inner sizes or the batch axes do not agree.
 */
export function matMulReference(
  a: ArrayLike<number>, aShape: number[], b: ArrayLike<number>, bShape: number[], transposeA = false, transposeB = false,
): { values: Float64Array; shape: number[] } {
  const ra = aShape.length, rb = bShape.length;
  const m = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const k = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const n = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  if (k !== kb) throw new Error(`inner sizes ${k} and ${kb} differ`);
  const ba = aShape.slice(0, -2), bb = bShape.slice(0, -2);
  const rank = Math.max(ba.length, bb.length);
  const pad = (s: number[]) => [...new Array(rank - s.length).fill(1), ...s];
  const pa = pad(ba), pb = pad(bb);
  const batchShape = pa.map((d, i) => {
    if (d !== pb[i] && d !== 1 && pb[i] !== 1) throw new Error(`batch axes [${ba}] and [${bb}] do not broadcast`);
    return Math.max(d, pb[i]);
  });
  const batch = batchShape.reduce((x, y) => x * y, 1);
  const values = new Float64Array(batch * m * n);
  const flat = (idx: number[], shape: number[]) => idx.reduce((acc, v, i) => acc * shape[i] + (shape[i] === 1 ? 0 : v), 0);
  for (let t = 0; t < batch; t++) {
    const idx: number[] = [];
    for (let i = rank - 1, r = t; i >= 0; i--) { idx[i] = r % batchShape[i]; r = Math.floor(r / batchShape[i]); }
    const oa = flat(idx, pa) * m * k, ob = flat(idx, pb) * k * n;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += a[oa + (transposeA ? p * m + i : i * k + p)] * b[ob + (transposeB ? j * k + p : p * n + j)];
        values[(t * m + i) * n + j] = s;
      }
    }
  }
  return { values, shape: [...batchShape, m, n] };
}
