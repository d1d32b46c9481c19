import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { Command, CommanderError, Option, type OutputConfiguration } from 'commander';
import {
  composeSchema, createRegistry, formatIssue, PipelineValidationError, preparePipeline, runPipeline, UserError,
  writeFileAtomic, type LoadedPlugin, type PipelineIssue, type PreparedPipeline,
} from '@peftkit/core';
import { describeRegistry, formatPlan, formatRegistry } from './describe.js';
import { loadPlugins, type FailedPlugin, type PluginLoadOptions } from './plugin-loading.js';
import { addServeCommands } from './serve.js';

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const EXIT_INTERRUPTED = 130;

/** How {@link runCli} talks to the world; the defaults are the real process. */
export interface CliOptions {
  /** Receives standard output, one chunk at a time (default: process.stdout). */
  out?: (text: string) => void;
  /** Receives standard error (default: process.stderr). */
  err?: (text: string) => void;
  /** Working directory: relative paths and plugin discovery start here (default: process.cwd()). */
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Replaces the built-in plugins (`@peftkit/steps`), for tests. */
  builtins?: LoadedPlugin[];
  /** Install SIGINT/SIGTERM handlers for `run` (the real command line does). */
  handleSignals?: boolean;
  /** Aborts a `run` from outside (tests); combined with the signal handlers. */
  signal?: AbortSignal;
  /** Standard input, read by `generate` and `classify` when no text is given (default: process.stdin). */
  stdin?: NodeJS.ReadableStream;
}

/** What a command sees of the world (built by {@link runCli} from {@link CliOptions}). */
export interface Io {
  /** Writes a line to standard output. */
  out(line: string): void;
  /** Writes a line to standard error. */
  err(line: string): void;
  /** Writes text to standard output as it is (streaming). */
  write(text: string): void;
  cwd: string;
  load: PluginLoadOptions;
  stdin?: NodeJS.ReadableStream;
}

/**
 * Runs the `peftkit` command line with `argv` (without the node and script paths).
 * @returns the exit code: 0 success, 1 invalid input or failure, 130 interrupted.
 */
export async function runCli(argv: string[], options: CliOptions = {}): Promise<number> {
  const write = { out: options.out ?? ((s: string) => void process.stdout.write(s)), err: options.err ?? ((s: string) => void process.stderr.write(s)) };
  const io: Io = {
    out: (l) => write.out(l + '\n'),
    err: (l) => write.err(l + '\n'),
    write: write.out,
    cwd: options.cwd ?? process.cwd(),
    load: { builtins: options.builtins, env: options.env ?? process.env },
    stdin: options.stdin,
  };
  let code = 0;
  const program = buildProgram(io, options, (c) => (code = c), { writeOut: write.out, writeErr: write.err });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    return reportError(io, e);
  }
  return code;
}

/** Prints an error the way the CLI reports it and returns exit code 1. */
function reportError(io: Io, e: unknown): number {
  if (e instanceof PipelineValidationError) {
    for (const i of e.issues) io.err(formatIssue(i));
  } else if (e instanceof UserError) {
    const { file, pointer } = e.details;
    // A message that already begins with its file is printed as it is.
    const where = !file ? 'error: ' : e.message.startsWith(file) ? '' : `${file}: ${pointer ? `${pointer}: ` : ''}`;
    io.err(`${where}${e.message}${e.details.hint ? `\n  hint: ${e.details.hint}` : ''}`);
  } else {
    io.err((e as Error)?.stack ?? String(e));
  }
  return 1;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Truthy values of {@link QUICK_ENV}. */
const isOn = (v: string | undefined) => ['1', 'true', 'yes'].includes((v ?? '').toLowerCase());

/** The environment variable that turns on `--quick` (CI and Nx set it; Nx hashes it as an input). */
export const QUICK_ENV = 'PEFTKIT_QUICK';

const quickOption = (io: Io) =>
  new Option('--quick', `apply the pipeline's "quick" block: its own small sizes for a quick run (default: on when ${QUICK_ENV}=1)`).default(isOn(io.load.env?.[QUICK_ENV]));

/** The options of `peftkit run`. */
interface RunFlags {
  set: string[];
  dryRun?: boolean;
  resume?: boolean;
  runsDir?: string;
  discover: boolean;
  quick: boolean;
}

const noDiscover = () => new Option('--no-discover', 'load only the built-in plugins and those a pipeline lists in "plugins", not every installed plugin package');

function buildProgram(io: Io, options: CliOptions, setCode: (c: number) => void, output: OutputConfiguration): Command {
  // Set before adding subcommands: they copy these settings when created.
  const program = new Command('peftkit')
    .exitOverride()
    .configureOutput(output)
    .description('Declarative parameter-efficient fine-tuning pipelines on TensorFlow.js.')
    .version(cliVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('run')
    .description('validate a pipeline, then run its steps in dependency order; prints the run folder')
    .argument('<pipeline>', 'pipeline JSON file')
    .option('--set <key=value>', 'override a field by dotted path, e.g. steps.train.settings.max_steps=20 (value parsed as JSON when it parses); repeatable', collect, [])
    .option('--dry-run', 'validate and print the plan (steps in order, inputs, outputs, settings after defaults); run nothing')
    .option('--resume', 'continue the latest run of this pipeline from its checkpoints')
    .option('--runs-dir <dir>', 'folder for run folders (default: runs/ in the pipeline\'s project, the nearest folder above the pipeline file with a package.json, else beside the pipeline file)')
    .addOption(quickOption(io))
    .addOption(noDiscover())
    .action(async (file: string, o: RunFlags) => {
      setCode(await runCommand(io, options, resolveArg(io, file), file, o));
    });

  program
    .command('validate')
    .description('check pipeline files without running them: prints "ok <file>" or every issue with its JSON pointer and a hint')
    .argument('<pipeline...>', 'pipeline JSON files')
    .option('--set <key=value>', 'override a field before validating (as for run); repeatable', collect, [])
    .addOption(quickOption(io))
    .addOption(noDiscover())
    .action(async (files: string[], o: { set: string[]; discover: boolean; quick: boolean }) => {
      let failed = 0;
      for (const file of files) {
        // `pipelines/*.json` also matches Nx's project file, which is not a pipeline.
        if (basename(file) === 'project.json') {
          io.out(`skip ${file} (an Nx project file, not a pipeline)`);
          continue;
        }
        const { issues, notes } = await validateFile(io, file, o.set, o.discover, o.quick);
        if (issues.length) {
          failed++;
          for (const i of issues) io.err(formatIssue(i));
        } else {
          for (const n of notes) io.out(`note: ${formatIssue(n)}`);
          io.out(`ok ${file}`);
        }
      }
      setCode(failed ? 1 : 0);
    });

  program
    .command('schema')
    .description('print the pipeline JSON Schema with every loaded step kind and method composed in (for "$schema" in editors)')
    .option('-o, --out <file>', 'write it to a file instead of standard output')
    .addOption(noDiscover())
    .action(async (o: { out?: string; discover: boolean }) => {
      const { plugins, failed } = await loadPlugins([io.cwd], { ...io.load, discover: o.discover });
      warnFailed(io, failed);
      const text = JSON.stringify(composeSchema(createRegistry(plugins)), null, 2) + '\n';
      if (o.out) {
        writeFileAtomic(resolve(io.cwd, o.out), text);
        io.err(`wrote ${o.out}`);
      } else io.out(text.trimEnd());
    });

  program
    .command('plugins')
    .description('list the loaded plugin packages, their step kinds, methods and quantization schemes')
    .option('--json', 'print them as JSON')
    .addOption(noDiscover())
    .action(async (o: { json?: boolean; discover: boolean }) => {
      const { plugins, failed } = await loadPlugins([io.cwd], { ...io.load, discover: o.discover });
      const report = describeRegistry(createRegistry(plugins), plugins, failed);
      io.out(o.json ? JSON.stringify(report, null, 2) : formatRegistry(report));
    });

  addServeCommands(program, io, setCode);
  return program;
}

function resolveArg(io: Io, file: string): string {
  return resolve(io.cwd, file);
}

function warnFailed(io: Io, failed: FailedPlugin[]): void {
  for (const f of failed) io.err(`warning: plugin package ${f.name} was not loaded (${f.error}); its step kinds and methods are unavailable`);
}

/**
 * Reads and validates one pipeline file with the plugins found from its folder and the working
 * directory. Issues name the file as given.
 */
async function prepare(io: Io, file: string, shown: string, overrides: string[], discover: boolean, quick = false): Promise<PreparedPipeline> {
  const { plugins, builtins, failed } = await loadPlugins([dirname(file), io.cwd], { ...io.load, discover });
  warnFailed(io, failed);
  try {
    const prepared = await preparePipeline(file, overrides, { builtins, discovered: plugins.filter((p) => !builtins.includes(p)) }, { quick });
    return { ...prepared, notes: prepared.notes.map((n) => ({ ...n, file: n.file === file ? shown : n.file })) };
  } catch (e) {
    // Issues carry the absolute path we passed; show the path the user typed.
    if (e instanceof PipelineValidationError) throw new PipelineValidationError(e.issues.map((i) => ({ ...i, file: i.file === file ? shown : i.file })));
    if (e instanceof UserError && e.details.file === file) throw new UserError(e.message.replace(file, shown), { ...e.details, file: shown });
    throw e;
  }
}

async function validateFile(io: Io, shown: string, overrides: string[], discover: boolean, quick: boolean): Promise<{ issues: PipelineIssue[]; notes: PipelineIssue[] }> {
  try {
    const { notes } = await prepare(io, resolveArg(io, shown), shown, overrides, discover, quick);
    return { issues: [], notes };
  } catch (e) {
    if (e instanceof PipelineValidationError) return { issues: e.issues, notes: [] };
    if (e instanceof UserError) return { issues: [{ file: e.details.file ?? shown, pointer: e.details.pointer ?? '', message: e.message, hint: e.details.hint }], notes: [] };
    throw e;
  }
}

/**
 * Where run folders go by default: `runs/` in the pipeline's project (the nearest folder above
 * the pipeline file that has a package.json), else `runs/` beside the pipeline file. Not the
 * working directory: the same pipeline's runs land in one place wherever it is run from.
 */
export function defaultRunsDir(pipelineFile: string): string {
  const start = dirname(resolve(pipelineFile));
  for (let d = start; ; d = dirname(d)) {
    if (existsSync(join(d, 'package.json'))) return join(d, 'runs');
    if (dirname(d) === d) return join(start, 'runs');
  }
}

async function runCommand(io: Io, options: CliOptions, file: string, shown: string, o: RunFlags): Promise<number> {
  const prepared = await prepare(io, file, shown, o.set, o.discover, o.quick);
  for (const n of prepared.notes) io.err(`note: ${formatIssue(n)}`);
  if (o.dryRun) {
    io.out(formatPlan(prepared, shown));
    io.out('dry run: the pipeline is valid; no model was loaded and no step ran');
    return 0;
  }
  const controller = new AbortController();
  options.signal?.addEventListener('abort', () => controller.abort(), { once: true });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (++signals === 1) {
      io.err(`\n${sig}: stopping; running steps save a checkpoint first (press Ctrl-C again to exit at once)`);
      controller.abort();
    } else {
      io.err(`${sig}: exiting now`);
      process.exit(EXIT_INTERRUPTED);
    }
  };
  if (options.handleSignals) {
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  const runsDir = o.runsDir ? resolve(io.cwd, o.runsDir) : defaultRunsDir(file);
  try {
    const result = await runPipeline(prepared, { runsDir, resume: o.resume, signal: controller.signal });
    if (result.summary.length) io.out(['', `${prepared.pipeline.name}:`, ...result.summary.map((l) => `  ${l}`)].join('\n'));
    io.out(`run folder: ${result.runDir}`);
    if (result.interrupted) {
      io.err(`interrupted; continue with: peftkit run ${shown} --resume${o.runsDir ? ` --runs-dir ${o.runsDir}` : ''}${o.quick ? ' --quick' : ''}${o.set.map((x) => ` --set '${x}'`).join('')}`);
      return EXIT_INTERRUPTED;
    }
    return 0;
  } catch (e) {
    // A failing step was already logged (with its stack unless a UserError) by the run's logger:
    // say which step failed and where the log is, without printing the trace twice.
    const latest = join(runsDir, prepared.pipeline.name, 'latest');
    const status = readJson(join(latest, 'status.json'));
    if (status?.state === 'failed' && status.error === (e as Error).message) {
      if (e instanceof UserError) reportError(io, e.details.file === file ? new UserError(e.message, { ...e.details, file: shown }) : e);
      else io.err(`${shown}: /steps/${status.step}: ${(e as Error).message}`);
      io.err(`run failed in step "${status.step}"; run folder: ${realpathSync(latest)} (log: run.log)`);
      return 1;
    }
    throw e;
  } finally {
    if (options.handleSignals) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  }
}

function readJson(path: string): any {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function cliVersion(): string {
  const pj = new URL('../package.json', import.meta.url);
  return existsSync(pj) ? JSON.parse(readFileSync(pj, 'utf8')).version : '0.0.0';
}
