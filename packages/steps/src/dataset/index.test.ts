import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError, validatorFor, type StepContext } from '@peftkit/core';
import type { Dataset } from '@peftkit/data';
import { CharTokenizer } from '@peftkit/data/testing';
import { datasetStep } from './index.js';
import type { DatasetSettings } from './dataset.generated.js';

const dir = mkdtempSync(join(tmpdir(), 'peftkit-dataset-step-'));
writeFileSync(join(dir, 'train.jsonl'), ['{"instruction":"hi","output":"ok"}', '{"instruction":"2+2","input":"","output":"4"}'].join('\n'));
writeFileSync(join(dir, 'all.csv'), 'text,label\n' + Array.from({ length: 20 }, (_, i) => `"mail, ${i}",${i % 2 ? 'spam' : 'ham'}`).join('\n'));

function ctx(logs: string[]): StepContext {
  const log = (m: string) => logs.push(m);
  return {
    pipeline: 'p', step: 'data', pipelineDir: dir, runDir: dir, stepDir: dir, seed: 42, backend: 'cpu', resume: false,
    signal: new AbortController().signal, logger: { info: log, warn: log, error: log, debug: log }, registry: undefined as any, recordMetrics: () => {},
  };
}
/** Settings as the engine hands them over: schema-checked, defaults filled in. */
function settings(s: Record<string, unknown>): DatasetSettings {
  const v = validatorFor(datasetStep.settingsSchema);
  const copy = structuredClone(s);
  assert.ok(v(copy), JSON.stringify(v.errors));
  return copy as DatasetSettings;
}
const model = { model: {} as any, tokenizer: new CharTokenizer(), source: 'test' };

test('the schema fills the defaults', () => {
  const s = settings({ files: { train: 'train.jsonl' } });
  assert.equal(s.shape, 'text');
  assert.equal(s.max_length, 512);
  assert.equal(s.format, 'auto');
  assert.equal(s.template, 'alpaca');
  assert.equal(s.columns!.text, 'text');
  assert.deepEqual(s.split, { train: 0.8, validation: 0.1, test: 0.1 });
});

test('validate: files or path, fractions, packing, text template', () => {
  const pointers = (s: Record<string, unknown>) => datasetStep.validate!(settings(s), undefined as any).map((i) => i.pointer);
  assert.deepEqual(pointers({}), ['/files']);
  assert.deepEqual(pointers({ files: { train: 'a' }, path: 'b' }), ['/path']);
  assert.deepEqual(pointers({ path: 'b', split: { train: 0.5, test: 0.1, validation: 0.1 } }), ['/split']);
  assert.deepEqual(pointers({ path: 'b', shape: 'instruction', packing: true }), ['/packing']);
  assert.deepEqual(pointers({ path: 'b', shape: 'classification', text_template: 'no placeholder' }), ['/text_template']);
  assert.deepEqual(pointers({ path: 'b', shape: 'classification', labels: ['a', 'b'], label_words: ['x'] }), ['/label_words']);
  assert.deepEqual(pointers({ path: 'b', shape: 'classification' }), []);
});

test('run: instruction rows tokenized with the model\'s tokenizer, summary logged and written', async () => {
  const logs: string[] = [];
  const out = await datasetStep.run(ctx(logs), { tokenizer: model }, settings({ files: { train: 'train.jsonl' }, shape: 'instruction', template: 'plain' }));
  const d = out.dataset as Dataset;
  assert.equal(d.shape, 'instruction');
  const ex = d.splits.train!.examples[0];
  assert.deepEqual(Array.from(ex.labels), [-100, -100, -100, CharTokenizer.id('o'), CharTokenizer.id('k'), 0]);
  assert.match(logs.join('\n'), /train: 2 rows -> 2 examples/);
  const written = JSON.parse(readFileSync(join(dir, 'dataset-summary.json'), 'utf8'));
  assert.equal(written.splits.train.rows, 2);
  assert.equal(written.splits.train.targetTokens, 3 + 2);
});

test('run: one CSV file, seeded stratified split, limit', async () => {
  const s = settings({ path: 'all.csv', shape: 'classification', split: { train: 0.6, validation: 0.2, test: 0.2 }, limit: { train: 6 } });
  const a = (await datasetStep.run(ctx([]), { tokenizer: model }, s)).dataset as Dataset;
  const b = (await datasetStep.run(ctx([]), { tokenizer: model }, s)).dataset as Dataset;
  assert.deepEqual(a.summary.splits.train!.labelCounts, { ham: 3, spam: 3 });
  assert.deepEqual(a.summary.splits.test!.labelCounts, { ham: 2, spam: 2 });
  assert.deepEqual(a.splits.test!.table.array('text'), b.splits.test!.table.array('text'));
});

test('run: data errors carry the pipeline pointer of the setting', async () => {
  await assert.rejects(datasetStep.run(ctx([]), { tokenizer: model }, settings({ files: { train: 'train.jsonl' }, shape: 'text' })), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.details.pointer, '/steps/data/settings/columns/text');
    assert.match(e.message, /^\/steps\/data\/settings\/columns\/text: .*train\.jsonl: no column "text"/);
    return true;
  });
  await assert.rejects(datasetStep.run(ctx([]), { tokenizer: { model: {}, source: 'x' } }, settings({ files: { train: 'train.jsonl' } })), /\/steps\/data\/inputs\/tokenizer: the model on the "tokenizer" input has no tokenizer/);
});

test('run: batches are padded with the model\'s pad_token_id (what the load step set for a classifier), else the tokenizer\'s', async () => {
  const s = settings({ path: 'all.csv', shape: 'classification', split: { train: 0.6, validation: 0.2, test: 0.2 }, limit: { train: 4 } });
  const padsOf = (d: Dataset) => {
    const b = d.batches('train', { batchSize: 4, shuffle: false, dropLast: false, epochs: 1 }).next().value!;
    return new Set(Array.from(b.inputIds).filter((_, i) => b.attentionMask[i] === 0));
  };
  const withPad = (await datasetStep.run(ctx([]), { tokenizer: { ...model, model: { config: { model_type: 'gpt2', pad_token_id: 7 } } as any } }, s)).dataset as Dataset;
  assert.deepEqual([...padsOf(withPad)], [7]);
  const plain = (await datasetStep.run(ctx([]), { tokenizer: model }, s)).dataset as Dataset;
  assert.deepEqual([...padsOf(plain)], [new CharTokenizer().padTokenId ?? new CharTokenizer().eosTokenId]);
});
