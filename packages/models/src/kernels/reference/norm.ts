/**
 * LayerNorm and RMSNorm over the last axis, with their input gradients, in plain TypeScript over float64: the
 * reference of the `PeftkitNorm` and `PeftkitNormGrad` kernels (kernels/norm.ts).
 *
 * - LayerNorm (torch.nn.LayerNorm; Ba et al. 2016): μ = mean(x), σ = √(mean((x − μ)²) + eps), x̂ = (x − μ) / σ,
 *   y = x̂ · w + b. Gradient, with gw = dy · w: dx = (gw − mean(gw) − x̂ · mean(gw · x̂)) / σ.
 * - RMSNorm (HF's LlamaRMSNorm; Zhang and Sennrich 2019): r = 1 / √(mean(x²) + eps), x̂ = x · r, y = x̂ · w.
 *   Gradient: dx = r · (gw − x̂ · mean(gw · x̂)).
 * The per-row statistics (μ and σ, or r) are what the backward pass keeps.
 */

/** The norms with kernels. */
export type NormKind = 'layer' | 'rms';

/** y [rows, D] and the per-row statistics: μ and σ (LayerNorm), or r (RMSNorm, `a` only). */
export function normReference(kind: NormKind, x: ArrayLike<number>, rows: number, D: number, w: ArrayLike<number>, b: ArrayLike<number> | undefined, eps: number): { y: Float64Array; a: Float64Array; b: Float64Array } {
  const y = new Float64Array(rows * D), sa = new Float64Array(rows), sb = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    const o = i * D;
    if (kind === 'layer') {
      let mu = 0;
      for (let j = 0; j < D; j++) mu += x[o + j];
      mu /= D;
      let v = 0;
      for (let j = 0; j < D; j++) v += (x[o + j] - mu) ** 2;
      const sigma = Math.sqrt(v / D + eps);
      for (let j = 0; j < D; j++) y[o + j] = ((x[o + j] - mu) / sigma) * w[j] + b![j];
      sa[i] = mu;
      sb[i] = sigma;
    } else {
      let ss = 0;
      for (let j = 0; j < D; j++) ss += x[o + j] ** 2;
      const r = 1 / Math.sqrt(ss / D + eps);
      for (let j = 0; j < D; j++) y[o + j] = x[o + j] * r * w[j];
      sa[i] = r;
    }
  }
  return { y, a: sa, b: sb };
}

/** dx [rows, D] from x, the statistics {@link normReference} returns, w and dy. */
export function normGradReference(kind: NormKind, x: ArrayLike<number>, rows: number, D: number, w: ArrayLike<number>, a: ArrayLike<number>, b: ArrayLike<number>, dy: ArrayLike<number>): Float64Array {
  const dx = new Float64Array(rows * D);
  for (let i = 0; i < rows; i++) {
    const o = i * D;
    const xhat = (j: number) => (kind === 'layer' ? (x[o + j] - a[i]) / b[i] : x[o + j] * a[i]);
    let sg = 0, sgx = 0;
    for (let j = 0; j < D; j++) {
      const gw = dy[o + j] * w[j];
      sg += gw;
      sgx += gw * xhat(j);
    }
    for (let j = 0; j < D; j++) {
      const gw = dy[o + j] * w[j];
      dx[o + j] = kind === 'layer' ? (gw - sg / D - xhat(j) * (sgx / D)) / b[i] : a[i] * (gw - xhat(j) * (sgx / D));
    }
  }
  return dx;
}
