/**
 * Forward and training-step throughput and peak memory of peftkit on the WASM backend, for the
 * models of tools/bench/train-spec.json (GPT-2 small and a SmolLM-135M-shaped Llama, random
 * weights; also the main job's base, gpt2-main): forward (no gradient), a LoRA training step and a full
 * fine-tuning step, each with AdamW, and (GPT-2 small) greedy generation with the key/value cache.
 * tools/bench/train_torch.py measures the same in PyTorch; tools/bench/compare.ts runs both.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/train.ts \
 *     [--models gpt2,llama,gpt2-main] [--modes forward,lora,full,full-sgd,generate] [--batch B] [--seq T] [--warmup W] [--steps N]
 *     [--new-tokens 64] [--backend wasm|webgpu|cpu] [--gpu] [--config-override '{"n_layer": 2}'] [--timeout 600] [--profile] [--json results.json]
 *
 * --backend webgpu runs on tfjs's WebGPU backend (Dawn; llvmpipe when there is no GPU). --gpu takes the shapes and
 * LoRA settings of the spec's `gpu` block (issue 13: 8 x 512, r 8 on c_attn + c_proj, dropout 0.1) in place of
 * the per-model runs; --batch and friends still override. --config-override merges JSON into every model's config
 * (a smaller model where the full one is too slow, e.g. on llvmpipe; the results then say so in `notes`). A step reads its loss back asynchronously: the
 * one sync point that makes a step's wall time cover its device work (the trainer itself reads only at
 * logging steps); the profile (with --profile) also counts the kernels a step launches.
 *
 * Each (model, mode) runs in its own child process, so that each peak memory figure is that run's
 * alone (the WASM heap grows to its peak and never shrinks). --batch/--seq/--warmup/--steps
 * override the spec for every run.
 *
 * One step: forward, HF's causal-LM loss (labels = input ids, shifted; mean over B·(T-1) targets),
 * backward (`tf.variableGrads` over the trainable parameters), and an AdamW update
 * (packages/steps/src/training/adamw.ts, torch.optim.AdamW's arithmetic); `full-sgd` updates
 * p ← p − lr·g instead, without optimizer state. --profile times one more step with `tf.profile`
 * and adds the kernel time by kernel name to the result. LoRA: `injectLora` of
 * @peftkit/lora with the spec's r, alpha, dropout and target modules; the base is frozen.
 * Full: every parameter trainable (the tied embedding once). Tokens/s = batch · seq / mean step
 * seconds over N timed steps after W warm-up steps.
 *
 * generate (only models whose spec has a `generate` run): `generateAsync` of @peftkit/models (greedy,
 * the key/value cache, no EOS stop) on `batch` random prompts of `seq` tokens, `new_tokens` new tokens
 * each (--new-tokens), in eval mode. One timed "step" is one whole generation (prompt pass, then one
 * token at a time, each step reading its last-position logits [B, vocab] to the host for the argmax,
 * as HF's loop does); model build excluded. Tokens/s = batch · new tokens / median seconds of N
 * generations after W warm-up ones.
 *
 * Memory: peak RSS is the kernel's high-water mark (VmHWM of /proc/self/status, the figure
 * Python's resource.getrusage reports as ru_maxrss); the WASM heap size (its peak, since it never
 * shrinks; at most 4 GiB); and live tensor bytes (`tf.memory().numBytes`) sampled when the whole
 * forward pass is alive (inside the loss) and after the update (JavaScript cannot sample inside a
 * synchronous kernel, so the true peak during the backward pass can be somewhat higher).
 *
 * Benchmarks are measured, never asserted in tests.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { initBackend, writeJsonAtomic, type BackendChoice } from '@peftkit/core';
import { createModel, generateAsync, manualSeed, type PreTrainedModel } from '@peftkit/models';
import { injectLora } from '@peftkit/lora';
import { AdamW } from '../../packages/steps/src/training/adamw.js';
import { causalLmModelNllSum } from '../../packages/steps/src/training/losses.js';
import spec from './train-spec.json' with { type: 'json' };
import { median, MODES, runSpec, type Mode, type RunSpec } from './spec.js';

type ModelKey = keyof typeof spec.models;

/** One (model, mode) measurement; train_torch.py writes the same fields. */
export interface RunResult {
  impl: 'peftkit' | 'pytorch';
  /** Backend and threads, e.g. "@tensorflow/tfjs-backend-wasm 4.22.0 (SIMD, 2 threads)". */
  engine: string;
  /** Compute threads (peftkit: the WASM backend's pool, PEFTKIT_WASM_THREADS). */
  threads?: number;
  model: string;
  mode: Mode;
  batch: number;
  /** Prompt tokens per row for generate. */
  seq: number;
  /** generate: new tokens per row. */
  newTokens?: number;
  warmup: number;
  steps: number;
  /** Seconds of each timed step (generate: of each whole generation). */
  stepSeconds: number[];
  /** CPU seconds (user + system, all threads) of each timed step: less sensitive than wall time to other processes on the machine. */
  cpuSeconds: number[];
  /** 1-minute load average of the machine before and after the timed steps (other processes compete for the cores). */
  loadAverage: [number, number];
  /** batch · seq / mean step seconds; generate: batch · new tokens / median seconds of a generation. */
  tokensPerSecond: number;
  /** Parameters (elements) of the model, the tied embedding counted once. */
  parameters: number;
  /** Parameters the step updates (0 for forward). */
  trainable: number;
  /** Seconds to build the model with random weights. */
  buildSeconds: number;
  /** Peak resident set size of the process, bytes (VmHWM / ru_maxrss). */
  peakRssBytes: number;
  /** Resident set size right after building the model (and injecting LoRA), bytes. */
  rssAfterBuildBytes: number;
  /** peftkit: the WASM heap at the end (= its peak), bytes. */
  wasmHeapBytes?: number;
  /**
   * peftkit: peak `tf.memory().numBytes` sampled at the forward/backward boundary and after the
   * update. It counts every tensor handle, so a buffer shared by several (the clones tfjs saves for
   * the gradient) counts more than once: an upper bound on the live data, not the heap in use.
   */
  peakTensorBytes?: number;
  /** Loss of the first and last step (nats/token), a sanity check: about ln(vocab) with random weights. */
  loss?: [number, number];
  /** With --profile: kernels one step launches (tf.profile), and their summed time in ms when the backend times them. */
  kernelsPerStep?: number;
  kernelMsPerStep?: number;
  /** With --profile: kernel time of one extra step, by kernel and (products, transposes) by input shapes. */
  profile?: ProfileRow[];
  /** What differed from the spec or failed. */
  notes: string[];
  error?: string;
}

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: Object.keys(spec.models).join(',') },
    modes: { type: 'string', default: MODES.join(',') },
    batch: { type: 'string' },
    seq: { type: 'string' },
    warmup: { type: 'string' },
    steps: { type: 'string' },
    'new-tokens': { type: 'string' },
    timeout: { type: 'string', default: '600' },
    json: { type: 'string' },
    profile: { type: 'boolean', default: false },
    backend: { type: 'string', default: 'wasm' },
    gpu: { type: 'boolean', default: false },
    'config-override': { type: 'string' },
    child: { type: 'boolean', default: false },
  },
});

const MiB = (b: number | undefined) => (b === undefined ? '-' : (b / 2 ** 20).toFixed(0));

/** Peak RSS in bytes: the kernel's high-water mark where /proc exists, else the current RSS. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  return process.memoryUsage().rss;
}

function loadAverage(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return NaN;
  }
}

function wasmHeapBytes(): number | undefined {
  return (tf.backend() as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8?.length;
}

/** Plain SGD with AdamW's interface: p ← p − lr·g, one parameter at a time. */
class Sgd {
  constructor(readonly params: [string, tf.Variable][]) {}
  applyGradients(grads: Map<string, tf.Tensor>, lr: number): void {
    for (const [name, p] of this.params) {
      const g = grads.get(name);
      if (g) tf.tidy(() => p.assign(tf.sub(p, tf.mul(g, lr))));
    }
  }
}

/** One line of a kernel profile: a kernel (and, for products and transposes, its input shapes), total ms, calls, share of the step's kernel time. */
export interface ProfileRow {
  kernel: string;
  shapes?: string;
  ms: number;
  calls: number;
  percent: number;
}

/**
 * Kernel time of `fn` (tf.profile): by kernel name, and for BatchMatMul, Transpose and Sum also by
 * input shapes (Sum: and output shape); largest first. Custom-gradient ops show as "unnamed scope" wrappers around kernels that are
 * also listed on their own: they are left out of the total that `percent` divides by. Times are wall
 * clock per kernel, so other processes on the machine inflate them; the shares are what to read.
 */
async function profileKernels(fn: () => Promise<void>): Promise<{ rows: ProfileRow[]; kernels: number; ms: number }> {
  const info = await tf.profile(async () => {
    await fn();
    return [];
  });
  const by = new Map<string, { kernel: string; shapes?: string; ms: number; calls: number }>();
  let total = 0;
  const add = (key: string, kernel: string, shapes: string | undefined, ms: number) => {
    const e = by.get(key) ?? { kernel, shapes, ms: 0, calls: 0 };
    e.ms += ms;
    e.calls += 1;
    by.set(key, e);
  };
  for (const k of info.kernels) {
    const ms = await k.kernelTimeMs;
    if (typeof ms !== 'number' || !k.name || k.name === 'unnamed scope') continue;
    total += ms;
    add(k.name, k.name, undefined, ms);
    if (k.name === 'BatchMatMul' || k.name === 'Transpose' || k.name === 'Sum') {
      // A sum by input and output shape: which axes it reduced decides whether tfjs transposed first.
      const shapes = k.inputShapes.map((sh) => `[${sh.join(', ')}]`).join(' · ') + (k.name === 'Sum' ? ` → [${k.outputShapes[0]?.join(', ')}]` : '');
      add(`${k.name} ${shapes}`, k.name, shapes, ms);
    }
  }
  const rows = [...by.values()]
    .map((e) => ({ ...e, ms: Math.round(e.ms), percent: total > 0 ? Math.round((1000 * e.ms) / total) / 10 : NaN }))
    .sort((x, y) => y.ms - x.ms);
  return { rows, kernels: info.kernels.filter((k) => k.name && k.name !== 'unnamed scope').length, ms: total };
}

function printProfile(r: RunResult): void {
  if (!r.profile) return;
  console.log(`
Kernel time of one ${r.model} ${r.mode} step (${r.batch} x ${r.seq}), by kernel, then products, transposes and sums by input shapes:
`);
  console.log('| kernel | input shapes | ms | calls | % of kernel time |\n|---|---|---:|---:|---:|');
  const rows = [...r.profile.filter((p) => !p.shapes).slice(0, 16), ...r.profile.filter((p) => p.shapes).slice(0, 20)];
  // percent is NaN (null in JSON) where the backend does not time kernels (WebGPU without timestamp-query).
  for (const p of rows) console.log(`| ${p.kernel} | ${p.shapes ?? '(all)'} | ${p.ms} | ${p.calls} | ${Number.isFinite(p.percent) ? p.percent.toFixed(1) : '-'} |`);
}

async function runOne(key: ModelKey, mode: Mode): Promise<RunResult> {
  const m = spec.models[key];
  const r: RunSpec = args.gpu && mode !== 'generate' ? spec.gpu : runSpec(key, mode)!;
  const loraSpec = args.gpu ? spec.gpu.lora : spec.lora;
  // The gpu block names targets for gpt2 and llama; another model (gpt2-main) keeps its own.
  const gpuTargets = spec.gpu.lora_target_modules as Partial<Record<ModelKey, string[]>>;
  const targets0 = args.gpu ? (gpuTargets[key] ?? m.lora_target_modules) : m.lora_target_modules;
  const B = Number(args.batch ?? r.batch);
  const T = Number(args.seq ?? r.seq);
  const W = Number(args.warmup ?? r.warmup);
  const N = Number(args.steps ?? r.steps);
  const notes: string[] = [];
  let peakTensors = 0;
  const sampleTensors = () => {
    peakTensors = Math.max(peakTensors, tf.memory().numBytes);
  };
  // Progress on stderr, so that a run the WASM heap aborts says how far it got.
  const phase = (what: string) => process.stderr.write(`[${key} ${mode}] ${what}: tensors ${MiB(tf.memory().numBytes)} MiB, WASM heap ${MiB(wasmHeapBytes())} MiB, peak RSS ${MiB(peakRss())} MiB\n`);

  manualSeed(0);
  const t0 = performance.now();
  const override = args['config-override'] ? (JSON.parse(args['config-override']) as Record<string, unknown>) : undefined;
  if (override) notes.push(`config override ${JSON.stringify(override)}`);
  const model: PreTrainedModel = createModel({ ...m.config, ...override }, 'causal-lm');
  const parameters = model.numParameters();
  let params: [string, tf.Variable][] = [];
  if (mode === 'lora') {
    const handle = injectLora(model, { r: loraSpec.r, lora_alpha: loraSpec.lora_alpha, lora_dropout: loraSpec.lora_dropout, target_modules: targets0 }, { seed: 0 });
    params = handle.trainableParameters();
    const stray = model.trainableParameters().length - params.length;
    if (stray !== 0) notes.push(`model lists ${model.trainableParameters().length} trainable tensors, the adapter ${params.length}`);
  } else if (mode === 'full' || mode === 'full-sgd') {
    params = model.trainableParameters();
  }
  const trainable = params.reduce((s, [, v]) => s + v.size, 0);
  const buildSeconds = (performance.now() - t0) / 1000;
  const rssAfterBuildBytes = peakRss();
  phase('built');

  const ids = tf.tidy(() => tf.randomUniformInt([B, T], 0, model.config.vocab_size as number, 1)) as tf.Tensor2D;
  const targets = B * (T - 1);
  const losses: number[] = [];
  const newTokens = Number(args['new-tokens'] ?? r.new_tokens ?? 0);
  let step: () => Promise<void>;
  if (mode === 'generate') {
    model.eval();
    model.requiresGrad(false); // as `peftkit generate` serves it
    const prompts = (await ids.array()) as number[][];
    step = async () => {
      const { generated } = await generateAsync(model, prompts, { maxNewTokens: newTokens, eosTokenId: null });
      if (generated.some((g) => g.length !== newTokens)) throw new Error(`generate returned ${generated.map((g) => g.length)} tokens, expected ${newTokens} per row`);
      sampleTensors();
    };
  } else if (mode === 'forward') {
    model.eval();
    step = async () => {
      const out = model.forward({ inputIds: ids });
      await out.logits.data();
      sampleTensors();
      tf.dispose(out as unknown as tf.TensorContainer);
    };
  } else {
    model.train();
    // full-sgd: p ← p − lr·g, no optimizer state (for models whose AdamW moments do not fit the WASM heap).
    const opt = mode === 'full-sgd' ? new Sgd(params) : new AdamW(params, { weightDecay: spec.weight_decay });
    const vars = params.map(([, v]) => v);
    const nameOf = new Map(params.map(([n, v]) => [v.name, n]));
    step = async () => {
      const { value, grads } = tf.variableGrads(() => {
        // The train step's loss: the fused chunked LM head + loss when the head is plain, else logits.
        const loss = tf.div(causalLmModelNllSum(model, { inputIds: ids }, ids), targets) as tf.Scalar;
        sampleTensors(); // the whole forward pass is alive here, kept for the backward pass
        phase('forward done');
        return loss;
      }, vars);
      phase('backward done');
      const byName = new Map<string, tf.Tensor>();
      for (const [vn, g] of Object.entries(grads)) byName.set(nameOf.get(vn)!, g);
      opt.applyGradients(byName, spec.learning_rate);
      // The one read-back of a step (after the update is queued): also what waits for the device to finish.
      losses.push((await value.data())[0]);
      sampleTensors();
      phase('update done');
      value.dispose();
      tf.dispose(grads);
    };
  }

  for (let i = 0; i < W; i++) await step();
  const stepSeconds: number[] = [];
  const cpuSeconds: number[] = [];
  const load0 = loadAverage();
  for (let i = 0; i < N; i++) {
    const s0 = performance.now();
    const c0 = process.cpuUsage();
    await step();
    const c = process.cpuUsage(c0);
    stepSeconds.push((performance.now() - s0) / 1000);
    cpuSeconds.push((c.user + c.system) / 1e6);
  }
  const loadAvg: [number, number] = [load0, loadAverage()];
  const mean = stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length;
  const medianSeconds = median(stepSeconds);
  const prof = args.profile ? await profileKernels(step) : undefined;
  const profile = prof?.rows;
  const result: RunResult = {
    impl: 'peftkit',
    engine: '',
    model: key,
    mode,
    batch: B,
    seq: T,
    ...(mode === 'generate' ? { newTokens } : {}),
    warmup: W,
    steps: N,
    stepSeconds,
    cpuSeconds,
    loadAverage: loadAvg,
    tokensPerSecond: mode === 'generate' ? (B * newTokens) / medianSeconds : (B * T) / mean,
    parameters,
    trainable,
    buildSeconds,
    peakRssBytes: peakRss(),
    rssAfterBuildBytes,
    wasmHeapBytes: wasmHeapBytes(),
    peakTensorBytes: peakTensors,
    ...(losses.length ? { loss: [losses[0], losses.at(-1)!] as [number, number] } : {}),
    ...(prof ? { profile: prof.rows, kernelsPerStep: prof.kernels, ...(prof.ms > 0 ? { kernelMsPerStep: Math.round(prof.ms) } : {}) } : {}),
    notes,
  };
  ids.dispose();
  model.dispose();
  return result;
}

/** Runs each (model, mode) in a child process of this script; a failed run is reported, not thrown. */
function runAll(models: ModelKey[], modes: Mode[]): RunResult[] {
  const script = fileURLToPath(import.meta.url);
  const pass = [
    ...(['batch', 'seq', 'warmup', 'steps', 'new-tokens'] as const).flatMap((k) => (args[k] ? [`--${k}`, args[k]!] : [])),
    ...(args.profile ? ['--profile'] : []),
    ...(args.gpu ? ['--gpu'] : []),
    ...(args['config-override'] ? ['--config-override', args['config-override']] : []),
    '--backend', args.backend!,
  ];
  const results: RunResult[] = [];
  for (const key of models) {
    for (const mode of modes) {
      const r: RunSpec | undefined = args.gpu && mode !== 'generate' ? spec.gpu : runSpec(key, mode);
      if (!r) {
        process.stderr.write(`peftkit ${key} ${mode}: skipped, train-spec.json has no ${mode} run for ${key}\n`);
        continue;
      }
      process.stderr.write(`peftkit ${key} ${mode} (batch ${args.batch ?? r.batch} x seq ${args.seq ?? r.seq}) ... `);
      const t0 = performance.now();
      const child = spawnSync(process.execPath, [...process.execArgv, script, '--child', '--models', key, '--modes', mode, ...pass], {
        encoding: 'utf8',
        timeout: Number(args.timeout) * 1000,
        maxBuffer: 64 * 2 ** 20,
      });
      const line = child.stdout?.split('\n').find((l) => l.startsWith('RESULT '));
      const secs = ((performance.now() - t0) / 1000).toFixed(0);
      if (line) {
        results.push(JSON.parse(line.slice(7)));
        process.stderr.write(`${secs} s\n`);
      } else {
        const why = child.error ? `${child.error.message}${child.signal ? ` (${child.signal})` : ''}` : `exit ${child.status}${child.signal ? ` (${child.signal})` : ''}`;
        // The last progress line and the error, without stack frames or the minified WASM loader source.
        const lines = (child.stderr ?? '').split('\n').map((l) => l.trim()).filter((l) => l && l.length < 300 && !l.startsWith('at ') && !l.startsWith('^') && !l.startsWith('Node.js') && !/^\/\S+:\d+$/.test(l));
        const tail = [...lines.filter((l) => l.startsWith('[')).slice(-1), ...lines.filter((l) => !l.startsWith('[')).slice(-2)].join(' | ');
        process.stderr.write(`FAILED after ${secs} s: ${why}\n${tail}\n`);
        results.push({
          impl: 'peftkit', engine: '', model: key, mode, batch: Number(args.batch ?? r.batch), seq: Number(args.seq ?? r.seq),
          warmup: Number(args.warmup ?? r.warmup), steps: Number(args.steps ?? r.steps), stepSeconds: [], cpuSeconds: [], loadAverage: [NaN, NaN], tokensPerSecond: NaN,
          parameters: NaN, trainable: NaN, buildSeconds: NaN, peakRssBytes: NaN, rssAfterBuildBytes: NaN, notes: [], error: `${why}: ${tail}`,
        });
      }
    }
  }
  return results;
}

const models = args.models!.split(',') as ModelKey[];
const modes = args.modes!.split(',') as Mode[];
for (const k of models) if (!(k in spec.models)) throw new Error(`unknown model "${k}"; tools/bench/train-spec.json has: ${Object.keys(spec.models).join(', ')}`);
for (const x of modes) if (!MODES.includes(x)) throw new Error(`unknown mode "${x}"; choose from ${MODES.join(', ')}`);

if (args.child) {
  const info = await initBackend(args.backend as BackendChoice);
  const r = await runOne(models[0], modes[0]);
  r.engine = info.detail; // WASM's says the thread count (PEFTKIT_WASM_THREADS); WebGPU's names the adapter
  if (info.name === 'wasm') r.threads = info.threads ?? 1;
  console.log(`RESULT ${JSON.stringify(r)}`);
} else {
  const results = runAll(models, modes);
  if (args.json) writeJsonAtomic(args.json, results);
  console.log(`peftkit on ${results.find((r) => r.engine)?.engine ?? args.backend}; tokens/s = batch x seq / mean step time (generate: batch x new tokens / median generation time)\n`);
  for (const r of results) if (r.kernelsPerStep) console.log(`${r.model} ${r.mode}: ${r.kernelsPerStep} kernels a step${r.kernelMsPerStep ? `, ${r.kernelMsPerStep} ms of kernel time (${((100 * r.kernelMsPerStep) / 1000 / (r.stepSeconds.reduce((a, b) => a + b, 0) / r.stepSeconds.length)).toFixed(0)} % of the step)` : ''}`);
  console.log('| model | mode | batch x seq | trainable params | step s | tokens/s | peak RSS MiB | WASM heap MiB | peak tensors MiB |');
  console.log('|---|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const mean = r.stepSeconds.length ? r.stepSeconds.reduce((a, b) => a + b, 0) / r.stepSeconds.length : NaN;
    console.log(
      r.error
        ? `| ${r.model} | ${r.mode} | ${r.batch} x ${r.seq} | | | failed: ${r.error.slice(0, 240)} | | | |`
        : `| ${r.model} | ${r.mode} | ${r.batch} x ${r.seq}${r.newTokens ? ` + ${r.newTokens} new` : ''} | ${r.trainable.toLocaleString('en-US')} | ${mean.toFixed(2)} | ${r.tokensPerSecond.toFixed(0)} | ${MiB(r.peakRssBytes)} | ${MiB(r.wasmHeapBytes)} | ${MiB(r.peakTensorBytes)} |`,
    );
  }
  for (const r of results) printProfile(r);
}
