import { createRegistry, type JSONSchema7, type LoadedPlugin, type PreparedPipeline, type Registry } from '@peftkit/core';
import type { FailedPlugin } from './plugin-loading.js';

/** One top-level field of a settings or config schema, as `peftkit plugins` lists it. */
export interface FieldInfo {
  name: string;
  /** `integer`, `string | null`, `"a" | "b"`, `string[]`, ... */
  type: string;
  default?: unknown;
  required: boolean;
  description?: string;
}

/** What `peftkit plugins --json` prints. */
export interface PluginsReport {
  plugins: { name: string; version: string }[];
  failed: FailedPlugin[];
  stepKinds: { name: string; plugin: string; description: string; inputs: Record<string, string[]>; outputs: Record<string, string>; settings: FieldInfo[] }[];
  methods: { name: string; plugin: string; peftType: string | null; family: string; description: string; config: FieldInfo[] }[];
  quantSchemes: { name: string; plugin: string; description: string; config: FieldInfo[] }[];
}

/** A schema's type in a few characters: `integer`, `"a" | "b"`, `string[]`, `number | null`. */
export function typeOf(s: JSONSchema7 | undefined): string {
  if (!s || typeof s !== 'object') return 'any';
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.enum)) return s.enum.map((v: unknown) => JSON.stringify(v)).join(' | ');
  for (const k of ['oneOf', 'anyOf'] as const) if (Array.isArray(s[k])) return s[k].map(typeOf).join(' | ');
  const types: string[] = Array.isArray(s.type) ? s.type : s.type ? [s.type] : [];
  if (!types.length) return s.properties ? 'object' : 'any';
  return types.map((t) => (t === 'array' ? `${s.items && !Array.isArray(s.items) ? typeOf(s.items) : 'any'}[]` : t)).join(' | ');
}

/** The top-level fields of an object schema, in declaration order. */
export function fieldsOf(schema: JSONSchema7 | undefined): FieldInfo[] {
  const required = new Set<string>(schema?.required ?? []);
  return Object.entries<JSONSchema7>(schema?.properties ?? {}).map(([name, s]) => ({
    name, type: typeOf(s), required: required.has(name), ...(s.default !== undefined ? { default: s.default } : {}), ...(s.description ? { description: s.description } : {}),
  }));
}

function formatField(f: FieldInfo): string {
  return `${f.name}: ${f.type}${f.default !== undefined ? ` = ${JSON.stringify(f.default)}` : ''}${f.required ? ' (required)' : ''}`;
}

/** Which plugin contributed each step kind, method and scheme (registries built one plugin at a time). */
function owners(plugins: LoadedPlugin[]): Map<string, string> {
  const owner = new Map<string, string>();
  for (const p of plugins) {
    let r: Registry;
    try {
      r = createRegistry([p]);
    } catch {
      continue;
    }
    for (const k of r.stepKinds()) owner.set(`step:${k.name}`, p.name);
    for (const m of r.methods()) owner.set(`method:${m.name}`, p.name);
    for (const q of r.quantSchemes()) owner.set(`quant:${q.name}`, p.name);
  }
  return owner;
}

/** Everything the loaded plugins registered, as data. */
export function describeRegistry(registry: Registry, plugins: LoadedPlugin[], failed: FailedPlugin[] = []): PluginsReport {
  const owner = owners(plugins);
  return {
    plugins: registry.plugins(),
    failed,
    stepKinds: registry.stepKinds().map((k) => ({
      name: k.name, plugin: owner.get(`step:${k.name}`) ?? '?', description: k.description,
      inputs: Object.fromEntries(Object.entries(k.inputs).map(([n, p]) => [n, [...p.accepts]])),
      outputs: Object.fromEntries(Object.entries(k.outputs).map(([n, p]) => [n, p.type])),
      settings: fieldsOf(k.settingsSchemaFor?.(registry) ?? k.settingsSchema),
    })),
    methods: registry.methods().map((m) => ({
      name: m.name, plugin: owner.get(`method:${m.name}`) ?? '?', peftType: m.peftType, family: m.family, description: m.description, config: fieldsOf(m.configSchema),
    })),
    quantSchemes: registry.quantSchemes().map((q) => ({ name: q.name, plugin: owner.get(`quant:${q.name}`) ?? '?', description: q.description, config: fieldsOf(q.configSchema) })),
  };
}

/** {@link describeRegistry} as the human-readable text of `peftkit plugins`. */
export function formatRegistry(r: PluginsReport): string {
  const lines: string[] = ['plugins:'];
  for (const p of r.plugins) lines.push(`  ${p.name}@${p.version}`);
  for (const f of r.failed) lines.push(`  ${f.name} (not loaded: ${f.error})`);
  lines.push('', 'step kinds:');
  for (const k of r.stepKinds) {
    const ins = Object.entries(k.inputs).map(([n, a]) => `${n} (${a.join(' | ')})`).join(', ') || '(none)';
    const outs = Object.entries(k.outputs).map(([n, t]) => `${n} (${t})`).join(', ') || '(none)';
    lines.push(`  ${k.name}  [${k.plugin}]  ${k.description}`, `    inputs:  ${ins}`, `    outputs: ${outs}`);
    if (k.settings.length) lines.push('    settings:', ...k.settings.map((f) => `      ${formatField(f)}`));
  }
  lines.push('', 'methods:');
  for (const m of r.methods) {
    lines.push(`  ${m.name}  [${m.plugin}]  peft_type ${m.peftType ?? '(none)'}, ${m.family}: ${m.description}`);
    if (m.config.length) lines.push('    config:', ...m.config.map((f) => `      ${formatField(f)}`));
  }
  lines.push('', 'quantization schemes:');
  if (!r.quantSchemes.length) lines.push('  (none)');
  for (const q of r.quantSchemes) {
    lines.push(`  ${q.name}  [${q.plugin}]  ${q.description}`);
    if (q.config.length) lines.push('    config:', ...q.config.map((f) => `      ${formatField(f)}`));
  }
  return lines.join('\n');
}

/**
 * The plan of a prepared pipeline, for `peftkit run --dry-run`: steps in run order with their
 * kind, where each input comes from, what each output is, and the settings after defaults.
 */
export function formatPlan(prepared: PreparedPipeline, shownFile = prepared.file): string {
  const { pipeline, plan, edges, registry } = prepared;
  const lines = [
    `pipeline "${pipeline.name}" (${shownFile}): ${plan.length} step${plan.length === 1 ? '' : 's'}, seed ${pipeline.seed}, backend ${pipeline.backend}`,
    `plugins: ${registry.plugins().map((p) => `${p.name}@${p.version}`).join(', ')}`,
  ];
  plan.forEach((name, i) => {
    const step = pipeline.steps[name];
    const kind = registry.stepKind(step.kind)!;
    const ins = edges.filter((e) => e.to === name).map((e) => `${e.port} <- ${e.from}.${e.fromPort}`);
    const outs = Object.entries(kind.outputs).map(([n, o]) => `${n} (${o.type})`);
    lines.push(
      `${String(i + 1).padStart(3)}. ${name} [${step.kind}]`,
      `       inputs:   ${ins.join(', ') || '(none)'}`,
      `       outputs:  ${outs.join(', ') || '(none)'}`,
      `       settings: ${JSON.stringify(step.settings ?? {})}`,
    );
  });
  return lines.join('\n');
}
