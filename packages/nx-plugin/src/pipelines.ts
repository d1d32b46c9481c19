import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, posix, relative, resolve, sep } from 'node:path';
import type { CreateNodesResult, TargetConfiguration } from '@nx/devkit';
import type { PeftkitNxOptions } from './options';

/** The configuration of a pipeline target that validates and prints the plan (`nx run pipelines:<name>:dry-run`). */
export const DRY_RUN = 'dry-run';
/** The default configuration of a pipeline target: a real run. */
export const RUN = 'run';

/** Source folders whose changes invalidate every pipeline's cached validation and run. */
export const PLUGIN_SOURCE_INPUTS = [
  '{workspaceRoot}/packages/*/src/**/*',
  '{workspaceRoot}/plugins/*/src/**/*',
  '!{workspaceRoot}/packages/*/src/**/*.test.ts',
  '!{workspaceRoot}/plugins/*/src/**/*.test.ts',
  '{workspaceRoot}/package-lock.json',
];

/** The fields of a pipeline file that the Nx plugin reads (the rest is the CLI's business). */
interface PipelineHead {
  name?: unknown;
  description?: unknown;
  dependsOn?: unknown;
  outputs?: unknown;
  steps?: unknown;
}

/**
 * The target for one `pipelines/*.json` file. The target is named after the pipeline's `name`
 * (the file name when `name` is missing or malformed, so that `dry-run` can still report it):
 *
 * - `nx run pipelines:<name>` runs it (`peftkit run`); its cached outputs are only the small
 *   folders the pipeline declares in `outputs` (relative to the pipeline file), never run folders.
 * - `nx run pipelines:<name>:dry-run` validates it and prints the plan; cached, with the
 *   pipeline file, the plugin sources and the local files its settings name as inputs.
 * - the pipeline's `dependsOn` (other pipelines' names) becomes the target's `dependsOn`.
 *
 * Outputs are written as `{projectRoot}/{options.peftkitRun.root}/<folder from the workspace root>`,
 * where `peftkitRun.root` leads from the project root back to the workspace root. Only the `run`
 * configuration sets it, so a dry run caches and restores no folder: Nx drops outputs whose
 * `{options.*}` do not resolve. (`{workspaceRoot}/{options.*}` would be simpler, but Nx refuses it
 * as a slow glob.) `peftkitRun` is an object, which `nx:run-commands` does not pass to the command.
 */
export function pipelineTarget(file: string, workspaceRoot: string, options: PeftkitNxOptions = {}): { name: string; target: TargetConfiguration } {
  const abs = join(workspaceRoot, file);
  let doc: PipelineHead = {};
  try {
    doc = JSON.parse(readFileSync(abs, 'utf8'));
  } catch {
    // Invalid JSON: the dry-run target still exists and reports the syntax error with its line.
  }
  const stem = basename(file, '.json');
  const name = typeof doc.name === 'string' && /^[a-z0-9][a-z0-9-]*$/.test(doc.name) ? doc.name : stem;
  const cmd = `${options.peftkitCommand ?? 'node packages/cli/bin/peftkit.js'} run ${file}`;
  const declared = Array.isArray(doc.outputs) ? doc.outputs.filter((o): o is string => typeof o === 'string') : [];
  const deps = Array.isArray(doc.dependsOn) ? doc.dependsOn.filter((d): d is string => typeof d === 'string') : [];
  const target: TargetConfiguration = {
    executor: 'nx:run-commands',
    options: { command: cmd },
    defaultConfiguration: RUN,
    configurations: {
      // The way back from the project root to the workspace root, which the output paths start from.
      [RUN]: { peftkitRun: { root: posix.relative(dirname(file).split(sep).join('/'), '') || '.' } },
      [DRY_RUN]: { command: `${cmd} --dry-run` },
    },
    cache: true,
    // PEFTKIT_QUICK switches the pipeline's quick sizes on: a quick run must never replay as a full one.
    inputs: [`{projectRoot}/${basename(file)}`, ...PLUGIN_SOURCE_INPUTS, ...localFileInputs(doc.steps, dirname(abs), workspaceRoot), { env: 'PEFTKIT_QUICK' }, { dependentTasksOutputFiles: '**/*', transitive: true }],
    outputs: outputPaths(declared, dirname(file)).map((o) => `{projectRoot}/{options.peftkitRun.root}/${o}`),
    metadata: {
      description: typeof doc.description === 'string' ? doc.description : `peftkit pipeline ${file}`,
      technologies: ['peftkit'],
      help: { command: `${options.peftkitCommand ?? 'node packages/cli/bin/peftkit.js'} run --help`, example: { args: ['--set', 'steps.train.settings.max_steps=2'] } },
    },
  };
  if (deps.length) target.dependsOn = deps;
  return { name, target };
}

/**
 * A pipeline's declared `outputs` (relative to its folder) as normalized workspace-relative paths.
 * Normalized here, not by Nx: a `..` after the `{options.*}` segment would cancel it and defeat the
 * dry-run exclusion. Folders outside the workspace cannot be cached and are left out.
 */
export function outputPaths(declared: string[], pipelineFolder: string): string[] {
  return declared.map((o) => posix.normalize(posix.join(pipelineFolder.split(sep).join('/'), o)).replace(/\/+$/, '')).filter((p) => p !== '.' && !p.startsWith('..') && !posix.isAbsolute(p));
}

/**
 * Files and folders inside the workspace that the steps' settings name (a local model folder, a
 * dataset file), as Nx inputs, so that changing them invalidates the cache. Paths are relative to
 * the pipeline file, as the steps resolve them. Files outside the workspace cannot be Nx inputs.
 */
export function localFileInputs(steps: unknown, pipelineDir: string, workspaceRoot: string): string[] {
  const found = new Set<string>();
  const visit = (v: unknown): void => {
    if (typeof v === 'string') {
      if (!v || v.includes('\n') || /^[a-z]+:\/\//i.test(v)) return;
      const abs = resolve(pipelineDir, v);
      const rel = relative(workspaceRoot, abs);
      if (!rel || rel.startsWith('..') || rel.split(sep).includes('node_modules') || !existsSync(abs)) return;
      const posix = rel.split(sep).join('/');
      found.add(statSync(abs).isDirectory() ? `{workspaceRoot}/${posix}/**/*` : `{workspaceRoot}/${posix}`);
    } else if (Array.isArray(v)) v.forEach(visit);
    else if (v && typeof v === 'object') Object.values(v).forEach(visit);
  };
  if (steps && typeof steps === 'object') for (const s of Object.values(steps)) visit((s as { settings?: unknown })?.settings);
  return [...found].sort();
}

/** Nodes for one pipeline file: a target of the project whose root is the file's folder. */
export function pipelineNodes(file: string, workspaceRoot: string, options: PeftkitNxOptions = {}): CreateNodesResult {
  if (basename(file) === 'project.json') return {};
  const { name, target } = pipelineTarget(file, workspaceRoot, options);
  return { projects: { [dirname(file)]: { targets: { [name]: target } } } };
}
