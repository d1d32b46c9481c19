import { UserError, suggest, type JSONSchema7, type Registry, type SettingsIssue, type StepKind } from '@peftkit/core';
import { PeftModel, manualSeed, type AdapterHandle, type LoadedModel } from '@peftkit/models';
import schema from './inject.schema.json' with { type: 'json' };
import type { InjectSettings } from './inject.generated.js';
import { rememberBaseStateNames } from './base-state.js';

/**
 * Rewrites a method's config schema for embedding at `at` (a JSON pointer inside the settings
 * schema): local `$ref`s (`#/definitions/x`) are prefixed so that they still resolve, and `$schema`
 * / `$id` (only allowed at a document's root) are dropped.
 */
function embed(s: unknown, at: string, root = true): unknown {
  if (Array.isArray(s)) return s.map((x) => embed(x, at, false));
  if (!s || typeof s !== 'object') return s;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (root && (k === '$schema' || k === '$id')) continue;
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? `#${at}${v.slice(1)}` : embed(v, at, false);
  }
  return out;
}

/**
 * The `inject` settings schema for what is registered: `method` suggests the registered names, and
 * `config` is checked against the chosen method's `configSchema` (one `if`/`then` per method), so
 * that errors point at `/steps/<step>/settings/config/<field>` and its defaults are filled in.
 */
export function injectSettingsSchemaFor(registry: Registry): JSONSchema7 {
  const s = structuredClone(schema) as JSONSchema7;
  const names = registry.methods().map((m) => m.name);
  s.properties.method = { ...s.properties.method, anyOf: [{ enum: names }, { type: 'string' }] };
  s.allOf = registry.methods().map((m, i) => ({
    if: { properties: { method: { const: m.name } }, required: ['method'] },
    then: { properties: { config: embed(m.configSchema, `/allOf/${i}/then/properties/config`) } },
  }));
  return s;
}

/** Formats HF PEFT's `print_trainable_parameters` line. */
export function formatParameterReport(r: { trainable: number; total: number; percent: number }): string {
  return `trainable params: ${r.trainable.toLocaleString('en-US')} || all params: ${r.total.toLocaleString('en-US')} || trainable%: ${r.percent.toFixed(4)}`;
}

/**
 * The `inject` step: injects a registered PEFT method into a base (or quantized) model and outputs
 * the {@link PeftModel}. The base model is changed in place (its layers wrapped, its parameters
 * frozen), as HF PEFT's `get_peft_model` does. Logs and records the trainable-parameter report.
 */
export const injectStep: StepKind<InjectSettings> = {
  name: 'inject',
  description: 'Injects a PEFT method (LoRA, bottleneck adapters, prefix tuning, full fine-tuning, ...) into a model.',
  inputs: { model: { accepts: ['base-model', 'quantized-model'], description: 'The model to inject into (changed in place).' } },
  outputs: { model: { type: 'peft-model', description: 'The model with the adapter added and active.' } },
  settingsSchema: schema,
  settingsSchemaFor: injectSettingsSchemaFor,
  validate(settings, registry): SettingsIssue[] {
    const method = registry.method(settings.method);
    if (!method) {
      const names = registry.methods().map((m) => m.name);
      return [{ pointer: '/method', message: `unknown PEFT method "${settings.method}"`, hint: `${suggest(settings.method, names)}; a plugin listed in "plugins" may add more` }];
    }
    return (method.validateConfig?.(settings.config ?? {}) ?? []).map((i) => ({ ...i, pointer: '/config' + i.pointer }));
  },
  async run(ctx, inputs, settings) {
    const base = inputs.model as LoadedModel;
    const method = ctx.registry.method(settings.method);
    if (!method) throw new UserError(`unknown PEFT method "${settings.method}"`, { pointer: `/steps/${ctx.step}/settings/method`, hint: suggest(settings.method, ctx.registry.methods().map((m) => m.name)) });
    if (method.family === 'full' && base.quantization) {
      throw new UserError('full fine-tuning needs full-precision weights, but this model is quantized', {
        pointer: `/steps/${ctx.step}/settings/method`,
        hint: 'inject LoRA into the quantized model (QLoRA), or remove the quantize step',
      });
    }
    const adapterName = settings.adapter_name ?? 'default';
    // Seeded here so that the adapter's initialisation does not depend on what ran before.
    manualSeed(ctx.seed);
    const names = [...base.model.stateDict().keys()];
    const handle = (await Promise.resolve()
      .then(() => method.inject(base.model, settings.config ?? {}, { logger: ctx.logger, seed: ctx.seed, adapterName, tokenizer: base.tokenizer }))
      .catch((e) => {
        // A method locates its errors in its own config: place them under this step's "config".
        if (e instanceof UserError && e.details.pointer && !e.details.pointer.startsWith('/steps/')) throw new UserError(e.message, { ...e.details, pointer: '/config' + e.details.pointer });
        throw e;
      })) as AdapterHandle;
    if (handle.name !== adapterName) handle.name = adapterName;
    const peft = new PeftModel(base);
    peft.addAdapter(handle);
    rememberBaseStateNames(peft, names);
    const report = handle.parameterReport?.() ?? peft.parameterReport();
    ctx.logger.info(`${method.name}: ${formatParameterReport(report)}`);
    ctx.recordMetrics({ method: method.name, adapter: adapterName, trainable_params: report.trainable, all_params: report.total, trainable_percent: report.percent });
    return { model: peft };
  },
};
