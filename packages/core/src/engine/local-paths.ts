import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import type { Registry } from '../api/registry.js';
import type { Step } from '../schema/pipeline.generated.js';
import { pointer, type PipelineIssue } from './errors.js';

/** Folders that a pipeline's dependencies write, and who writes each. */
export interface DependencyOutput {
  /** Absolute path of the folder (or file). */
  path: string;
  /** The dependency that declares it: a pipeline name, or an Nx target of the pipeline's project. */
  by: string;
}

/** What {@link checkLocalPaths} found: errors, and notes for paths that a dependency will write. */
export interface LocalPathCheck {
  issues: PipelineIssue[];
  notes: PipelineIssue[];
}

/**
 * Checks that every local file and folder the steps read exists (each step kind lists them with
 * `localPaths`), resolved from the pipeline file's folder. A Hub id that names nothing local is
 * left to the run. A missing path inside what a dependency declares in its `outputs` is not an
 * error but a note, since that dependency runs first under Nx.
 * @param deps - from {@link dependencyOutputs}.
 */
export function checkLocalPaths(file: string, steps: Record<string, Step>, registry: Registry, deps: DependencyOutput[]): LocalPathCheck {
  const issues: PipelineIssue[] = [];
  const notes: PipelineIssue[] = [];
  const dir = dirname(resolve(file));
  for (const [name, step] of Object.entries(steps)) {
    const kind = registry.stepKind(step.kind);
    for (const p of kind?.localPaths?.(step.settings ?? {}) ?? []) {
      const abs = isAbsolute(p.path) ? p.path : resolve(dir, p.path);
      const at = pointer('steps', name, 'settings') + p.pointer;
      if (existsSync(abs)) {
        const isDir = statSync(abs).isDirectory();
        if (isDir !== (p.expect === 'folder')) issues.push({ file, pointer: at, message: `${p.path} is a ${isDir ? 'folder' : 'file'}, but a ${p.expect} is expected here`, hint: `point it at a ${p.expect}` });
        continue;
      }
      if (p.hubId) continue;
      const writer = deps.find((d) => abs === d.path || abs.startsWith(d.path + sep));
      if (writer) {
        notes.push({ file, pointer: at, message: `${p.path} does not exist yet; "${writer.by}" (dependsOn) writes ${relative(dir, writer.path) || '.'} (Nx runs it first; without Nx, run it before this pipeline)` });
        continue;
      }
      const parent = nearestExisting(dirname(abs));
      const near = parent ? readdirSync(parent).slice(0, 8) : [];
      issues.push({
        file, pointer: at, message: `${p.expect} not found: ${p.path} (resolved from the pipeline's folder to ${abs})`,
        hint: parent ? `check the path; ${relative(dir, parent) || '.'} holds: ${near.join(', ') || '(nothing)'}` : 'check the path; relative paths start at the pipeline file\'s folder',
      });
    }
  }
  return { issues, notes };
}

function nearestExisting(dir: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(d)) return d;
    if (dirname(d) === d) return undefined;
  }
}

/**
 * The outputs of what a pipeline depends on, transitively: the `outputs` of the pipeline files
 * in its folder whose `name` is in `dependsOn`, and of the targets of that name in the folder's
 * Nx `project.json` (its `{workspaceRoot}` is the nearest folder above with an `nx.json`).
 */
export function dependencyOutputs(file: string, dependsOn: unknown): DependencyOutput[] {
  const dir = dirname(resolve(file));
  const pipelines = new Map<string, { file: string; doc: Record<string, unknown> }>();
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.json') && x !== 'project.json')) {
    const doc = readJson(join(dir, f));
    if (doc && typeof doc.name === 'string') pipelines.set(doc.name, { file: join(dir, f), doc });
  }
  const targets = (readJson(join(dir, 'project.json'))?.targets ?? {}) as Record<string, { outputs?: unknown }>;
  const workspace = nearestWith(dir, 'nx.json');
  const out: DependencyOutput[] = [];
  const seen = new Set<string>();
  const visit = (names: unknown) => {
    for (const by of Array.isArray(names) ? names : []) {
      if (typeof by !== 'string' || seen.has(by)) continue;
      seen.add(by);
      const p = pipelines.get(by);
      if (p) {
        for (const o of strings(p.doc.outputs)) out.push({ path: resolve(dirname(p.file), o), by });
        visit(p.doc.dependsOn);
      }
      for (const o of strings(targets[by]?.outputs)) {
        if (o.startsWith('{workspaceRoot}') && workspace) out.push({ path: resolve(workspace, '.' + o.slice('{workspaceRoot}'.length)), by });
        else if (o.startsWith('{projectRoot}')) out.push({ path: resolve(dir, '.' + o.slice('{projectRoot}'.length)), by });
      }
    }
  };
  visit(dependsOn);
  return out.map((o) => ({ ...o, path: o.path.replace(/[\\/]+$/, '') }));
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

function readJson(path: string): Record<string, any> | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

function nearestWith(dir: string, name: string): string | undefined {
  for (let d = dir; ; d = dirname(d)) {
    if (existsSync(join(d, name))) return d;
    if (dirname(d) === d) return undefined;
  }
}
