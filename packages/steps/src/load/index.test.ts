import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend, schemaIssues, UserError, type StepContext } from '@peftkit/core';
import type { LoadedPretrained } from '@peftkit/models';
import { repoRoot } from '@peftkit/models/testing';
import { loadStep, resolveModelSetting } from './index.js';

const fixtures = resolve(repoRoot(), '..', 'shared', 'fixtures', 'hf');

function fakeContext(pipelineDir: string) {
  const lines: string[] = [];
  const metrics: Record<string, unknown>[] = [];
  const log = (level: string) => (m: string) => lines.push(`${level}: ${m}`);
  const ctx = {
    pipeline: 'p', step: 'base', pipelineDir, runDir: pipelineDir, stepDir: pipelineDir, seed: 42, backend: 'wasm', resume: false,
    signal: new AbortController().signal,
    logger: { error: log('error'), warn: log('warn'), info: log('info'), debug: log('debug') },
    registry: {} as StepContext['registry'],
    recordMetrics: (row: Record<string, unknown>) => metrics.push(row),
  } satisfies StepContext;
  return { ctx, lines, metrics };
}

before(async () => {
  await initBackend('wasm');
});

test('settings schema: defaults filled, unknown dtype and missing model refused', () => {
  const s: Record<string, unknown> = { model: './m' };
  assert.deepEqual(schemaIssues('p.json', '/steps/base/settings', loadStep.settingsSchema, s), []);
  assert.deepEqual(s, { model: './m', revision: 'main', dtype: 'float32', task: 'causal-lm', num_labels: null, pad_token_id: null, strict: true });
  const bad = schemaIssues('p.json', '/steps/base/settings', loadStep.settingsSchema, { model: 'x', dtype: 'float16' });
  assert.equal(bad.length, 1);
  assert.equal(bad[0].pointer, '/steps/base/settings/dtype');
  assert.deepEqual(loadStep.validate!({}, {} as never).map((i) => i.pointer), ['/model']);
  assert.deepEqual(loadStep.validate!({ model: 'x', from_config: 'c.json' }, {} as never).map((i) => i.pointer), ['/from_config']);
});

test('validate: num_labels only with sequence-classification', () => {
  const issues = loadStep.validate!({ model: 'x', task: 'causal-lm', num_labels: 3 }, {} as never);
  assert.deepEqual(issues.map((i) => i.pointer), ['/num_labels']);
  assert.deepEqual(loadStep.validate!({ model: 'x', task: 'sequence-classification', num_labels: 3 }, {} as never), []);
});

test('model paths resolve from the pipeline folder; hub ids stay hub ids', () => {
  assert.equal(resolveModelSetting('ckpt-gpt2-tiny-vocab', fixtures), join(fixtures, 'ckpt-gpt2-tiny-vocab'));
  assert.equal(resolveModelSetting('./models/x', '/p'), '/p/models/x');
  assert.equal(resolveModelSetting('openai-community/gpt2', fixtures), 'openai-community/gpt2');
  assert.equal(resolveModelSetting('/abs/folder', fixtures), '/abs/folder');
});

test('run: loads a relative folder, outputs a base-model with its tokenizer, logs the parameter count', async () => {
  const { ctx, lines, metrics } = fakeContext(join(fixtures, 'ckpt-gpt2-fake-nembd2', '..'));
  const settings = { model: 'ckpt-gpt2-fake-nembd2', revision: 'main', dtype: 'float32' as const, task: 'causal-lm' as const, num_labels: null, strict: true };
  const out = await loadStep.run(ctx, {}, settings);
  const loaded = out.model as LoadedPretrained;
  assert.deepEqual(Object.keys(out), ['model']);
  assert.equal(loaded.model.task, 'causal-lm');
  assert.equal(loaded.source, join(fixtures, 'ckpt-gpt2-fake-nembd2'));
  assert.deepEqual(loaded.tokenizer!.encode('Hello world'), [15496, 995]);
  const params = loaded.model.numParameters();
  assert.equal(lines[0], `info: loading ${join(fixtures, 'ckpt-gpt2-fake-nembd2')}`);
  assert.ok(lines.some((l) => l.startsWith('info: loaded gpt2 (causal-lm, 1 layers, hidden 2, vocab 50257): 16 tensors (16 F32) from 1 file(s), ' + params.toLocaleString('en-US') + ' parameters')), lines.join('\n'));
  assert.ok(lines.some((l) => l === 'info: tokenizer: 50,257 tokens'));
  assert.deepEqual(metrics, [{ num_parameters: params, tensors_loaded: 16 }]);
  loaded.model.dispose();
});

test('run: sequence classification warns about the new head', async () => {
  const { ctx, lines } = fakeContext(fixtures);
  const out = await loadStep.run(ctx, {}, { model: 'ckpt-gpt2-tiny-vocab', task: 'sequence-classification', num_labels: 4, strict: true });
  const loaded = out.model as LoadedPretrained;
  assert.equal(loaded.model.task, 'sequence-classification');
  assert.ok(lines.includes('warn: newly initialized (not in the checkpoint): score.weight'), lines.join('\n'));
  loaded.model.dispose();
});

test('run: a folder that does not exist is a UserError naming the resolved path', async () => {
  const { ctx } = fakeContext(fixtures);
  await assert.rejects(loadStep.run(ctx, {}, { model: './no/such/model' }), (e: unknown) => e instanceof UserError && e.message.includes(join(fixtures, 'no/such/model')));
});

test('run: from_config builds a seeded random model whose vocabulary is the tokenizer\'s', async () => {
  const { ctx } = fakeContext(fixtures);
  const config: { model_type: string; [k: string]: unknown } = { model_type: 'gpt2', n_embd: 8, n_layer: 1, n_head: 2, n_positions: 16 };
  const a = (await loadStep.run(ctx, {}, { from_config: config, tokenizer: 'ckpt-gpt2-tiny-vocab' })).model as LoadedPretrained;
  const b = (await loadStep.run(ctx, {}, { from_config: config, tokenizer: 'ckpt-gpt2-tiny-vocab' })).model as LoadedPretrained;
  const vocab = a.tokenizer!.vocabSize;
  assert.equal(a.model.dims().vocabSize, vocab);
  assert.equal(a.model.config.vocab_size, vocab);
  const wa = a.model.stateDict().get('transformer.wte.weight')!.dataSync();
  const wb = b.model.stateDict().get('transformer.wte.weight')!.dataSync();
  assert.deepEqual([...wa], [...wb], 'same seed, same weights');
  assert.ok(wa.some((v) => v !== 0));
  await assert.rejects(loadStep.run(ctx, {}, { from_config: { ...config, vocab_size: vocab + 1 } as typeof config, tokenizer: 'ckpt-gpt2-tiny-vocab' }), (e: unknown) => e instanceof UserError && /vocab_size/.test(e.message));
  a.model.dispose();
  b.model.dispose();
});

test('sequence classification without a pad token: the tokenizer\'s EOS becomes pad_token_id, said in the log; a batch then classifies', async () => {
  const { ctx, lines } = fakeContext(fixtures);
  const settings = { model: 'ckpt-gpt2-tiny-vocab', revision: 'main', dtype: 'float32' as const, task: 'sequence-classification' as const, num_labels: 2, pad_token_id: null, strict: true };
  const loaded = (await loadStep.run(ctx, {}, settings)).model as LoadedPretrained;
  assert.equal(loaded.tokenizer!.padTokenId, undefined, 'the fixture\'s tokenizer has no pad token');
  assert.equal(loaded.model.config.pad_token_id, 20);
  assert.ok(lines.includes('info: config.json has no pad_token_id: using 20, the tokenizer\'s EOS token (it has no pad token), as transformers users set tokenizer.pad_token = tokenizer.eos_token'), lines.join('\n'));
  // Two rows, the second right-padded with the pad (EOS) id: pooled at its last real token.
  const logits = loaded.model.forward({ inputIds: tf.tensor2d([[3, 5, 7], [3, 5, 20]], undefined, 'int32') }).logits;
  const short = loaded.model.forward({ inputIds: tf.tensor2d([[3, 5]], undefined, 'int32') }).logits;
  assert.deepEqual(logits.shape, [2, 2]);
  assert.ok(Math.abs((logits.arraySync() as number[][])[1][0] - (short.arraySync() as number[][])[0][0]) < 1e-6);
  tf.dispose([logits, short]);
  loaded.model.dispose();

  // Given explicitly; outside the vocabulary it is refused naming the setting.
  const given = (await loadStep.run(fakeContext(fixtures).ctx, {}, { ...settings, pad_token_id: 4 })).model as LoadedPretrained;
  assert.equal(given.model.config.pad_token_id, 4);
  given.model.dispose();
  await assert.rejects(loadStep.run(ctx, {}, { ...settings, pad_token_id: 21 }), (e: Error) => e instanceof UserError && /pad_token_id 21 is not a token id of the model \(0 to 20\)/.test(e.message) && e.details.pointer === '/steps/base/settings/pad_token_id');
});

test('without any pad token, a batch of several rows is a UserError naming pad_token_id, not a stack trace', async () => {
  const { createModel } = await import('@peftkit/models');
  const model = createModel({ model_type: 'gpt2', vocab_size: 10, n_embd: 4, n_layer: 1, n_head: 2, eos_token_id: null, bos_token_id: null }, 'sequence-classification');
  assert.throws(() => model.forward({ inputIds: tf.tensor2d([[1, 2], [3, 4]], undefined, 'int32') }), (e: Error) => e instanceof UserError && /a batch of 2 rows needs pad_token_id/.test(e.message));
  model.dispose();
});
