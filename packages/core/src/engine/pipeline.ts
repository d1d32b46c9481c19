import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Pipeline } from '../schema/pipeline.generated.js';
import { pointer, UserError, type PipelineIssue } from './errors.js';
import { suggest } from './did-you-mean.js';

/** A pipeline file as read: its parsed document, or the issue that stopped the parse. */
export interface ParsedPipeline {
  file: string;
  doc: Pipeline | undefined;
  issues: PipelineIssue[];
}

/**
 * Reads and parses a pipeline file. A syntax error is reported with its line and column.
 * @throws UserError when the file cannot be read.
 */
export function readPipelineFile(file: string): ParsedPipeline {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new UserError(`cannot read pipeline file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file, hint: 'check the path' });
  }
  try {
    return { file, doc: JSON.parse(text), issues: [] };
  } catch (e) {
    const msg = (e as Error).message;
    const pos = /position (\d+)/.exec(msg);
    let where = '';
    if (pos) {
      const before = text.slice(0, Number(pos[1]));
      const line = before.split('\n').length;
      where = ` at line ${line}, column ${Number(pos[1]) - before.lastIndexOf('\n')}`;
    }
    return { file, doc: undefined, issues: [{ file, pointer: '', message: `not valid JSON${where}: ${msg}`, hint: `fix the syntax of ${basename(file)} (a trailing comma or a missing quote is the usual cause)` }] };
  }
}

/**
 * Applies `--set` overrides to a parsed pipeline, in place. A key is a dotted path from the
 * document's root (`steps.train.settings.max_steps=20`); the value is parsed as JSON when it
 * parses, else taken as a string. Missing objects on the path are created.
 * @throws UserError for a malformed override.
 */
export function applyOverrides(doc: Record<string, any>, overrides: string[]): void {
  for (const o of overrides) {
    const eq = o.indexOf('=');
    if (eq <= 0) throw new UserError(`--set ${o}: expected key=value, e.g. steps.train.settings.max_steps=20`);
    const raw = o.slice(eq + 1);
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      // A value that starts like an object or array was meant as JSON: say so rather than pass a string on.
      if (/^\s*[[{]/.test(raw)) throw new UserError(`--set ${o}: the value is not valid JSON (${(e as Error).message})`, { hint: 'quote it for the shell, e.g. --set \'key={"a":1}\'' });
      value = raw;
    }
    setByPath(doc, o.slice(0, eq), value, (msg, hint) => new UserError(`--set ${o}: ${msg}`, { hint }));
  }
}

/**
 * Applies the pipeline's own `quick` block (dotted path -> value, the same keys as `--set`), in
 * place: the sizes its author chose for a quick run (CI, a first try). The block itself is kept.
 * @throws UserError naming `/quick/<key>` in `file` when a key names a step that does not exist.
 */
export function applyQuick(file: string, doc: Record<string, any>): number {
  const quick = doc.quick;
  if (!quick || typeof quick !== 'object' || Array.isArray(quick)) return 0;
  for (const [key, value] of Object.entries(quick as Record<string, unknown>)) {
    if (key === 'description') continue;
    setByPath(doc, key, structuredClone(value), (msg, hint) => new UserError(msg, { file, pointer: pointer('quick', key), hint }));
  }
  return Object.keys(quick).filter((k) => k !== 'description').length;
}

/** Sets `value` at a dotted `key` of `doc`, creating missing objects; `fail` builds the error. */
function setByPath(doc: Record<string, any>, key: string, value: unknown, fail: (message: string, hint?: string) => Error): void {
  const path = key.split('.');
  if (path[0] === 'steps' && path.length > 2 && doc.steps && typeof doc.steps === 'object' && !(path[1] in doc.steps)) {
    throw fail(`the pipeline has no step "${path[1]}"`, suggest(path[1], Object.keys(doc.steps)));
  }
  let node: Record<string, any> = doc;
  for (const k of path.slice(0, -1)) {
    if (node[k] === undefined) node[k] = {};
    if (typeof node[k] !== 'object' || node[k] === null) throw fail(`"${k}" is not an object in the pipeline`);
    node = node[k];
  }
  node[path[path.length - 1]] = value;
}
