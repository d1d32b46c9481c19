/**
 * Softmax cross-entropy over rows, in plain TypeScript over float64: the reference of the `PeftkitSoftmaxXent` and
 * `PeftkitSoftmaxXentGrad` kernels (kernels/softmax-xent.ts).
 *
 * Forward, for logits x [r, V] and targets t [r] (each in [0, V)): p = softmax(x) over each row and
 * nll_i = logsumexp(x_i) − x_i[t_i] = −log p_i[t_i], in nats. Backward, for the softmax p, the targets and a
 * per-row scale s [r]: g = (p − onehot(t)) · s, the gradient of Σ_i s_i nll_i with respect to x.
 */

/** p (row-major [r, V]) and nll [r]. */
export function softmaxXentReference(x: ArrayLike<number>, rows: number, V: number, targets: ArrayLike<number>): { probs: Float64Array; nll: Float64Array } {
  const probs = new Float64Array(rows * V);
  const nll = new Float64Array(rows);
  for (let i = 0; i < rows; i++) {
    let max = -Infinity;
    for (let j = 0; j < V; j++) max = Math.max(max, x[i * V + j]);
    let sum = 0;
    for (let j = 0; j < V; j++) sum += Math.exp(x[i * V + j] - max);
    for (let j = 0; j < V; j++) probs[i * V + j] = Math.exp(x[i * V + j] - max) / sum;
    nll[i] = max + Math.log(sum) - x[i * V + targets[i]];
  }
  return { probs, nll };
}

/** g = (p − onehot(t)) · s, row-major [r, V]. */
export function softmaxXentGradReference(p: ArrayLike<number>, rows: number, V: number, targets: ArrayLike<number>, scale: ArrayLike<number>): Float64Array {
  const g = Float64Array.from(p, (pv, k) => pv * scale[Math.floor(k / V)]);
  for (let i = 0; i < rows; i++) g[i * V + targets[i]] = (p[i * V + targets[i]] - 1) * scale[i];
  return g;
}
