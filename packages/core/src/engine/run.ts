import { appendFileSync, existsSync, mkdirSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, totalmem, platform, arch } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Registry } from '../api/registry.js';
import type { StepContext } from '../api/step.js';
import { initBackend, type BackendInfo } from '../runtime/backend.js';
import { writeJsonAtomic } from '../runtime/atomic.js';
import { createLogger } from '../runtime/logger.js';
import { PipelineValidationError, UserError } from './errors.js';
import { importPlugin } from './plugins.js';
import { createRegistry, type LoadedPlugin } from './registry.js';
import { applyOverrides, applyQuick, readPipelineFile } from './pipeline.js';
import { checkLocalPaths, dependencyOutputs } from './local-paths.js';
import { validatePipeline, type ValidatedPipeline } from './validate.js';
import { locateInStep, pointer, type PipelineIssue } from './errors.js';

/** How to find plugins for a pipeline. */
export interface PluginSources {
  /** Modules always loaded (the built-in step kinds and methods). */
  builtins: LoadedPlugin[];
  /**
   * Installed plugin packages found on disk. Loaded when the pipeline has no `plugins` list; when
   * it has one, the list is what the pipeline depends on, and these only name, in an issue, the
   * package that provides a method or step kind the list leaves out.
   */
  discovered?: LoadedPlugin[];
}

/** Options of {@link preparePipeline}. */
export interface PrepareOptions {
  /** Apply the pipeline's `quick` block (before `overrides`). */
  quick?: boolean;
  /** Check that the local files and folders the steps read exist (default true). */
  checkPaths?: boolean;
}

/** A validated pipeline with the registry it was validated against. */
export interface PreparedPipeline extends ValidatedPipeline {
  registry: Registry;
  /** Things worth saying that are not errors: paths a dependency will write, the quick block applied. */
  notes: PipelineIssue[];
}

/**
 * Reads, overrides, loads the plugins of, and validates a pipeline file, and checks that the
 * local paths its steps read exist. Nothing runs.
 * @throws PipelineValidationError with every issue found; UserError when the file cannot be read
 *   or an override is malformed.
 */
export async function preparePipeline(file: string, overrides: string[], sources: PluginSources, opts: PrepareOptions = {}): Promise<PreparedPipeline> {
  const parsed = readPipelineFile(file);
  if (!parsed.doc) throw new PipelineValidationError(parsed.issues);
  const doc = parsed.doc as Record<string, any>;
  const notes: PipelineIssue[] = [];
  if (opts.quick) {
    const n = applyQuick(file, doc);
    notes.push({ file, pointer: '/quick', message: n ? `quick run: ${n} setting(s) from "quick" applied` : 'quick run asked for, but the pipeline has no "quick" block: it runs at full size' });
  }
  applyOverrides(doc, overrides);
  const issues: PipelineIssue[] = [];
  const plugins = [...sources.builtins];
  const have = new Set(plugins.map((p) => p.name));
  const fromDir = dirname(resolve(file));
  const listed: unknown[] | undefined = Array.isArray(doc.plugins) ? doc.plugins : undefined;
  for (const [i, n] of (listed ?? []).entries()) {
    if (typeof n !== 'string' || have.has(n)) continue;
    try {
      plugins.push(sources.discovered?.find((p) => p.name === n) ?? (await importPlugin(n, fromDir)));
      have.add(n);
    } catch (e) {
      issues.push({ file, pointer: pointer('plugins', i), message: `unknown plugin package "${n}": ${(e as Error).message}`, hint: 'install the package, fix its name, or remove it from "plugins"' });
    }
  }
  if (!listed) for (const p of sources.discovered ?? []) if (!have.has(p.name)) (plugins.push(p), have.add(p.name));
  const registry = createRegistry(plugins);
  const { issues: more, validated } = validatePipeline(file, doc, registry);
  issues.push(...more);
  if (listed) issues.push(...unlistedProviders(file, more, sources.discovered ?? [], have));
  if (!issues.length && validated && opts.checkPaths !== false) {
    const paths = checkLocalPaths(file, validated.pipeline.steps, registry, dependencyOutputs(file, doc.dependsOn));
    issues.push(...paths.issues);
    notes.push(...paths.notes);
  }
  if (issues.length || !validated) throw new PipelineValidationError(issues);
  return { ...validated, registry, notes };
}

/**
 * For issues about an unknown method, step kind or scheme ("... "lora" ..."), the installed
 * packages that provide that name but are missing from the pipeline's `plugins` list.
 */
function unlistedProviders(file: string, issues: PipelineIssue[], discovered: LoadedPlugin[], listed: Set<string>): PipelineIssue[] {
  const out: PipelineIssue[] = [];
  for (const p of discovered.filter((d) => !listed.has(d.name))) {
    const r = createRegistry([p]);
    const names = [...r.stepKinds(), ...r.methods(), ...r.quantSchemes()].map((x) => x.name);
    const used = names.filter((n) => issues.some((i) => /^unknown /.test(i.message) && i.message.includes(`"${n}"`)));
    if (used.length) out.push({ file, pointer: '/plugins', message: `the installed package ${p.name} provides ${used.map((n) => `"${n}"`).join(', ')}, but "plugins" does not list it`, hint: `add "${p.name}" to "plugins" (a pipeline with a "plugins" list loads only those, so that it names every package it needs)` });
  }
  return out;
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
  /** The steps' closing summary lines, in run order, each prefixed by its step name. */
  summary: string[];
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
  const summary: string[] = [];
  const status = (s: Record<string, unknown>) => writeJsonAtomic(join(runDir, 'status.json'), { pipeline: pipeline.name, ...s, updatedAt: new Date().toISOString() });
  status({ state: 'running', step: null });
  for (const name of plan) {
    if (signal.aborted) {
      root.warn(`interrupted before step "${name}"; resume with --resume`);
      status({ state: 'interrupted', step: name });
      return { runDir, backend, outputs, interrupted: true, summary };
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
      summarize: (line) => {
        summary.push(`${name}: ${line}`);
        logger.info(line);
      },
    };
    status({ state: 'running', step: name });
    const t0 = performance.now();
    logger.info(`${step.kind} started`);
    let out: Record<string, unknown>;
    try {
      out = await kind.run(ctx, inputs, step.settings ?? {});
    } catch (thrown) {
      const e = locateInStep(thrown, file, name);
      const err = e as Error;
      logger.error(err instanceof UserError ? `${err.details.pointer}: ${err.message}` : (err.stack ?? err.message));
      status({ state: 'failed', step: name, error: err.message });
      throw e;
    }
    for (const port of Object.keys(kind.outputs)) outputs.set(`${name}.${port}`, out[port]);
    logger.info(`${step.kind} finished in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const interrupted = signal.aborted;
  status({ state: interrupted ? 'interrupted' : 'succeeded', step: null });
  await new Promise<void>((r) => { root.on('finish', () => r()); root.end(); });
  writeJsonAtomic(join(runDir, 'summary.json'), summary);
  return { runDir, backend, outputs, interrupted, summary };
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
