import { isAbsolute, resolve } from 'node:path';
import { UserError, suggest, type JSONSchema7, type Registry, type SettingsIssue, type StepContext, type StepKind } from '@peftkit/core';
import { PeftModel, adapterMismatches, loadAdapters, manualSeed, methodForAdapter, type AdapterHandle, type LoadedModel } from '@peftkit/models';
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
    if (settings.adapter !== undefined) {
      if (settings.method !== undefined) return [{ pointer: '/method', message: 'give either "method" (a new adapter) or "adapter" (an existing adapter folder), not both', hint: 'remove "method": the adapter\'s adapter_config.json names its method' }];
      if (settings.config && Object.keys(settings.config).length) return [{ pointer: '/config', message: 'a loaded adapter keeps its own config (its adapter_config.json)', hint: 'remove "config", or inject a new adapter with "method" and "config"' }];
      return [];
    }
    if (settings.is_trainable) return [{ pointer: '/is_trainable', message: '"is_trainable" applies to a loaded adapter ("adapter"); a newly injected one is always trainable', hint: 'remove "is_trainable", or set "adapter" to an adapter folder' }];
    if (settings.method === undefined) return [{ pointer: '', message: 'give "method" (a PEFT method to inject) or "adapter" (an existing adapter folder to load)', hint: `methods: ${registry.methods().map((m) => m.name).join(', ')}` }];
    const method = registry.method(settings.method);
    if (!method) {
      const names = registry.methods().map((m) => m.name);
      return [{ pointer: '/method', message: `unknown PEFT method "${settings.method}"`, hint: `${suggest(settings.method, names)}; a plugin listed in "plugins" may add more` }];
    }
    return (method.validateConfig?.(settings.config ?? {}) ?? []).map((i) => ({ ...i, pointer: '/config' + i.pointer }));
  },
  async run(ctx, inputs, settings) {
    const base = inputs.model as LoadedModel;
    if (settings.adapter !== undefined) return { model: await loadExisting(ctx, base, settings as InjectSettings & { adapter: string }) };
    const methodName = settings.method!;
    const method = ctx.registry.method(methodName);
    if (!method) throw new UserError(`unknown PEFT method "${methodName}"`, { pointer: `/steps/${ctx.step}/settings/method`, hint: suggest(methodName, ctx.registry.methods().map((m) => m.name)) });
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
    reportParameters(ctx, peft, handle);
    return { model: peft };
  },
};

/** Logs HF PEFT's `print_trainable_parameters` line for `handle` and records it as metrics. */
function reportParameters(ctx: StepContext, peft: PeftModel, handle: AdapterHandle, extra: Record<string, unknown> = {}): void {
  const report = handle.parameterReport?.() ?? peft.parameterReport();
  ctx.logger.info(`${handle.method}: ${formatParameterReport(report)}`);
  ctx.recordMetrics({ method: handle.method, adapter: handle.name, trainable_params: report.trainable, all_params: report.total, trainable_percent: report.percent, ...extra });
}

/**
 * `adapter`: loads an existing adapter folder onto `base` with its own config (HF PEFT's
 * `PeftModel.from_pretrained(model, folder, is_trainable=...)`), after checking that it fits the
 * base (`adapterMismatches`: module names, features, widths, heads), and freezes it unless
 * `is_trainable`.
 * @throws UserError naming the setting (`/steps/<step>/settings/adapter`): folder missing or not an
 *   adapter, no registered method loads it, the adapter does not fit the base (the first
 *   mismatches), or the method's loader refuses it (its message, which names the file and field).
 */
async function loadExisting(ctx: StepContext, base: LoadedModel, settings: InjectSettings & { adapter: string }): Promise<PeftModel> {
  const pointer = `/steps/${ctx.step}/settings/adapter`;
  const dir = isAbsolute(settings.adapter) ? settings.adapter : resolve(ctx.pipelineDir, settings.adapter);
  const adapterName = settings.adapter_name ?? 'default';
  // The loaders' errors name the adapter's file (and the field inside it) but not the setting.
  const at = async <T>(fn: () => T | Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof UserError && !e.details.pointer) throw new UserError(`${e.message} (${pointer})`, { ...e.details, pointer });
      throw e;
    }
  };
  const method = await at(() => methodForAdapter(dir, ctx.registry.methods()));
  const fit = await adapterMismatches(dir, base);
  if (fit.count) {
    throw new UserError(`the adapter in ${dir} does not fit the model from ${base.source}: ${fit.count} mismatch${fit.count === 1 ? '' : 'es'}${fit.lines.map((l) => `\n  - ${l}`).join('')}`, {
      pointer, hint: `peftkit inspect ${dir} --base ${base.source} explains each; load the base the adapter was trained on`,
    });
  }
  const names = [...base.model.stateDict().keys()];
  const peft = new PeftModel(base);
  rememberBaseStateNames(peft, names);
  await at(() => loadAdapters(peft, [{ name: adapterName, path: dir }], [method], { logger: ctx.logger }));
  const handle = peft.adapters.get(adapterName)!;
  // HF's from_pretrained(is_trainable=False) sets requires_grad off on the adapter's parameters.
  if (!settings.is_trainable) for (const [, v] of handle.trainableParameters()) v.trainable = false;
  ctx.logger.info(`loaded ${method.name} adapter "${adapterName}" from ${dir} (${settings.is_trainable ? 'trainable' : 'frozen: is_trainable is false'})`);
  reportParameters(ctx, peft, handle, { loaded_from: dir, is_trainable: settings.is_trainable ?? false });
  return peft;
}
