/**
 * Evaluation metrics, as scikit-learn defines them (`accuracy_score`, `precision_recall_fscore_support`
 * with `average="binary"` or `"macro"`, `zero_division=0`), and perplexity.
 */

/** Classification metrics over a set of predictions. */
export interface ClassificationMetrics {
  accuracy: number;
  precision: number;
  recall: number;
  f1: number;
  /** `binary` (one positive class) or `macro` (unweighted mean over the classes). */
  average: 'binary' | 'macro';
  /** Number of examples. */
  n: number;
}

/**
 * Accuracy, precision, recall and F1 of `predictions` against `labels` (class ids).
 *
 * Binary (`numClasses` 2): precision, recall and F1 of the class `positiveClass`. Multiclass: macro
 * averages over the classes 0..numClasses-1, each class's F1 computed from its own precision and
 * recall (scikit-learn's macro F1). A ratio with a zero denominator counts as 0.
 *
 * @throws Error when the two arrays differ in length or are empty.
 */
export function classificationMetrics(predictions: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number, positiveClass = 1): ClassificationMetrics {
  if (predictions.length !== labels.length) throw new Error(`${predictions.length} predictions for ${labels.length} labels`);
  const n = labels.length;
  if (n === 0) throw new Error('no examples to score');
  let correct = 0;
  const tp = new Array(numClasses).fill(0);
  const fp = new Array(numClasses).fill(0);
  const fn = new Array(numClasses).fill(0);
  for (let i = 0; i < n; i++) {
    const p = predictions[i];
    const y = labels[i];
    if (p === y) {
      correct++;
      tp[y]++;
    } else {
      if (p >= 0 && p < numClasses) fp[p]++;
      if (y >= 0 && y < numClasses) fn[y]++;
    }
  }
  const ratio = (a: number, b: number) => (b === 0 ? 0 : a / b);
  const prf = (c: number) => {
    const precision = ratio(tp[c], tp[c] + fp[c]);
    const recall = ratio(tp[c], tp[c] + fn[c]);
    return { precision, recall, f1: ratio(2 * precision * recall, precision + recall) };
  };
  const accuracy = correct / n;
  if (numClasses === 2) return { accuracy, ...prf(positiveClass), average: 'binary', n };
  const all = Array.from({ length: numClasses }, (_, c) => prf(c));
  const mean = (k: 'precision' | 'recall' | 'f1') => all.reduce((s, x) => s + x[k], 0) / numClasses;
  return { accuracy, precision: mean('precision'), recall: mean('recall'), f1: mean('f1'), average: 'macro', n };
}

/**
 * The majority-class baseline: the class most frequent in `trainLabels` (ties: the smallest id),
 * predicted for every example of `labels`, scored with {@link classificationMetrics}.
 */
export function majorityBaseline(trainLabels: ArrayLike<number>, labels: ArrayLike<number>, numClasses: number, positiveClass = 1): ClassificationMetrics & { majorityClass: number } {
  const counts = new Array(numClasses).fill(0);
  for (let i = 0; i < trainLabels.length; i++) counts[trainLabels[i]]++;
  let majorityClass = 0;
  for (let c = 1; c < numClasses; c++) if (counts[c] > counts[majorityClass]) majorityClass = c;
  return { ...classificationMetrics(new Array(labels.length).fill(majorityClass), labels, numClasses, positiveClass), majorityClass };
}

/** Perplexity: `exp(total NLL / tokens)`, the exponential of the mean token NLL in nats. */
export function perplexity(nllSum: number, tokens: number): number {
  return Math.exp(nllSum / tokens);
}
