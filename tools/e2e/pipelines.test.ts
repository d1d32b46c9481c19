/**
 * The real pipeline files, end to end, at their own quick sizes (`--quick`: each file's "quick"
 * block): the quick spam data and a small tokenizer are made in a temporary folder, `pretrain-base`
 * trains a base there, and every spam-* twin fine-tunes it, evaluates and exports. Only paths are
 * changed, with the `--set` overrides a user has (sequence lengths stay as written, so virtual
 * tokens that do not fit the base's positions fail here).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
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

for (const pipeline of ['spam-lora', 'spam-qlora', 'spam-adapter', 'spam-prefix', 'spam-prompt', 'spam-full', 'spam-ia3']) {
  test(`${pipeline} fine-tunes the base, reports accuracy and F1 with and without the adapter, and exports`, async () => {
    assert.ok(existsSync(join(base, 'model.safetensors')), 'needs the pretrain-base test first');
    const spam = (s: string) => join(data, 'spam', `${s}.jsonl`);
    const r = await run(pipeline, [
      `steps.base.settings.model=${base}`,
      `steps.spam.settings.files={"train":"${spam('train')}","validation":"${spam('validation')}","test":"${spam('test')}"}`,
      `steps.corpus.settings.files={"train":"${join(data, 'corpus', 'validation.jsonl')}"}`,
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
    const exported = readdirSync(join(r.runDir, 'export'), { recursive: true }).map(String);
    assert.ok(exported.some((f) => /adapter_config\.json$|config\.json$/.test(f)), exported.join(', '));
    // The template, labels and label words it was trained with travel with it (generate and classify apply them).
    const format = exported.find((f) => f.endsWith('prompt_format.json'));
    assert.ok(format, exported.join(', '));
    assert.deepEqual(JSON.parse(readFileSync(join(r.runDir, 'export', format), 'utf8')).labels, ['ham', 'spam']);
  });
}
