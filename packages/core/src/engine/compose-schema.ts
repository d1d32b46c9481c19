import type { JSONSchema7 } from '../api/json-schema.js';
import type { Registry } from '../api/registry.js';
import pipelineSchema from '../schema/pipeline.schema.json' with { type: 'json' };

/**
 * The pipeline schema with every registered step kind's settings schema (and, inside them, the
 * methods' config schemas where a step kind embeds them) composed in, for editors (`$schema`).
 * Steps become a `oneOf` discriminated by `kind`.
 */
export function composeSchema(registry: Registry): JSONSchema7 {
  const s = structuredClone(pipelineSchema) as JSONSchema7;
  const base = s.definitions.Step;
  const variants = registry.stepKinds().map((k) => ({
    type: 'object',
    description: k.description,
    required: ['kind', ...Object.entries(k.inputs).filter(([, v]) => !v.optional).length ? ['inputs'] : []],
    additionalProperties: false,
    properties: {
      ...base.properties,
      kind: { const: k.name, description: k.description },
      inputs: {
        type: 'object',
        additionalProperties: false,
        properties: Object.fromEntries(Object.entries(k.inputs).map(([n, p]) => [n, { type: 'string', description: `${p.description ?? ''} Accepts ${p.accepts.join(' | ')}.`.trim() }])),
      },
      settings: k.settingsSchemaFor?.(registry) ?? k.settingsSchema,
    },
  }));
  s.definitions.Step = { oneOf: variants };
  s.properties.plugins.items = { anyOf: [{ enum: registry.plugins().map((p) => p.name) }, { type: 'string' }] };
  return s;
}
