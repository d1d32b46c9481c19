import assert from 'node:assert/strict';
import { test } from 'node:test';
import { classificationMetrics, majorityBaseline, perplexity } from './metrics.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('binary metrics on a constructed set match the hand count', () => {
  // labels:      1 1 1 1 0 0 0 0 0 0
  // predictions: 1 1 1 0 1 1 0 0 0 0  → TP 3, FN 1, FP 2, TN 4
  const y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0];
  const p = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0];
  const m = classificationMetrics(p, y, 2);
  close(m.accuracy, 7 / 10);
  close(m.precision, 3 / 5);
  close(m.recall, 3 / 4);
  close(m.f1, (2 * (3 / 5) * (3 / 4)) / (3 / 5 + 3 / 4)); // 2/3
  close(m.f1, 2 / 3);
  assert.equal(m.average, 'binary');
  // Positive class 0: TP 4, FP 1, FN 2.
  const m0 = classificationMetrics(p, y, 2, 0);
  close(m0.precision, 4 / 5);
  close(m0.recall, 4 / 6);
});

test('macro metrics over three classes, with a class never predicted (zero division → 0)', () => {
  const y = [0, 0, 1, 1, 2, 2];
  const p = [0, 1, 1, 1, 0, 0];
  // class 0: TP1 FP2 FN1 → P 1/3 R 1/2 F1 0.4; class 1: TP2 FP1 FN0 → P 2/3 R 1 F1 0.8; class 2: P 0 R 0 F1 0.
  const m = classificationMetrics(p, y, 3);
  close(m.accuracy, 3 / 6);
  close(m.precision, (1 / 3 + 2 / 3 + 0) / 3);
  close(m.recall, (1 / 2 + 1 + 0) / 3);
  close(m.f1, (0.4 + 0.8 + 0) / 3);
  assert.equal(m.average, 'macro');
});

test('majority baseline predicts the most frequent training class', () => {
  const b = majorityBaseline([0, 1, 1, 2], [1, 0, 1, 1], 3);
  assert.equal(b.majorityClass, 1);
  close(b.accuracy, 3 / 4);
  assert.throws(() => classificationMetrics([1], [1, 0], 2), /1 predictions for 2 labels/);
});

test('perplexity is exp of the mean token NLL', () => {
  close(perplexity(Math.log(7) * 10, 10), 7);
});
