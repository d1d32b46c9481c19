import type { Registry } from '../api/registry.js';
import type { StepKind } from '../api/step.js';
import pipelineSchema from '../schema/pipeline.schema.json' with { type: 'json' };
import type { Pipeline, Step } from '../schema/pipeline.generated.js';
import { suggest } from './did-you-mean.js';
import { pointer, type PipelineIssue } from './errors.js';
import { schemaIssues } from './schema-check.js';

/** A resolved edge: input `port` of step `to` reads output `fromPort` of step `from`. */
export interface Edge {
  from: string;
  fromPort: string;
  to: string;
  port: string;
}

/** A pipeline that passed validation, with defaults applied and its steps in run order. */
export interface ValidatedPipeline {
  file: string;
  pipeline: Pipeline & { seed: number; backend: NonNullable<Pipeline['backend']> };
  /** Step names in dependency order. */
  plan: string[];
  edges: Edge[];
}

/** Splits `step` or `step.port` into its parts. */
export function parseRef(ref: string): { step: string; port?: string } {
  const dot = ref.indexOf('.');
  return dot < 0 ? { step: ref } : { step: ref.slice(0, dot), port: ref.slice(dot + 1) };
}

/**
 * Validates a whole pipeline document before anything runs: the document's schema, step kinds,
 * each step's settings against its kind's schema (defaults are filled in, in place), input names,
 * references, port types and cycles.
 *
 * @returns the issues found (empty when valid) and, when valid, the run plan.
 */
export function validatePipeline(file: string, doc: unknown, registry: Registry): { issues: PipelineIssue[]; validated?: ValidatedPipeline } {
  const issues = schemaIssues(file, '', pipelineSchema, doc);
  if (issues.length) return { issues };
  const p = doc as ValidatedPipeline['pipeline'];
  const kinds = registry.stepKinds().map((k) => k.name);
  const stepNames = Object.keys(p.steps);
  const edges: Edge[] = [];

  for (const [name, step] of Object.entries(p.steps) as [string, Step][]) {
    const at = (...t: (string | number)[]) => pointer('steps', name, ...t);
    const kind = registry.stepKind(step.kind);
    if (!kind) {
      issues.push({ file, pointer: at('kind'), message: `unknown step kind "${step.kind}"`, hint: `${suggest(step.kind, kinds)}; a plugin listed in "plugins" may add more` });
      continue;
    }
    step.settings ??= {};
    const settingIssues = schemaIssues(file, at('settings'), kind.settingsSchemaFor?.(registry) ?? kind.settingsSchema, step.settings);
    issues.push(...settingIssues);
    if (!settingIssues.length && kind.validate) {
      for (const i of kind.validate(step.settings, registry)) issues.push({ file, pointer: at('settings') + i.pointer, message: i.message, hint: i.hint });
    }
    issues.push(...checkInputs(file, name, step, kind, p, registry, stepNames, edges));
  }
  if (issues.length) return { issues };

  const order = topoSort(stepNames, edges);
  if ('cycle' in order) {
    const c = order.cycle;
    return { issues: [{ file, pointer: pointer('steps', c[0], 'inputs'), message: `steps form a cycle: ${[...c, c[0]].join(' -> ')}`, hint: 'a step cannot consume, directly or not, its own output; remove one of these inputs' }] };
  }
  for (const name of order.plan) {
    const step = p.steps[name] as Step;
    const kind = registry.stepKind(step.kind)!;
    if (!kind.validateUpstream) continue;
    const ancestors = upstreamOf(name, edges);
    const upstream = order.plan.filter((n) => ancestors.has(n)).map((n) => ({ name: n, kind: (p.steps[n] as Step).kind, settings: ((p.steps[n] as Step).settings ?? {}) as Record<string, unknown> }));
    for (const i of kind.validateUpstream(step.settings, upstream)) issues.push({ file, pointer: pointer('steps', name, 'settings') + i.pointer, message: i.message, hint: i.hint });
  }
  if (issues.length) return { issues };
  return { issues: [], validated: { file, pipeline: p, plan: order.plan, edges } };
}

/** The steps `name` depends on, directly or through others. */
function upstreamOf(name: string, edges: Edge[]): Set<string> {
  const seen = new Set<string>();
  const todo = [name];
  while (todo.length) {
    const n = todo.pop()!;
    for (const e of edges) if (e.to === n && !seen.has(e.from)) todo.push(e.from), seen.add(e.from);
  }
  return seen;
}

function checkInputs(file: string, name: string, step: Step, kind: StepKind, p: Pipeline, registry: Registry, stepNames: string[], edges: Edge[]): PipelineIssue[] {
  const issues: PipelineIssue[] = [];
  const at = (...t: (string | number)[]) => pointer('steps', name, ...t);
  const given = step.inputs ?? {};
  for (const [port, spec] of Object.entries(kind.inputs)) {
    if (!(port in given) && !spec.optional) {
      issues.push({ file, pointer: at('inputs', port), message: `step kind "${kind.name}" needs input "${port}" (${spec.accepts.join(' or ')})`, hint: `add "inputs": {"${port}": "<step name>"}` });
    }
  }
  for (const [port, ref] of Object.entries(given)) {
    const spec = kind.inputs[port];
    if (!spec) {
      issues.push({ file, pointer: at('inputs', port), message: `step kind "${kind.name}" has no input "${port}"`, hint: suggest(port, Object.keys(kind.inputs)) });
      continue;
    }
    const { step: from, port: fromPortGiven } = parseRef(ref);
    const src = p.steps[from];
    if (!src) {
      issues.push({ file, pointer: at('inputs', port), message: `reference to a step that does not exist: "${from}"`, hint: suggest(from, stepNames.filter((s) => s !== name)) });
      continue;
    }
    if (from === name) {
      issues.push({ file, pointer: at('inputs', port), message: `step "${name}" consumes its own output`, hint: 'steps form a cycle; point this input at another step' });
      continue;
    }
    const srcKind = registry.stepKind(src.kind);
    if (!srcKind) continue; // reported at that step
    const outs = Object.keys(srcKind.outputs);
    // Without an explicit port, take the source's only output, else its only output of an accepted type.
    const fitting = outs.filter((o) => spec.accepts.includes(srcKind.outputs[o].type));
    const fromPort = fromPortGiven ?? (outs.length === 1 ? outs[0] : fitting.length === 1 ? fitting[0] : undefined);
    if (!fromPort) {
      issues.push({ file, pointer: at('inputs', port), message: `step "${from}" has several outputs (${outs.join(', ')}); say which`, hint: `write "${from}.<output>", e.g. "${from}.${fitting[0] ?? outs[0]}"` });
      continue;
    }
    const out = srcKind.outputs[fromPort];
    if (!out) {
      issues.push({ file, pointer: at('inputs', port), message: `step "${from}" (${src.kind}) has no output "${fromPort}"`, hint: suggest(fromPort, outs) });
      continue;
    }
    if (!spec.accepts.includes(out.type)) {
      issues.push({ file, pointer: at('inputs', port), message: `port type mismatch: input "${port}" of "${kind.name}" accepts ${spec.accepts.join(' or ')}, but "${from}.${fromPort}" (${src.kind}) produces ${out.type}`, hint: hintForMismatch(kind.name, out.type) });
      continue;
    }
    edges.push({ from, fromPort, to: name, port });
  }
  return issues;
}

function hintForMismatch(kind: string, got: string): string {
  if (kind === 'quantize' && got === 'peft-model') return 'quantize the base model before injecting a method: put the quantize step between load and inject';
  return 'connect this input to a step that produces the accepted type';
}

function topoSort(steps: string[], edges: Edge[]): { plan: string[] } | { cycle: string[] } {
  const deps = new Map(steps.map((s) => [s, edges.filter((e) => e.to === s).map((e) => e.from)]));
  const state = new Map<string, 1 | 2>();
  const plan: string[] = [];
  const stack: string[] = [];
  const visit = (s: string): string[] | undefined => {
    if (state.get(s) === 2) return;
    if (state.get(s) === 1) return stack.slice(stack.indexOf(s));
    state.set(s, 1);
    stack.push(s);
    for (const d of deps.get(s)!) {
      const c = visit(d);
      if (c) return c;
    }
    stack.pop();
    state.set(s, 2);
    plan.push(s);
  };
  for (const s of steps) {
    const c = visit(s);
    if (c) return { cycle: c };
  }
  return { plan };
}
