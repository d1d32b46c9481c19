import { ContainerModule } from 'inversify';
import type { StepKind } from '../api/step.js';
import type { PeftMethod } from '../api/method.js';
import { TYPES } from '../api/types.js';
import type { LoadedPlugin } from '../engine/registry.js';

/** Step kinds with the built-ins' port signatures and trivial bodies, for engine tests. */
export function fakePlugin(log: string[] = []): LoadedPlugin {
  const kind = (name: string, inputs: StepKind['inputs'], outputs: StepKind['outputs'], settingsSchema: object = { type: 'object' }): StepKind => ({
    name, description: `fake ${name}`, inputs, outputs, settingsSchema,
    async run(ctx, ins, settings) {
      log.push(`${ctx.step}:${JSON.stringify(settings)}:${Object.keys(ins).sort().join(',')}`);
      return Object.fromEntries(Object.keys(outputs).map((o) => [o, `${ctx.step}.${o}`]));
    },
  });
  const method: PeftMethod = {
    name: 'toy', peftType: 'TOY', family: 'adapter-layers', description: 'toy method',
    configSchema: { type: 'object', additionalProperties: false, properties: { r: { type: 'integer', minimum: 1, default: 8 } } },
    inject: () => ({}),
  };
  const steps = [
    kind('load', {}, { model: { type: 'base-model' } }, { type: 'object', required: ['model'], properties: { model: { type: 'string' } } }),
    kind('quantize', { model: { accepts: ['base-model'] } }, { model: { type: 'quantized-model' } }),
    kind('inject', { model: { accepts: ['base-model', 'quantized-model'] } }, { model: { type: 'peft-model' } }, {
      type: 'object', required: ['method'], properties: { method: { type: 'string' }, config: { type: 'object' } },
    }),
    kind('dataset', {}, { dataset: { type: 'dataset' } }),
    kind('train', { model: { accepts: ['peft-model'] }, dataset: { accepts: ['dataset'] } }, { model: { type: 'peft-model' }, metrics: { type: 'metrics' } }, {
      type: 'object', additionalProperties: false, properties: { lr: { type: 'number', default: 0.001 }, steps: { type: 'integer' } },
    }),
  ];
  return {
    name: 'fake', version: '0.0.0',
    module: new ContainerModule(({ bind }) => {
      for (const s of steps) bind(TYPES.StepKind).toConstantValue(s);
      bind(TYPES.PeftMethod).toConstantValue(method);
    }),
  };
}
