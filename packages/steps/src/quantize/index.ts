import { UserError, suggest, type JSONSchema7, type Registry, type SettingsIssue, type StepKind } from '@peftkit/core';
import type { LoadedModel } from '@peftkit/models';
import schema from './quantize.schema.json' with { type: 'json' };
import type { QuantizeSettings } from './quantize.generated.js';

/** The block sizes bitsandbytes' 4-bit kernels accept. */
const BLOCKSIZES = [32, 64, 128, 256, 512, 1024, 2048, 4096];

/** The settings schema with `quant_type` offering the registered schemes' names. */
export function quantizeSettingsSchemaFor(registry: Registry): JSONSchema7 {
  const s = structuredClone(schema) as JSONSchema7;
  const names = registry.quantSchemes().map((q) => q.name);
  if (names.length) s.properties.quant_type = { ...s.properties.quant_type, enum: [...new Set([...s.properties.quant_type.enum, ...names])] };
  return s;
}

/**
 * The `quantize` step: stores the base model's linear layers quantized (QLoRA's NF4 with double
 * quantization by default), in place, through the quantization scheme registered under
 * `quant_type` (the schemes live in a plugin, e.g. @peftkit/qlora; this step only finds them in the
 * registry). Accepts only a `base-model`: quantizing after a method was injected is a port-type
 * error. Outputs the same model as a `quantized-model` with `quantization` filled in, and records the
 * bits per parameter and the memory saved.
 */
export const quantizeStep: StepKind<QuantizeSettings> = {
  name: 'quantize',
  description: 'Quantizes the base model\'s linear layers (bitsandbytes NF4/FP4 4-bit with double quantization, or int8), as QLoRA does before injecting LoRA.',
  inputs: { model: { accepts: ['base-model'], description: 'The full-precision model to quantize (changed in place).' } },
  outputs: { model: { type: 'quantized-model', description: 'The model with its linear layers stored quantized (a LoadedModel with `quantization` set).' } },
  settingsSchema: schema,
  settingsSchemaFor: quantizeSettingsSchemaFor,
  validate(settings: QuantizeSettings, registry: Registry): SettingsIssue[] {
    const issues: SettingsIssue[] = [];
    const qt = settings.quant_type ?? 'nf4';
    if (!registry.quantScheme(qt)) {
      const names = registry.quantSchemes().map((q) => q.name);
      issues.push({ pointer: '/quant_type', message: `no quantization scheme "${qt}" is registered`, hint: names.length ? suggest(qt, names) : 'add "@peftkit/qlora" to the pipeline\'s "plugins" (it registers nf4, fp4 and int8)' });
    }
    const b = settings.blocksize;
    if (b !== undefined && !BLOCKSIZES.includes(b)) {
      issues.push({ pointer: '/blocksize', message: `blocksize ${b} is not a power of two`, hint: `use one of ${BLOCKSIZES.join(', ')} (64 is the QLoRA default)` });
    }
    if (typeof settings.target_modules === 'string') {
      try {
        new RegExp(settings.target_modules);
      } catch (e) {
        issues.push({ pointer: '/target_modules', message: `not a valid regular expression: ${(e as Error).message}`, hint: 'fix the pattern or give a list of module names' });
      }
    }
    return issues;
  },
  async run(ctx, inputs, settings) {
    const base = inputs.model as LoadedModel;
    const qt = settings.quant_type ?? 'nf4';
    const scheme = ctx.registry.quantScheme(qt);
    if (!scheme) {
      throw new UserError(`no quantization scheme "${qt}" is registered`, { pointer: `/steps/${ctx.step}/settings/quant_type`, hint: 'add "@peftkit/qlora" to the pipeline\'s "plugins"' });
    }
    if (base.quantization) throw new UserError('the model is already quantized', { pointer: `/steps/${ctx.step}/inputs/model`, hint: 'remove this quantize step, or load the full-precision checkpoint' });
    const report = (await scheme.quantize(base.model, { ...settings, quant_type: qt }, { logger: ctx.logger, seed: ctx.seed })) ?? {};
    const quantization: Record<string, unknown> = { quant_type: qt, blocksize: qt === 'int8' ? null : settings.blocksize ?? 64, double_quant: qt === 'int8' ? false : settings.double_quant ?? true, ...report };
    const row: Record<string, unknown> = { quant_type: qt };
    for (const k of ['quantized_parameters', 'bits_per_parameter', 'bits_per_parameter_with_tables', 'quantized_bytes', 'float32_bytes']) if (k in quantization) row[k] = quantization[k];
    if (Array.isArray(quantization.quantized_modules)) row.quantized_layers = quantization.quantized_modules.length;
    ctx.recordMetrics(row);
    const out: LoadedModel = { ...base, quantization };
    return { model: out };
  },
};
