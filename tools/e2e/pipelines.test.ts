/**
 * The real pipeline files, end to end, at their own quick sizes (`--quick`: each file's "quick"
 * block): the quick spam data and a small tokenizer are made in a temporary folder, `pretrain-base`
 * trains a base there, every spam-* twin fine-tunes it, evaluates and exports, then
 * `spam-lora-continue` trains the adapter spam-lora exported further and `spam-lora-merge` merges
 * it into the base (tests run in file order, each pipeline after those it depends on). Only paths
 * are changed, with the `--set` overrides a user has (sequence lengths stay as written, so virtual
 * tokens that do not fit the base's positions fail here). Every file in pipelines/ must have its
 * test here.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { readSafetensors } from '@peftkit/models';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '@peftkit/cli';
import { prepareSpamData } from '../prepare-data/prepare.js';
import { trainTokenizer } from '../train-tokenizer/train.js';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'peftkit-e2e-'));
const data = join(tmp, 'data');
const runs = join(tmp, 'runs');
const base = join(tmp, 'models', 'spam-base');
/** Where spam-lora exports its adapter (the pipeline's `../models/spam-lora`), read by the two that continue from it. */
const spamLoraAdapter = join(tmp, 'models', 'spam-lora');

async function run(pipeline: string, sets: string[]): Promise<{ code: number; out: string; runDir: string }> {
  let out = '';
  const args = ['run', join(root, 'pipelines', `${pipeline}.json`), '--quick', '--runs-dir', runs, ...sets.flatMap((s) => ['--set', s])];
  const code = await runCli(args, { out: (s) => (out += s), err: (s) => (out += s), cwd: root });
  const runDir = join(runs, pipeline, 'latest');
  return { code, out, runDir };
}

before(async () => {
  prepareSpamData({ out: data, quick: true, maxChars: 400, seed: 42, force: false, log: () => {} });
  await trainTokenizer({ input: [join(data, 'corpus', 'train.jsonl')], out: join(data, 'tokenizer'), vocabSize: 512, log: () => {} });
});

test('pretrain-base trains the base from scratch and exports an HF checkpoint', async () => {
  const r = await run('pretrain-base', [
    `steps.base.settings.tokenizer=${join(data, 'tokenizer')}`,
    `steps.corpus.settings.files={"train":"${join(data, 'corpus', 'train.jsonl')}","validation":"${join(data, 'corpus', 'validation.jsonl')}"}`,
    `steps.export.settings.path=${base}`,
  ]);
  assert.equal(r.code, 0, r.out);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(base, f)), f);
  const config = JSON.parse(readFileSync(join(base, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'gpt2');
  assert.equal(config.vocab_size, 512);
  const report = JSON.parse(readFileSync(join(r.runDir, 'evaluate', 'report.json'), 'utf8'));
  const ppl = report.rows.find((x: { metric: string }) => x.metric === 'perplexity');
  assert.ok(ppl && Number.isFinite(ppl.with_adapter) && ppl.with_adapter > 1, JSON.stringify(report.rows));
});

const FINE_TUNES = ['spam-lora', 'spam-qlora', 'spam-adapter', 'spam-prefix', 'spam-prompt', 'spam-full', 'spam-ia3'];
const spam = (s: string) => join(data, 'spam', `${s}.jsonl`);
/** The quick spam data and base for a pipeline with the spam-* steps `base` and `spam`. */
const quickSpam = [
  `steps.base.settings.model=${base}`,
  `steps.spam.settings.files={"train":"${spam('train')}","validation":"${spam('validation')}","test":"${spam('test')}"}`,
];
const quickCorpus = [`steps.corpus.settings.files={"train":"${join(data, 'corpus', 'validation.jsonl')}"}`];
/** An evaluate step's report rows by metric. */
function reportOf(runDir: string, step: string): Record<string, { with_adapter: number; without_adapter: number }> {
  const report = JSON.parse(readFileSync(join(runDir, step, 'report.json'), 'utf8'));
  return Object.fromEntries(report.rows.map((r: { metric: string }) => [r.metric, r]));
}

test('every pipeline file has its test here', () => {
  const files = readdirSync(join(root, 'pipelines')).filter((f) => f.endsWith('.json') && f !== 'project.json').map((f) => f.replace(/\.json$/, ''));
  assert.deepEqual(files.sort(), ['pretrain-base', ...FINE_TUNES, 'spam-lora-continue', 'spam-lora-merge'].sort());
});

for (const pipeline of FINE_TUNES) {
  test(`${pipeline} fine-tunes the base, reports accuracy and F1 with and without the adapter, and exports`, async () => {
    assert.ok(existsSync(join(base, 'model.safetensors')), 'needs the pretrain-base test first');
    const r = await run(pipeline, [
      ...quickSpam,
      ...quickCorpus,
      ...(pipeline === 'spam-lora' ? [`steps.export.settings.path=${spamLoraAdapter}`] : []),
    ]);
    assert.equal(r.code, 0, r.out);
    const report = JSON.parse(readFileSync(join(r.runDir, 'evaluate', 'report.json'), 'utf8'));
    const metric = (m: string) => report.rows.find((x: { metric: string }) => x.metric === m);
    for (const m of ['accuracy', 'f1', 'reference_perplexity']) {
      const row = metric(m);
      assert.ok(row, `${m} in ${JSON.stringify(report.rows)}`);
      assert.ok(Number.isFinite(row.with_adapter) && Number.isFinite(row.without_adapter), JSON.stringify(row));
    }
    assert.ok(metric('accuracy').with_adapter >= 0 && metric('accuracy').with_adapter <= 1);
    // The closing summary: where the report and the adapter are, and the headline figures.
    assert.match(r.out, /\n {2}evaluate: report: .+report\.md\n {2}evaluate: accuracy [\d.]+ \(base [\d.]+, majority [\d.]+\); F1 .+; forgetting: held-out perplexity /);
    assert.match(r.out, /\n {2}export: (adapter|model): .+ bytes\)\n/);
    const exportDir = pipeline === 'spam-lora' ? spamLoraAdapter : join(r.runDir, 'export');
    const exported = readdirSync(exportDir, { recursive: true }).map(String);
    assert.ok(exported.some((f) => /adapter_config\.json$|config\.json$/.test(f)), exported.join(', '));
    // The template, labels and label words it was trained with travel with it (generate and classify apply them).
    const format = exported.find((f) => f.endsWith('prompt_format.json'));
    assert.ok(format, exported.join(', '));
    assert.deepEqual(JSON.parse(readFileSync(join(exportDir, format), 'utf8')).labels, ['ham', 'spam']);
  });
}

test('spam-lora-continue loads the adapter spam-lora exported (same scores as loaded), trains it further and exports it', async () => {
  assert.ok(existsSync(join(spamLoraAdapter, 'adapter_config.json')), 'needs the spam-lora test first');
  const r = await run('spam-lora-continue', [
    ...quickSpam,
    ...quickCorpus,
    `steps.lora.settings.adapter=${spamLoraAdapter}`,
  ]);
  assert.equal(r.code, 0, r.out);
  // As loaded, the adapter scores exactly what spam-lora's run reported for it on the same test split.
  const exported = reportOf(join(runs, 'spam-lora', 'latest'), 'evaluate');
  const loaded = reportOf(r.runDir, 'loaded');
  for (const m of ['loss', 'accuracy', 'f1']) assert.ok(Math.abs(loaded[m].with_adapter - exported[m].with_adapter) < 1e-6, `${m}: ${loaded[m].with_adapter} vs ${exported[m].with_adapter}`);
  // Trained further: its weights moved from the loaded ones, and it was scored again.
  const after = reportOf(r.runDir, 'evaluate');
  assert.ok(Number.isFinite(after.accuracy.with_adapter) && Number.isFinite(after.reference_perplexity.with_adapter));
  const before = readSafetensors(join(spamLoraAdapter, 'adapter_model.safetensors')).tensors;
  const now = readSafetensors(join(r.runDir, 'export', 'adapter', 'adapter_model.safetensors')).tensors;
  assert.deepEqual([...now.keys()].sort(), [...before.keys()].sort());
  const moved = [...before].some(([k, t]) => tf.tidy(() => tf.max(tf.abs(tf.sub(t, now.get(k)!))).dataSync()[0]) > 0);
  tf.dispose([...before.values(), ...now.values()]);
  assert.ok(moved, 'training changed the adapter');
  assert.match(readFileSync(join(r.runDir, 'run.log'), 'utf8'), /loaded lora adapter \\"default\\" from [^"]* \(trainable\)/);
});

test('spam-lora-merge merges the adapter spam-lora exported into the base and exports the merged checkpoint', async () => {
  const merged = join(tmp, 'models', 'spam-lora-merged');
  const r = await run('spam-lora-merge', [...quickSpam, `steps.lora.settings.adapter=${spamLoraAdapter}`, `steps.export.settings.merged_path=${merged}`]);
  assert.equal(r.code, 0, r.out);
  const exported = reportOf(join(runs, 'spam-lora', 'latest'), 'evaluate');
  assert.ok(Math.abs(reportOf(r.runDir, 'evaluate').accuracy.with_adapter - exported.accuracy.with_adapter) < 1e-9);
  const config = JSON.parse(readFileSync(join(merged, 'config.json'), 'utf8'));
  assert.equal(config.model_type, 'gpt2');
  const { tensors } = readSafetensors(join(merged, 'model.safetensors'));
  const baseTensors = readSafetensors(join(base, 'model.safetensors')).tensors;
  // The base's own names, no adapter tensors; the adapted layers changed, the others did not.
  assert.deepEqual([...tensors.keys()].sort(), [...baseTensors.keys()].sort());
  const diff = (k: string) => tf.tidy(() => tf.max(tf.abs(tf.sub(tensors.get(k)!, baseTensors.get(k)!))).dataSync()[0]);
  assert.ok(diff('transformer.h.0.attn.c_attn.weight') > 0);
  assert.equal(diff('transformer.wte.weight'), 0);
  tf.dispose([...tensors.values(), ...baseTensors.values()]);
});
