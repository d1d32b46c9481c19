/**
 * The measured comparison of methods: runs the spam-* pipelines (LoRA, QLoRA, Houlsby adapter,
 * prefix tuning, prompt tuning, full fine-tuning) one after another, each in its own process with
 * the same size overrides, measures each process's peak RSS, collects what each run wrote, measures
 * the memory of serving N tasks from one base against N full copies, and writes docs/comparison.md
 * and docs/comparison.html.
 *
 *   node --conditions=peftkit-source --import tsx tools/compare/index.ts \
 *     [--pipelines spam-lora,spam-qlora,spam-adapter,spam-prefix,spam-prompt,spam-full] \
 *     [--train 800] [--validation 128] [--test 400] [--max-length 112] [--logging-steps 2] \
 *     [--counts 1,4,16] [--runs-dir runs/compare] [--base models/spam-base] [--data data] \
 *     [--set key=value ...] [--md docs/comparison.md] [--html docs/comparison.html] [--reuse]
 *
 * `--reuse` runs nothing: it re-collects the runs listed in `<runs-dir>/comparison.json` (written
 * after each run, with the peak memory measured then) and writes the report again.
 * Needs models/spam-base (pipelines/pretrain-base.json) and data/ (`npx nx run pipelines:prepare-data`),
 * or `--base` and `--data` pointing elsewhere.
 */
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { UserError, initBackend, writeFileAtomic, writeJsonAtomic } from '@peftkit/core';

/** The line in docs/comparison.md after which the text is written by hand and kept when the report is rewritten. */
const HAND_WRITTEN = '<!-- written by hand: tools/compare keeps everything below this line -->';
import { repoRoot } from '@peftkit/models/testing';
import { collectRun, dirBytes } from './collect.js';
import { runMeasured } from './measure.js';
import { SERVING_LABELS, renderHtml, renderMarkdown, type Comparison, type MeasuredMethod } from './report.js';
import { measureServing, type AdapterSetup } from './serving.js';

/** What is kept of each run between the runs (and for `--reuse`). */
interface RunRecord {
  pipeline: string;
  runDir: string | null;
  code: number | null;
  peakRssBytes: number;
  reportedMaxRssBytes: number | null;
  polledHwmBytes: number;
  wallSeconds: number;
  loadAverage: number;
  log: string;
}


/** The `--set` overrides that size every run the same way. */
export function sizeOverrides(o: { train: number; validation: number; test: number; maxLength: number; loggingSteps: number; base?: string; data?: string }): string[] {
  const sets = [
    `steps.spam.settings.limit=${JSON.stringify({ train: o.train, validation: o.validation, test: o.test })}`,
    `steps.spam.settings.max_length=${o.maxLength}`,
    'steps.corpus.settings.limit={"train":64}',
    `steps.corpus.settings.max_length=${o.maxLength}`,
    'steps.train.settings.num_train_epochs=1',
    `steps.train.settings.logging_steps=${o.loggingSteps}`,
    'steps.train.settings.eval_steps=null',
    'steps.train.settings.save_steps=0',
  ];
  if (o.base) sets.push(`steps.base.settings.model=${o.base}`);
  if (o.data) {
    const f = (s: string) => join(o.data!, 'spam', `${s}.jsonl`);
    sets.push(`steps.spam.settings.files=${JSON.stringify({ train: f('train'), validation: f('validation'), test: f('test') })}`);
    sets.push(`steps.corpus.settings.files=${JSON.stringify({ train: join(o.data, 'corpus', 'validation.jsonl') })}`);
  }
  return sets;
}

async function main(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      pipelines: { type: 'string', default: 'spam-lora,spam-qlora,spam-adapter,spam-prefix,spam-prompt,spam-full' },
      train: { type: 'string', default: '800' },
      validation: { type: 'string', default: '128' },
      test: { type: 'string', default: '400' },
      'max-length': { type: 'string', default: '112' },
      'logging-steps': { type: 'string', default: '2' },
      counts: { type: 'string', default: '1,4,16' },
      'runs-dir': { type: 'string', default: 'runs/compare' },
      base: { type: 'string' },
      data: { type: 'string' },
      set: { type: 'string', multiple: true, default: [] },
      md: { type: 'string', default: 'docs/comparison.md' },
      html: { type: 'string', default: 'docs/comparison.html' },
      reuse: { type: 'boolean', default: false },
    },
  });
  const root = repoRoot();
  const at = (p: string) => resolve(root, p);
  const intOf = (name: string, v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new UserError(`--${name} must be a positive integer, got "${v}"`);
    return n;
  };
  const pipelines = a.pipelines.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of pipelines) if (!existsSync(at(`pipelines/${p}.json`))) throw new UserError(`--pipelines: pipelines/${p}.json does not exist`);
  const counts = a.counts.split(',').map((s) => intOf('counts', s));
  const runsDir = at(a['runs-dir']);
  const baseDir = at(a.base ?? 'models/spam-base');
  if (!existsSync(join(baseDir, 'model.safetensors'))) {
    throw new UserError(`${relative(root, baseDir) || baseDir}/model.safetensors does not exist: the base model is missing`, { hint: 'run `npx nx run pipelines:pretrain-base` first, or pass --base <model folder>' });
  }
  const sizes = { train: intOf('train', a.train), validation: intOf('validation', a.validation), test: intOf('test', a.test), maxLength: intOf('max-length', a['max-length']), loggingSteps: intOf('logging-steps', a['logging-steps']) };
  const overrides = [...sizeOverrides({ ...sizes, base: a.base ? baseDir : undefined, data: a.data ? at(a.data) : undefined }), ...a.set];
  const stateFile = join(runsDir, 'comparison.json');
  let command = `node --conditions=peftkit-source --import tsx tools/compare/index.ts ${process.argv.slice(2).map((x) => (/^[\w./=,:-]+$/.test(x) ? x : `'${x.replace(/'/g, `'\\''`)}'`)).join(' ')}`.trimEnd();

  let records: RunRecord[] = [];
  let finishedAt = '';
  if (a.reuse) {
    if (!existsSync(stateFile)) throw new UserError(`--reuse: ${stateFile} does not exist`, { hint: 'run without --reuse first' });
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { records: RunRecord[]; command: string; finishedAt?: string };
    // The report describes the runs: the command and time that made them, not this re-rendering.
    ({ records, command } = state);
    finishedAt = state.finishedAt ?? '';
  } else {
    for (const p of pipelines) {
      const log = join(runsDir, `${p}.out.log`);
      const args = [at('packages/cli/bin/peftkit.js'), 'run', at(`pipelines/${p}.json`), '--runs-dir', runsDir, ...overrides.flatMap((s) => ['--set', s])];
      console.log(`[compare] ${p}: running (output in ${relative(root, log)})`);
      writeFileAtomic(log, ''); // creates the folder; the stream then appends as the child writes
      const tee = createWriteStream(log, { flags: 'a' });
      const r = await runMeasured(args, { cwd: root, tee });
      await new Promise((ok) => tee.end(ok));
      const runDir = /^run folder: (.+?)(?: \(log: run\.log\))?$/m.exec(r.output)?.[1]?.trim() ?? null;
      const rec: RunRecord = { pipeline: p, runDir, code: r.code, peakRssBytes: r.peakRssBytes, reportedMaxRssBytes: r.reportedMaxRssBytes, polledHwmBytes: r.polledHwmBytes, wallSeconds: r.wallSeconds, loadAverage: loadavg()[0]!, log };
      records.push(rec);
      console.log(`[compare] ${p}: exit ${r.code} in ${r.wallSeconds.toFixed(0)} s, peak RSS ${(r.peakRssBytes / 2 ** 20).toFixed(0)} MiB, run folder ${runDir}`);
      writeJsonAtomic(stateFile, { command, overrides, records });
    }
    finishedAt = new Date().toISOString();
    writeJsonAtomic(stateFile, { command, overrides, records, finishedAt });
  }

  const methods: MeasuredMethod[] = [];
  const failed: string[] = [];
  for (const r of records) {
    if (r.code !== 0 || !r.runDir) {
      failed.push(`${r.pipeline} (exit ${r.code}; see ${r.log})`);
      continue;
    }
    methods.push({ ...collectRun(r.runDir), peakRssBytes: r.peakRssBytes, wallSeconds: r.wallSeconds, loadAverage: r.loadAverage });
  }
  if (!methods.length) throw new UserError(`no run finished: ${failed.join(', ')}`);
  if (failed.length) console.error(`[compare] left out of the report, the run failed: ${failed.join(', ')}`);

  // Serving: the exported adapters of this comparison, loaded onto the same base.
  await initBackend('wasm');
  const setups: AdapterSetup[] = [];
  for (const m of methods) {
    if (m.method === 'full') continue;
    const setup: AdapterSetup = { label: SERVING_LABELS[m.method] ?? `${m.method} adapters`, adapterDir: m.exportDir, adapterDiskBytes: m.savedBytes };
    if (m.method === 'qlora') {
      const resolved = JSON.parse(readFileSync(join(m.runDir, 'pipeline.resolved.json'), 'utf8')) as { steps: Record<string, { kind: string; settings?: Record<string, unknown> }> };
      const q = Object.values(resolved.steps).find((s) => s.kind === 'quantize');
      setup.quantize = { quant_type: 'nf4', blocksize: 64, double_quant: true, ...(q?.settings ?? {}) };
    }
    setups.push(setup);
  }
  const full = methods.find((m) => m.method === 'full');
  console.log('[compare] measuring serving memory');
  const baseDiskBytes = dirBytes(baseDir);
  const serving = await measureServing(baseDir, baseDiskBytes, setups, full ? { dir: full.exportDir, diskBytes: full.savedBytes } : null, counts);

  const baseConfig = JSON.parse(readFileSync(join(baseDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const nPositions = baseConfig.n_positions ?? baseConfig.max_position_embeddings ?? '?';
  const env = JSON.parse(readFileSync(join(methods[0]!.runDir, 'environment.json'), 'utf8')) as Record<string, string | number>;
  const comparison: Comparison = {
    date: finishedAt || new Date().toISOString(),
    command,
    machine: { cpuModel: cpus()[0]?.model?.trim() ?? String(env.cpuModel), cpus: cpus().length, memoryBytes: totalmem(), node: process.version, tfjs: String(env.tfjs), backend: String(env.backendDetail ?? env.backend), platform: `${process.platform} ${process.arch}` },
    overrides,
    sizes: `spam/ham mails: ${sizes.train} training, ${sizes.validation} validation (loaded, not used: no evaluation during training), ${sizes.test} test, each cut to ${sizes.maxLength} tokens, and the reference corpus packed in blocks of ${sizes.maxLength} (so that the 16 virtual tokens of prefix and prompt tuning still fit the base's ${nPositions} positions); 1 epoch, batch 16 (${Math.ceil(sizes.train / 16)} optimizer steps), loss logged every ${sizes.loggingSteps} steps; 64 held-out corpus rows for the reference perplexity; learning rates and method settings as in each pipeline file${failed.length ? `; runs that failed and are left out: ${failed.join(', ')}` : ''}`,
    base: {
      dir: relative(root, baseDir) || baseDir,
      params: methods[0]!.baseParams,
      diskBytes: baseDiskBytes,
      modelType: String(baseConfig.model_type ?? '?').toUpperCase().replace(/^GPT2$/, 'GPT-2'),
      layers: Number(baseConfig.n_layer ?? baseConfig.num_hidden_layers),
      hidden: Number(baseConfig.n_embd ?? baseConfig.hidden_size),
    },
    // Paths in the report are relative to the repository when they are inside it.
    methods: methods.map((m) => ({ ...m, runDir: m.runDir.startsWith(root) ? relative(root, m.runDir) : m.runDir, exportDir: m.exportDir.startsWith(root) ? relative(root, m.exportDir) : m.exportDir })),
    serving,
  };
  writeJsonAtomic(stateFile, { command, overrides, records, finishedAt, comparison });
  // Sections written by hand below HAND_WRITTEN in the old file survive a rewrite.
  const old = existsSync(at(a.md)) ? readFileSync(at(a.md), 'utf8') : '';
  const kept = old.includes(HAND_WRITTEN) ? old.slice(old.indexOf(HAND_WRITTEN)) : '';
  writeFileAtomic(at(a.md), renderMarkdown(comparison) + (kept ? `\n${kept}` : ''));
  writeFileAtomic(at(a.html), await renderHtml(comparison));
  console.log(`[compare] wrote ${a.md} and ${a.html}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e) => {
    if (e instanceof UserError) {
      console.error(`error: ${e.message}${e.details?.hint ? `\n  hint: ${e.details.hint}` : ''}`);
      process.exit(1);
    }
    throw e;
  });
}
