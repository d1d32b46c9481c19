import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fenced, headline, reportMarkdown, reportRows, reportTable } from './report.js';

test('a sample with blank lines and backticks stays inside its fenced block', () => {
  const text = 'Hello\n\n```js\ncode\n```\nbye';
  const block = fenced(text);
  assert.equal(block, '````text\nHello\n\n```js\ncode\n```\nbye\n````');
  const md = reportMarkdown('t', reportTable(reportRows({ loss: 1 }, undefined)), [{ prompt: 'a\n\nb', with_adapter: 'x `y`', without_adapter: '' }], 'Precision, recall and F1 are macro-averaged over the 3 classes (a, b, c).');
  assert.match(md, /^# t\n\nPrecision, recall and F1 are macro-averaged over the 3 classes \(a, b, c\)\.\n\n\|/);
  assert.match(md, /Prompt:\n\n```text\na\n\nb\n```\n\nWith the adapter:\n\n```text\nx `y`\n```\n\nWithout the adapter:\n\n```text\n\n```/);
});

test('the headline gives accuracy and F1 against the base and the majority class, and forgetting', () => {
  const rows = reportRows(
    { accuracy: 0.8991, f1: 0.84812, reference_perplexity: 4800 },
    { accuracy: 0.301, f1: 0.463, reference_perplexity: 193 },
    { 'majority_class_accuracy (always "ham")': 0.699, 'majority_class_f1 (always "ham")': 0 },
  );
  assert.equal(headline(rows), 'accuracy 0.899 (base 0.301, majority 0.699); F1 0.848 (base 0.463, majority 0.000); forgetting: held-out perplexity 193.0 -> 4800.0 (x24.87)');
  assert.equal(headline(reportRows({ loss: 3, perplexity: 20.08 }, undefined)), 'perplexity 20.1');
});
