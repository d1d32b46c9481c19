import { appendFileSync, existsSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, totalmem, platform, arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Registry } from '../api/registry.js';
import type { StepContext } from '../api/step.js';
import { initBackend, type BackendInfo } from '../runtime/backend.js';
import { writeJsonAtomic } from '../runtime/atomic.js';
import { createLogger } from '../runtime/logger.js';
import { PipelineValidationError, UserError } from './errors.js';
import { importPlugin, discoverPlugins } from './plugins.js';
import { createRegistry, type LoadedPlugin } from './registry.js';
import { applyOverrides, readPipelineFile } from './pipeline.js';
import { validatePipeline, type ValidatedPipeline } from './validate.js';
import { pointer, type PipelineIssue } from './errors.js';

/** How to find plugins for a pipeline. */
export interface PluginSources {
  /** Modules always loaded (the built-in step kinds and methods). */
  builtins: LoadedPlugin[];
  /** Also load every installed package marked as a peftkit plugin (default true). */
  discover?: boolean;
}

/** A validated pipeline with the registry it was validated against. */
export interface PreparedPipeline extends ValidatedPipeline {
  registry: Registry;
}

/**
 * Reads, overrides, loads the plugins of, and validates a pipeline file. Nothing runs.
 * @throws PipelineValidationError with every issue found; UserError when the file cannot be read.
 */
export async function preparePipeline(file: string, overrides: string[], sources: PluginSources): Promise<PreparedPipeline> {
  const parsed = readPipelineFile(file);
  if (!parsed.doc) throw new PipelineValidationError(parsed.issues);
  applyOverrides(parsed.doc as Record<string, any>, overrides);
  const issues: PipelineIssue[] = [];
  const plugins = [...sources.builtins];
  const have = new Set(plugins.map((p) => p.name));
  const fromDir = dirname(resolve(file));
  const listed = Array.isArray(parsed.doc.plugins) ? parsed.doc.plugins : [];
  const wanted = [...listed.map((n, i) => ({ n, at: pointer('plugins', i) })), ...(sources.discover === false ? [] : discoverPlugins(fromDir).map((n) => ({ n, at: '' })))];
  for (const { n, at } of wanted) {
    if (typeof n !== 'string' || have.has(n)) continue;
    try {
      plugins.push(await importPlugin(n, fromDir));
      have.add(n);
    } catch (e) {
      if (at) issues.push({ file, pointer: at, message: `unknown plugin package "${n}": ${(e as Error).message}`, hint: 'install the package, fix its name, or remove it from "plugins"' });
    }
  }
  const registry = createRegistry(plugins);
  const { issues: more, validated } = validatePipeline(file, parsed.doc, registry);
  issues.push(...more);
  if (issues.length || !validated) throw new PipelineValidationError(issues);
  return { ...validated, registry };
}

/** Options of {@link runPipeline}. */
export interface RunOptions {
  /** Folder that holds `<pipeline>/<timestamp>/` run folders (default `runs` in the working directory). */
  runsDir?: string;
  /** Continue the latest run of this pipeline: its folder is reused and steps resume from their checkpoints. */
  resume?: boolean;
  /** Aborted on Ctrl-C; steps that honour it checkpoint and stop. */
  signal?: AbortSignal;
}

/** What a run produced. */
export interface RunResult {
  runDir: string;
  backend: BackendInfo;
  /** Every step's outputs, keyed `step.port`. */
  outputs: Map<string, unknown>;
  /** True when the run was interrupted (Ctrl-C) before its last step finished. */
  interrupted: boolean;
}

/**
 * Runs a prepared pipeline: chooses the backend, makes the run folder (resolved pipeline,
 * environment, logs, metrics) and runs the steps in plan order, each with a child logger.
 * @throws the first step's error, after logging it and marking the run failed in `status.json`.
 */
export async function runPipeline(prepared: PreparedPipeline, opts: RunOptions = {}): Promise<RunResult> {
  const { pipeline, plan, edges, registry, file } = prepared;
  const runDir = makeRunDir(resolve(opts.runsDir ?? 'runs'), pipeline.name, !!opts.resume);
  const root = createLogger(join(runDir, 'run.log'));
  const signal = opts.signal ?? new AbortController().signal;
  const backend = await initBackend(pipeline.backend);
  root.info(`backend: ${backend.name} (${backend.detail})${backend.skipped.length ? `; skipped ${backend.skipped.join('; ')}` : ''}`);
  const a = backend.adapter;
  if (a) root.info(`GPU adapter: vendor ${a.vendor || '(none given)'}, device ${a.device || '(none given)'}, driver ${a.description || '(none given)'} (Dawn's ${a.dawnBackend} backend${a.software ? ', software' : ''})`);
  root.info(`run folder: ${runDir}${opts.resume ? ' (resumed)' : ''}`);
  writeJsonAtomic(join(runDir, 'pipeline.resolved.json'), pipeline);
  writeJsonAtomic(join(runDir, 'environment.json'), {
    node: process.version, platform: platform(), arch: arch(), cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(),
    tfjs: backend.tfjsVersion, backend: backend.name, backendDetail: backend.detail, ...(backend.adapter ? { gpuAdapter: backend.adapter } : {}), plugins: registry.plugins(), startedAt: new Date().toISOString(),
  });
  const outputs = new Map<string, unknown>();
  const status = (s: Record<string, unknown>) => writeJsonAtomic(join(runDir, 'status.json'), { pipeline: pipeline.name, ...s, updatedAt: new Date().toISOString() });
  status({ state: 'running', step: null });
  for (const name of plan) {
    if (signal.aborted) {
      root.warn(`interrupted before step "${name}"; resume with --resume`);
      status({ state: 'interrupted', step: name });
      return { runDir, backend, outputs, interrupted: true };
    }
    const step = pipeline.steps[name];
    const kind = registry.stepKind(step.kind)!;
    const logger = root.child({ step: name });
    const stepDir = join(runDir, name);
    mkdirSync(stepDir, { recursive: true });
    const inputs: Record<string, unknown> = {};
    for (const e of edges.filter((x) => x.to === name)) inputs[e.port] = outputs.get(`${e.from}.${e.fromPort}`);
    const ctx: StepContext = {
      pipeline: pipeline.name, step: name, pipelineDir: dirname(resolve(file)), runDir, stepDir, seed: pipeline.seed, backend: backend.name,
      resume: !!opts.resume, signal, logger, registry,
      recordMetrics: (row) => appendFileSync(join(runDir, 'metrics.jsonl'), JSON.stringify({ pipeline_step: name, time: new Date().toISOString(), ...row }) + '\n'),
    };
    status({ state: 'running', step: name });
    const t0 = performance.now();
    logger.info(`${step.kind} started`);
    let out: Record<string, unknown>;
    try {
      out = await kind.run(ctx, inputs, step.settings ?? {});
    } catch (e) {
      const err = e as Error;
      logger.error(err instanceof UserError ? err.message : (err.stack ?? err.message));
      status({ state: 'failed', step: name, error: err.message });
      throw e;
    }
    for (const port of Object.keys(kind.outputs)) outputs.set(`${name}.${port}`, out[port]);
    logger.info(`${step.kind} finished in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const interrupted = signal.aborted;
  status({ state: interrupted ? 'interrupted' : 'succeeded', step: null });
  await new Promise<void>((r) => { root.on('finish', () => r()); root.end(); });
  return { runDir, backend, outputs, interrupted };
}

function makeRunDir(runsDir: string, name: string, resume: boolean): string {
  const base = join(runsDir, name);
  const latest = join(base, 'latest');
  if (resume) {
    if (!existsSync(latest)) throw new UserError(`--resume: no earlier run of "${name}" in ${base}`, { hint: 'run it once without --resume' });
    return join(base, readlinkSync(latest));
  }
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  let dir = stamp;
  for (let i = 1; existsSync(join(base, dir)); i++) dir = `${stamp}-${i}`;
  mkdirSync(join(base, dir), { recursive: true });
  rmSync(latest, { force: true });
  symlinkSync(dir, latest);
  return join(base, dir);
}
