/**
 * peftkit (WASM) against PyTorch (CPU) on the same machine: runs tools/bench/train.ts and
 * tools/bench/train_torch.py for each (model, mode) of tools/bench/train-spec.json that the spec has a
 * run for, the two back to back so that both see about the same load from other processes, and prints
 * one Markdown table (and a second with CPU time and load) for docs/benchmarks.md.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/compare.ts \
 *     [--models gpt2,llama,gpt2-main] [--modes forward,lora,full,full-sgd,generate] [--batch B] [--seq T] [--warmup W] [--steps N] \
 *     [--new-tokens 64] [--config-override '{"n_layer": 1}'] [--python /usr/bin/python3] [--torch-threads 2,1] [--repeat R] [--json results.json]
 *
 * --repeat R runs each (model, mode) R rounds, peftkit then PyTorch in each, and prints medians: tokens/s, the median
 * of the rounds' own ratios (each round's peftkit against the PyTorch run right after it) and their range. Single
 * runs on this shared 2-core virtual machine move by 15 to 25 %, both sides alike; paired rounds show the spread.
 *
 * The rows of issue 14, on a quiet machine (each command's defaults are the spec's shapes):
 *
 *   # the main job's base (GPT-2 128 x 4, vocab 4096) at its batch 16 x 128: pretraining (`full`: full
 *   # fine-tuning with AdamW, as pipelines/pretrain-base.json trains it) and the LoRA step of spam-lora
 *   node --conditions=peftkit-source --import tsx tools/bench/compare.ts --models gpt2-main --modes full,lora
 *   # greedy generation with the key/value cache: GPT-2 small (random weights), batch 1, 16-token prompt,
 *   # 64 new tokens; tokens/s = new tokens / seconds of a generation (build excluded), median of 5 after 1 warm-up
 *   node --conditions=peftkit-source --import tsx tools/bench/compare.ts --models gpt2 --modes generate
 *
 * A quick check that both sides run end to end (small shapes; figures that mean nothing):
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/compare.ts --models gpt2-main --modes full,lora --batch 2 --seq 16 --steps 1 --torch-threads 1
 *   node --conditions=peftkit-source --import tsx tools/bench/compare.ts --models gpt2 --modes generate --config-override '{"n_layer":1}' --new-tokens 8 --warmup 0 --steps 1 --torch-threads 1
 *
 * PyTorch: Debian's python3-torch with libopenblas0-openmp (train_torch.py sets LD_LIBRARY_PATH
 * for it and reports the BLAS it loaded), once per `--torch-threads` entry: 2 threads (both cores),
 * and 1 thread, the per-core comparison (run peftkit with PEFTKIT_WASM_THREADS=1 for its own). The Python is `--python`, else $PEFTKIT_TORCH_PYTHON,
 * else /usr/bin/python3; without torch there the PyTorch columns say so.
 *
 * Benchmarks are measured, never asserted in tests.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeJsonAtomic } from '@peftkit/core';
import { median, MODES, runSpec, type Mode } from './spec.js';
import type { RunResult } from './train.js';
import spec from './train-spec.json' with { type: 'json' };

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: Object.keys(spec.models).join(',') },
    modes: { type: 'string', default: MODES.join(',') },
    batch: { type: 'string' },
    seq: { type: 'string' },
    warmup: { type: 'string' },
    steps: { type: 'string' },
    'new-tokens': { type: 'string' },
    'config-override': { type: 'string' },
    'torch-threads': { type: 'string', default: '2,1' },
    repeat: { type: 'string', default: '1' },
    python: { type: 'string', default: process.env.PEFTKIT_TORCH_PYTHON ?? '/usr/bin/python3' },
    json: { type: 'string' },
  },
});

const here = dirname(fileURLToPath(import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'peftkit-bench-'));
const pass = (['batch', 'seq', 'warmup', 'steps', 'new-tokens', 'config-override'] as const).flatMap((k) => (args[k] ? [`--${k}`, args[k]!] : []));
const torchThreads = args['torch-threads']!.split(',').map(Number);
const hasTorch = spawnSync(args.python!, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

/** Runs one driver for one (model, mode) and reads its JSON; a crash of the driver itself becomes an error row. */
function run(cmd: string, argv: string[], impl: RunResult['impl'], model: string, mode: Mode, round: number, threads = 1): RoundResult {
  const out = join(tmp, `${impl}-${threads}-${model}-${mode}-${round}.json`);
  const p = spawnSync(cmd, [...argv, '--models', model, '--modes', mode, ...pass, '--json', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    return { threads, round, ...(JSON.parse(readFileSync(out, 'utf8')) as RunResult[])[0] };
  } catch {
    return { impl, model, mode, threads, round, error: `driver exited ${p.status}${p.error ? `: ${p.error.message}` : ''}` } as RoundResult;
  }
}

/** One driver run, and which round of --repeat it belongs to. */
type RoundResult = RunResult & { round: number };

const rounds = Math.max(1, Number(args.repeat));
const runs: RoundResult[] = [];
const started = new Date();
for (const model of args.models!.split(',')) {
  for (const mode of args.modes!.split(',') as Mode[]) {
    if (!runSpec(model, mode)) {
      process.stderr.write(`${model} ${mode}: skipped, train-spec.json has no ${mode} run for ${model}\n`);
      continue;
    }
    for (let round = 0; round < rounds; round++) {
      runs.push(run(process.execPath, [...process.execArgv, join(here, 'train.ts')], 'peftkit', model, mode, round));
      if (hasTorch) for (const th of torchThreads) runs.push(run(args.python!, [join(here, 'train_torch.py'), '--threads', String(th)], 'pytorch', model, mode, round, th));
    }
  }
}
rmSync(tmp, { recursive: true, force: true });
if (args.json) writeJsonAtomic(args.json, runs);

const mean = (xs: number[] | undefined) => (xs?.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
/** The runs of one (impl, model, mode, threads) over the rounds as one result: median tokens/s, largest memory, every step. */
function merge(group: RoundResult[]): RoundResult | undefined {
  const ok = group.filter((r) => !r.error);
  if (ok.length === 0) return group[0];
  const most = (f: (r: RunResult) => number | undefined | null) => Math.max(...ok.map((r) => f(r) ?? NaN));
  return {
    ...ok[0],
    tokensPerSecond: median(ok.map((r) => r.tokensPerSecond)),
    peakRssBytes: most((r) => r.peakRssBytes),
    wasmHeapBytes: most((r) => r.wasmHeapBytes),
    stepSeconds: ok.flatMap((r) => r.stepSeconds),
    cpuSeconds: ok.flatMap((r) => r.cpuSeconds),
  };
}
const key = (r: RoundResult) => `${r.impl}/${r.model}/${r.mode}/${r.threads}`;
const results: RoundResult[] = [...new Set(runs.map(key))].map((k) => merge(runs.filter((r) => key(r) === k))!);
/** Each round's peftkit tokens/s over the PyTorch run of the same round. */
const roundRatios = (p: RoundResult, th: number) =>
  runs
    .filter((r) => r.impl === 'peftkit' && r.model === p.model && r.mode === p.mode && !r.error)
    .map((pr) => [pr, runs.find((t) => t.impl === 'pytorch' && t.model === p.model && t.mode === p.mode && t.threads === th && t.round === pr.round && !t.error)] as const)
    .filter(([, t]) => t)
    .map(([pr, t]) => pr.tokensPerSecond / t!.tokensPerSecond);
const MiB = (b: number | undefined | null) => (b == null || Number.isNaN(b) ? '-' : (b / 2 ** 20).toFixed(0));
const num = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '-');
const MODE_LABEL: Record<Mode, string> = { forward: 'forward (no grad)', lora: 'LoRA step (AdamW)', full: 'full step (AdamW)', 'full-sgd': 'full step (SGD)', generate: 'greedy generation (KV cache)' };
const label = (r: RunResult) => (r.model === 'gpt2-main' && r.mode === 'full' ? 'full step (AdamW) = pretraining' : MODE_LABEL[r.mode]);
const shape = (r: RunResult) => `${r.batch} × ${r.seq}${r.mode === 'generate' ? ` + ${r.newTokens ?? '?'} new` : ''}`;
const failed = (r: RunResult | undefined) => (r ? (r.error ? `failed: ${r.error.replace(/\|/g, '/').slice(0, 240)}` : '') : hasTorch ? 'not run' : `no torch in ${args.python}`);

const engines = [...new Set(results.filter((r) => r.engine).map((r) => `${r.impl}: ${r.engine}`))];
console.log(`Run ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC${rounds > 1 ? `, ${rounds} rounds: medians; ratios are the median of the rounds' own (range in brackets)` : ''}.\n\n${engines.map((e) => `- ${e}`).join('\n')}\n`);
const torchCols = torchThreads.flatMap((th) => [`PyTorch ${th}T tok/s`, `peftkit / PyTorch ${th}T`]);
console.log(`| model | mode | batch × seq | trainable params | peftkit tok/s | ${torchCols.join(' | ')} | peftkit peak RSS MiB (WASM heap) | PyTorch peak RSS MiB |`);
console.log(`|---|---|---|---:|---:|${torchCols.map(() => '---:').join('|')}|---:|---:|`);
const torchOf = (p: RunResult, th: number) => results.find((r) => r.impl === 'pytorch' && r.model === p.model && r.mode === p.mode && r.threads === th);
const peft = results.filter((r) => r.impl === 'peftkit');
for (const p of peft) {
  const pt = p.error ? failed(p) : num(p.tokensPerSecond, 1);
  const cols = torchThreads.flatMap((th) => {
    const t = torchOf(p, th);
    const ratios = roundRatios(p, th);
    const range = ratios.length > 1 ? ` (${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})` : '';
    return [!t || t.error ? failed(t) : num(t.tokensPerSecond, 1), ratios.length ? `${median(ratios).toFixed(2)}×${range}` : '-'];
  });
  const all = [p, ...torchThreads.map((th) => torchOf(p, th))];
  const trainable = all.find((r) => r && !r.error && Number.isFinite(r.trainable))?.trainable;
  const t0 = all.slice(1).find((r) => r && !r.error);
  console.log(
    `| ${p.model} | ${label(p)} | ${shape(p)} | ${trainable === undefined ? '-' : trainable.toLocaleString('en-US')} | ${pt} | ${cols.join(' | ')} | ${p.error ? '-' : `${MiB(p.peakRssBytes)} (${MiB(p.wasmHeapBytes)})`} | ${t0 ? MiB(t0.peakRssBytes) : '-'} |`,
  );
}
if (peft.some((r) => r.mode === 'generate')) console.log('\nGeneration rows: tok/s counts new tokens (batch × new tokens / median seconds of a whole generation, prompt pass included, model build excluded).');
const cpuCols = ['peftkit', ...torchThreads.map((th) => `PyTorch ${th}T`)];
console.log('\nMean wall and CPU seconds per step (generation rows: per generation; CPU: user + system, all threads) and the machine\'s 1-minute load average during the timed steps (2 cores; other processes shared them):\n');
console.log(`| model | mode | ${cpuCols.map((c) => `${c} wall s / CPU s / load`).join(' | ')} |`);
console.log(`|---|---|${cpuCols.map(() => '---:').join('|')}|`);
for (const p of peft) {
  const cell = (r: RunResult | undefined) =>
    !r || r.error ? '-' : `${num(mean(r.stepSeconds), 2)} / ${num(mean(r.cpuSeconds), 2)} / ${num(r.loadAverage?.[0] ?? NaN, 1)}`;
  console.log(`| ${p.model} | ${p.mode} | ${[p, ...torchThreads.map((th) => torchOf(p, th))].map(cell).join(' | ')} |`);
}
