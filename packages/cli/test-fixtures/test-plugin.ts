/**
 * A self-contained test plugin: the built-in step kinds' port signatures (load, quantize, inject,
 * dataset, train), an inject step that validates each method's config, a `toy` method, a `wait`
 * step that blocks until the run is aborted and a `fail` step that throws. Load it in place of
 * @peftkit/steps with PEFTKIT_BUILTIN_PLUGINS=packages/cli/test-fixtures/test-plugin.ts.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerModule } from 'inversify';
import { TYPES, UserError, type LoadedPlugin, type PeftMethod, type StepKind } from '@peftkit/core';

const kind = (name: string, inputs: StepKind['inputs'], outputs: StepKind['outputs'], settingsSchema: object = { type: 'object' }, extra: Partial<StepKind> = {}): StepKind => ({
  name, description: `test ${name}`, inputs, outputs, settingsSchema,
  async run(ctx, ins, settings) {
    writeFileSync(join(ctx.stepDir, 'ran.json'), JSON.stringify({ settings, inputs: Object.keys(ins).sort() }));
    return Object.fromEntries(Object.keys(outputs).map((o) => [o, `${ctx.step}.${o}`]));
  },
  ...extra,
});

const toy: PeftMethod = {
  name: 'toy', peftType: 'TOY', family: 'adapter-layers', description: 'toy method',
  configSchema: {
    type: 'object', additionalProperties: false,
    properties: {
      r: { type: 'integer', minimum: 1, default: 8, description: 'rank of the update' },
      target_modules: { type: 'array', items: { type: 'string' }, default: ['c_attn'], description: 'module names to adapt' },
    },
  },
  inject: () => ({}),
};

const injectSettings = { type: 'object', required: ['method'], additionalProperties: false, properties: { method: { type: 'string', description: 'method name' }, config: { type: 'object', default: {} } } };

const steps: StepKind[] = [
  kind('load', {}, { model: { type: 'base-model' } }, { type: 'object', required: ['model'], additionalProperties: false, properties: { model: { type: 'string', description: 'model folder' } } }),
  kind('quantize', { model: { accepts: ['base-model'] } }, { model: { type: 'quantized-model' } }),
  kind('inject', { model: { accepts: ['base-model', 'quantized-model'] } }, { model: { type: 'peft-model' } }, injectSettings, {
    // As the real inject step does: each method's config schema is embedded under `config`.
    settingsSchemaFor: (registry) => ({
      ...injectSettings,
      properties: { ...injectSettings.properties, method: { enum: registry.methods().map((m) => m.name), description: 'method name' } },
      allOf: registry.methods().map((m) => ({ if: { properties: { method: { const: m.name } } }, then: { properties: { config: m.configSchema } } })),
    }),
  }),
  kind('dataset', {}, { dataset: { type: 'dataset' } }, { type: 'object', properties: { file: { type: 'string' } } }, {
    localPaths: (s: { file?: string }) => (s.file ? [{ pointer: '/file', path: s.file, expect: 'file' }] : []),
  }),
  kind('train', { model: { accepts: ['peft-model'] }, dataset: { accepts: ['dataset'] } }, { model: { type: 'peft-model' }, metrics: { type: 'metrics' } }, {
    type: 'object', additionalProperties: false,
    properties: { max_steps: { type: 'integer', minimum: 1, default: 10, description: 'optimizer steps' }, learning_rate: { type: 'number', default: 0.001, description: 'Adam step size' } },
  }),
  kind('wait', {}, { done: { type: 'artifact' } }, { type: 'object', properties: { timeout_s: { type: 'number', default: 60 }, ignore_abort: { type: 'boolean', default: false } } }, {
    async run(ctx, _ins, settings: { timeout_s: number; ignore_abort: boolean }) {
      // Logged at warn so that it shows under the test runner's PEFTKIT_LOG_LEVEL=warn.
      ctx.logger.warn('waiting for an abort');
      await new Promise<void>((res) => {
        const t = setTimeout(res, settings.timeout_s * 1000);
        if (!settings.ignore_abort) ctx.signal.addEventListener('abort', () => (clearTimeout(t), res()), { once: true });
      });
      writeFileSync(join(ctx.stepDir, 'checkpoint.json'), JSON.stringify({ aborted: ctx.signal.aborted }));
      return { done: ctx.stepDir };
    },
  }),
  kind('fail', {}, { done: { type: 'artifact' } }, { type: 'object', properties: { pointer: { type: 'string' } } }, {
    // With a pointer: a user's error located in the settings, as a method's would be.
    async run(_ctx, _ins, settings: { pointer?: string }) {
      if (settings.pointer) throw new UserError('no module matched', { pointer: settings.pointer, hint: 'use a name from the list' });
      throw new Error('boom: the fail step always fails');
    },
  }),
];

const plugin: LoadedPlugin = {
  name: 'test-steps', version: '0.0.1',
  module: new ContainerModule(({ bind }) => {
    for (const s of steps) bind(TYPES.StepKind).toConstantValue(s);
    bind(TYPES.PeftMethod).toConstantValue(toy);
  }),
};
export default plugin;
