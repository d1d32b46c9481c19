/**
 * The comparison's collection and rendering on synthetic run folders (written here with known
 * numbers), its serving measurement on a tiny GPT-2 with a real LoRA adapter, and the peak-memory
 * measurement of a child process that allocates a known amount.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { createModel, manualSeed, savePretrained } from '@peftkit/models';
import { injectLora, writeHfAdapter } from '@peftkit/lora';
import { collectRun, dirBytes, type MethodResult } from './collect.js';
import { runMeasured } from './measure.js';
import { CHARTS, constantAnswer, findings, renderHtml, renderMarkdown, servingRatios, servingTable, type Comparison, type MeasuredMethod } from './report.js';
import { FULL_COPIES, measureServing, servingRows, type ServingMeasurement } from './serving.js';
import { sizeOverrides } from './index.js';

const tmp = mkdtempSync(join(tmpdir(), 'peftkit-compare-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Fake {
  pipeline: string;
  method: string;
  trainable: number;
  /** with, without */
  accuracy: [number, number];
  precision: [number, number];
  recall: [number, number];
  f1: [number, number];
  ppl: [number, number];
  files: Record<string, number>;
  tokensSeen?: number;
}

const BASE_PARAMS = 1_334_016;

/** Writes a run folder as `peftkit run` does, with the numbers of `f`. */
function fakeRun(f: Fake): string {
  const dir = join(tmp, 'runs', f.pipeline, '20260101-000000');
  const inject = f.method === 'full' ? 'full' : 'adapter';
  mkdirSync(join(dir, 'evaluate'), { recursive: true });
  writeFileSync(join(dir, 'pipeline.resolved.json'), JSON.stringify({ name: f.pipeline, steps: { base: { kind: 'load' }, spam: { kind: 'dataset' }, [inject]: { kind: 'inject' }, train: { kind: 'train' }, evaluate: { kind: 'evaluate' }, export: { kind: 'export' } } }));
  writeFileSync(join(dir, 'environment.json'), JSON.stringify({ backend: 'wasm', tfjs: '4.22.0' }));
  const exportDir = join(dir, 'export', 'adapter');
  mkdirSync(exportDir, { recursive: true });
  for (const [name, n] of Object.entries(f.files)) writeFileSync(join(exportDir, name), Buffer.alloc(n, 7));
  const rows = [
    { pipeline_step: 'base', num_parameters: BASE_PARAMS },
    { pipeline_step: inject, method: f.method, trainable_params: f.trainable, all_params: BASE_PARAMS + (f.method === 'full' ? 0 : f.trainable), trainable_percent: 1 },
    { pipeline_step: 'train', global_step: 2, loss: 0.9, tokens_per_s: 100 },
    { pipeline_step: 'train', global_step: 4, loss: 0.7, tokens_per_s: 300 },
    { pipeline_step: 'train', global_step: 4, eval_loss: 0.8 },
    { pipeline_step: 'evaluate', split: 'test' },
    { pipeline_step: 'export', adapter: 'default', method: f.method, format: 'hf-peft', path: exportDir, adapter_bytes: 1 },
  ];
  writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  const log = [
    { message: 'train started', step: 'train', timestamp: '2026-01-01T00:00:10.000Z' },
    { message: 'step 2/4 loss 0.9', step: 'train', timestamp: '2026-01-01T00:00:15.000Z' },
    { message: 'train finished in 12.5 s', step: 'train', timestamp: '2026-01-01T00:00:22.500Z' },
  ];
  writeFileSync(join(dir, 'run.log'), log.map((r) => JSON.stringify(r)).join('\n') + '\n');
  if (f.tokensSeen !== undefined) {
    mkdirSync(join(dir, 'train', 'checkpoints', 'step-4'), { recursive: true });
    writeFileSync(join(dir, 'train', 'checkpoints', 'latest'), 'step-4');
    writeFileSync(join(dir, 'train', 'checkpoints', 'step-4', 'trainer_state.json'), JSON.stringify({ global_step: 4, tokens_seen: f.tokensSeen }));
  }
  const pair = (metric: string, [a, b]: [number, number]) => ({ metric, with_adapter: a, without_adapter: b, change: a - b });
  writeFileSync(join(dir, 'evaluate', 'report.json'), JSON.stringify({
    examples: 400,
    classification: { classes: ['ham', 'spam'], positive_class: 1, average: 'binary' },
    rows: [
      pair('accuracy', f.accuracy), pair('precision', f.precision), pair('recall', f.recall), pair('f1', f.f1), pair('reference_perplexity', f.ppl),
      { metric: 'majority_class_accuracy (always "ham")', with_adapter: 0.7, without_adapter: null, change: null },
      { metric: 'majority_class_f1 (always "ham")', with_adapter: 0, without_adapter: null, change: null },
    ],
  }));
  return dir;
}

const lora: Fake = { pipeline: 'spam-lora', method: 'lora', trainable: 65_536, accuracy: [0.9, 0.3], precision: [0.8, 0.3], recall: [0.9, 1], f1: [0.85, 0.46], ppl: [101, 100], files: { 'adapter_config.json': 600, 'adapter_model.safetensors': 262_224 }, tokensSeen: 8_000 };
// Answers "spam" for every mail: recall 1, accuracy = precision = the share of spam (0.3).
const prompt: Fake = { pipeline: 'spam-prompt', method: 'prompt-tuning', trainable: 2_048, accuracy: [0.3, 0.3], precision: [0.3, 0.3], recall: [1, 1], f1: [0.46, 0.46], ppl: [110, 100], files: { 'adapter_config.json': 500, 'adapter_model.safetensors': 8_272 } };
const full: Fake = { pipeline: 'spam-full', method: 'full', trainable: BASE_PARAMS, accuracy: [0.95, 0.3], precision: [0.9, 0.3], recall: [0.92, 1], f1: [0.91, 0.46], ppl: [130, 100], files: { 'config.json': 568, 'model.safetensors': 5_336_064, 'tokenizer.json': 20_000 }, tokensSeen: 8_000 };

describe('collectRun', () => {
  it('reads parameters, train time, tokens/s, loss, metrics and the exported bytes of a run folder', () => {
    const r = collectRun(fakeRun(lora));
    assert.equal(r.pipeline, 'spam-lora');
    assert.equal(r.method, 'lora');
    assert.equal(r.trainableParams, 65_536);
    assert.equal(r.baseParams, BASE_PARAMS);
    assert.ok(Math.abs(r.trainablePercentOfBase - (100 * 65_536) / BASE_PARAMS) < 1e-12);
    assert.equal(r.trainablePercentReported, 1, 'the inject row is passed through');
    assert.equal(r.trainSeconds, 12.5);
    assert.equal(r.tokensSeen, 8_000);
    assert.equal(r.tokensPerSecond, 8_000 / 12.5);
    assert.equal(r.steps, 4);
    assert.deepEqual(r.loss, [{ step: 2, loss: 0.9 }, { step: 4, loss: 0.7 }], 'eval rows are not train loss');
    assert.deepEqual(r.accuracy, { with_adapter: 0.9, without_adapter: 0.3 });
    assert.deepEqual(r.f1, { with_adapter: 0.85, without_adapter: 0.46 });
    assert.deepEqual(r.referencePerplexity, { with_adapter: 101, without_adapter: 100 });
    assert.deepEqual(r.majority, { label: 'ham', accuracy: 0.7, f1: 0 });
    assert.equal(r.positiveLabel, 'spam');
    assert.equal(r.testExamples, 400);
    assert.equal(r.savedBytes, 600 + 262_224, 'every file of the export folder, counted on disk');
    assert.equal(r.savedWeightBytes, 262_224);
    assert.deepEqual(r.savedFiles.map((f) => f.file), ['adapter_config.json', 'adapter_model.safetensors']);
  });

  it('without a checkpoint, tokens/s is the mean of the logged rates', () => {
    const r = collectRun(fakeRun(prompt));
    assert.equal(r.tokensSeen, null);
    assert.equal(r.tokensPerSecond, 200);
  });

  it('names the file and what is missing in an incomplete run', () => {
    const dir = fakeRun({ ...lora, pipeline: 'spam-broken' });
    rmSync(join(dir, 'evaluate', 'report.json'));
    assert.throws(() => collectRun(dir), (e: Error) => e instanceof UserError && e.message.includes(join(dir, 'evaluate', 'report.json')));
    writeFileSync(join(dir, 'run.log'), JSON.stringify({ message: 'train started', step: 'train', timestamp: '2026-01-01T00:00:10.000Z' }) + '\n');
    assert.throws(() => collectRun(dir), (e: Error) => e instanceof UserError && /run\.log: "train finished" of step "train" not found/.test(e.message));
    assert.throws(() => collectRun(tmp), (e: Error) => e instanceof UserError && /not a run folder/.test(e.message));
  });
});

const MiB = 2 ** 20;
const serving: ServingMeasurement = {
  counts: [1, 4, 16],
  baseDiskBytes: 5_400_000,
  baseMemoryBytes: 5_336_064,
  setups: [
    { label: 'LoRA adapters', adapterDiskBytes: 262_824, baseMemoryBytes: 5_336_064, added: [1, 4, 16].map((n) => ({ n, bytes: n * 262_144 })) },
    { label: 'QLoRA adapters (NF4 base)', adapterDiskBytes: 262_824, baseMemoryBytes: 1_500_000, added: [1, 4, 16].map((n) => ({ n, bytes: n * 262_144 })) },
    { label: 'broken', adapterDiskBytes: 1, baseMemoryBytes: 1, added: [], error: 'cannot load' },
  ],
  full: { diskBytes: 5_356_632, loaded: [1, 4, 16].map((n) => ({ n, bytes: n * 5_336_064 })) },
};

describe('serving N tasks', () => {
  it('adds the measured adapter bytes to one base, and multiplies the full checkpoint', () => {
    const rows = servingRows(serving);
    assert.equal(rows.length, 9, 'the setup that failed to load has no rows');
    const at = (setup: string, n: number) => rows.find((r) => r.setup === setup && r.n === n)!;
    assert.deepEqual(at(FULL_COPIES, 16), { setup: FULL_COPIES, n: 16, memoryBytes: 16 * 5_336_064, diskBytes: 16 * 5_356_632, perTaskMemoryBytes: 5_336_064 });
    assert.deepEqual(at('one base + N LoRA adapters', 4), { setup: 'one base + N LoRA adapters', n: 4, memoryBytes: 5_336_064 + 4 * 262_144, diskBytes: 5_400_000 + 4 * 262_824, perTaskMemoryBytes: 262_144 });
    assert.equal(at('one base + N QLoRA adapters (NF4 base)', 16).memoryBytes, 1_500_000 + 16 * 262_144);
    const ratios = servingRatios(serving);
    assert.equal(ratios.length, 2);
    assert.ok(Math.abs(ratios[0]!.memory - (16 * 5_336_064) / (5_336_064 + 16 * 262_144)) < 1e-12);
    assert.ok(Math.abs(ratios[0]!.disk - (16 * 5_356_632) / (5_400_000 + 16 * 262_824)) < 1e-12);
    const t = servingTable(serving);
    assert.deepEqual(t.rows[1], ['one base + N LoRA adapters', '262,144 B (256.0 KiB)', ...[1, 4, 16].map((n) => ((5_336_064 + n * 262_144) / MiB).toFixed(2)), ...[1, 4, 16].map((n) => ((5_400_000 + n * 262_824) / MiB).toFixed(2))]);
  });

  describe('measureServing on a tiny GPT-2', () => {
    before(async () => {
      await initBackend('wasm');
      manualSeed(3);
    });

    it('measures each LoRA adapter at its own floats and each full copy at the whole model', async () => {
      const config = { model_type: 'gpt2', n_embd: 16, n_layer: 2, n_head: 2, vocab_size: 40, n_positions: 32 };
      const baseDir = join(tmp, 'tiny-base');
      const model = createModel(config, 'causal-lm');
      savePretrained({ model, source: 'tiny' }, baseDir);
      const h = injectLora(model, { r: 2, lora_alpha: 4, target_modules: ['c_attn'] }, { seed: 1 });
      const loraFloats = [...h.trainableParameters()].reduce((a, [, v]) => a + v.size, 0);
      assert.equal(loraFloats, 2 * 2 * (16 + 48), 'r × (in + out) per c_attn, 2 layers');
      const adapterDir = join(tmp, 'tiny-lora');
      writeHfAdapter(h, adapterDir, baseDir);
      model.dispose();

      const before = tf.memory().numBytes;
      const m = await measureServing(baseDir, dirBytes(baseDir), [{ label: 'LoRA adapters', adapterDir, adapterDiskBytes: dirBytes(adapterDir) }], { dir: baseDir, diskBytes: dirBytes(baseDir) }, [1, 3]);
      assert.equal(tf.memory().numBytes, before, 'every model it loaded is disposed');
      const lora = m.setups[0]!;
      assert.equal(lora.error, undefined);
      assert.deepEqual(lora.added, [{ n: 1, bytes: 4 * loraFloats }, { n: 3, bytes: 3 * 4 * loraFloats }]);
      // GPT-2 ties lm_head to wte: the tensors hold each float once.
      const floats = 40 * 16 + 32 * 16 + 2 * (2 * 16 + 16 * 48 + 48 + 16 * 16 + 16 + 2 * 16 + 16 * 64 + 64 + 64 * 16 + 16) + 2 * 16;
      assert.equal(m.baseMemoryBytes, 4 * floats);
      assert.deepEqual(m.full!.loaded, [{ n: 1, bytes: 4 * floats }, { n: 3, bytes: 3 * 4 * floats }]);
    });
  });
});

describe('runMeasured', () => {
  it('reports the peak RSS of a child that touches 96 MiB, and its output', async () => {
    const r = await runMeasured(['-e', 'const b = Buffer.alloc(96 * 2 ** 20, 1); console.log("sum", b[5] + b[b.length - 1]); setTimeout(() => {}, 400)'], { cwd: tmp });
    assert.equal(r.code, 0);
    assert.match(r.output, /sum 2/);
    assert.ok(r.reportedMaxRssBytes !== null && r.reportedMaxRssBytes >= 96 * MiB, `maxRSS ${r.reportedMaxRssBytes}`);
    assert.ok(r.polledHwmBytes >= 96 * MiB, `VmHWM ${r.polledHwmBytes}`);
    assert.equal(r.peakRssBytes, Math.max(r.reportedMaxRssBytes, r.polledHwmBytes));
  });
});

describe('the report', () => {
  const measured = (f: Fake, rss: number): MeasuredMethod => ({ ...collectRun(fakeRun(f)), peakRssBytes: rss * MiB, wallSeconds: 60, loadAverage: 2 });
  let c: Comparison;
  before(() => {
    c = {
      date: '2026-01-01T00:00:00.000Z',
      command: 'node --conditions=peftkit-source --import tsx tools/compare/index.ts --train 800',
      machine: { cpuModel: 'Test CPU', cpus: 2, memoryBytes: 8 * 2 ** 30, node: 'v20', tfjs: '4.22.0', backend: 'wasm', platform: 'linux x64' },
      overrides: sizeOverrides({ train: 800, validation: 128, test: 400, maxLength: 112, loggingSteps: 2 }),
      sizes: '800 training mails',
      base: { dir: 'models/spam-base', params: BASE_PARAMS, diskBytes: 5_400_000, modelType: 'GPT-2', layers: 4, hidden: 128 },
      methods: [measured(lora, 600), measured(prompt, 500), measured(full, 800)],
      serving,
    };
  });

  it('the overrides size every run the same way', () => {
    assert.ok(c.overrides.includes('steps.spam.settings.limit={"train":800,"validation":128,"test":400}'));
    assert.ok(c.overrides.includes('steps.spam.settings.max_length=112') && c.overrides.includes('steps.corpus.settings.max_length=112'));
  });

  it('tells which runs answer one class for every mail', () => {
    const [l, p] = c.methods as MethodResult[];
    assert.equal(constantAnswer(l!, 'with_adapter'), null);
    assert.equal(constantAnswer(p!, 'with_adapter'), 'spam');
    assert.equal(constantAnswer(l!, 'without_adapter'), 'spam');
    const f = findings(c);
    assert.ok(f.some((s) => s.includes('LoRA, full fine-tuning beat that accuracy after training, 1 of 3 does not')), f.join('\n'));
    assert.ok(f.some((s) => s.includes('prompt tuning (always "spam")')));
    assert.ok(f.some((s) => s.startsWith('The most accurate parameter-efficient method is LoRA: accuracy 0.900')));
    assert.ok(f.some((s) => s.endsWith('in 4 steps at the learning rate of its pipeline file: prompt tuning.')), 'accuracy 0.3 with and without');
    assert.ok(f.includes('Last logged training loss (the chart shows the curves): LoRA 0.70, prompt tuning 0.70, full fine-tuning 0.70.'));
    assert.ok(f.some((s) => s.includes('LoRA ×1.01, prompt tuning ×1.10, full fine-tuning ×1.30; the largest rise is full fine-tuning\'s')));
    assert.ok(f.some((s) => s.includes(`${((16 * 5_336_064) / (5_336_064 + 16 * 262_144)).toFixed(1)}× less tensor memory`)));
  });

  it('Markdown: the table with the measured values', () => {
    const md = renderMarkdown(c);
    const pctLora = ((100 * 65_536) / BASE_PARAMS).toFixed(2);
    assert.ok(md.includes(`| LoRA | spam-lora | 65,536 | ${pctLora} | 600 | 12.5 | 640 | 0.900 (0.300) | 0.850 (0.460) | 100.0 → 101.0 (×1.01) | 262,824 B (256.7 KiB) |`), md);
    assert.ok(md.includes('| full fine-tuning | spam-full | 1,334,016 | 100.00 | 800 |'));
    assert.ok(md.includes('| prompt tuning | spam-prompt | 2,048 | 0.154 |'));
    assert.ok(md.includes('1.3M-parameter GPT-2 (4 layers, width 128)'));
    assert.ok(md.includes('- broken: not measured (cannot load)'));
    assert.ok(md.includes(c.command));
  });

  it('HTML: self-contained, one SVG per chart, the same tables', async () => {
    const html = await renderHtml(c);
    assert.equal(html.match(/<svg\b/g)?.length, CHARTS.length);
    for (const name of CHARTS) assert.ok(html.includes(`<figure id="chart-${name}"><svg`), name);
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|@import|url\(/i);
    assert.doesNotMatch(html, /\b(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i, 'nothing is fetched');
    assert.ok(html.includes('<td class="r">65,536</td>'));
    assert.ok(html.includes('<td class="l">one base + N LoRA adapters</td>'));
    // The loss chart draws one line per method.
    const loss = /<figure id="chart-loss">([\s\S]*?)<\/figure>/.exec(html)![1]!;
    assert.equal(loss.match(/aria-roledescription="line mark"/g)?.length, 3);
    assert.equal(loss.match(/aria-roledescription="point"/g)?.length, 3 * 2, 'two logged steps each');
  });
});
