import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { JSONSchema7 } from '../api/json-schema.js';
import type { PipelineIssue } from './errors.js';
import { pointerToken } from './errors.js';
import { suggest } from './did-you-mean.js';

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false, verbose: true });
const cache = new Map<string, ValidateFunction>();

/** Compiles (once per schema object) and returns an ajv validator that also fills in defaults. */
export function validatorFor(schema: JSONSchema7): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = cache.get(key);
  if (!v) {
    v = ajv.compile(schema);
    cache.set(key, v);
  }
  return v;
}

/**
 * Validates `value` against `schema` (applying its defaults in place) and turns ajv's errors into
 * issues whose pointers are prefixed by `basePointer`.
 */
export function schemaIssues(file: string, basePointer: string, schema: JSONSchema7, value: unknown): PipelineIssue[] {
  const validate = validatorFor(schema);
  if (validate(value)) return [];
  return dedupe(validate.errors ?? []).map((e) => toIssue(file, basePointer, e));
}

// With allErrors, a failed oneOf/anyOf reports every branch; keep the most specific messages.
function dedupe(errors: ErrorObject[]): ErrorObject[] {
  const specific = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'anyOf' && e.keyword !== 'if');
  const seen = new Set<string>();
  return (specific.length ? specific : errors).filter((e) => {
    const k = `${e.instancePath}|${e.keyword}|${JSON.stringify(e.params)}`;
    return seen.has(k) ? false : (seen.add(k), true);
  });
}

function toIssue(file: string, base: string, e: ErrorObject): PipelineIssue {
  const at = base + e.instancePath;
  const p = e.params as Record<string, any>;
  switch (e.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((e.parentSchema as any)?.properties ?? {});
      return { file, pointer: `${at}/${pointerToken(p.additionalProperty)}`, message: `unknown field "${p.additionalProperty}"`, hint: known.length ? `remove it; ${suggest(p.additionalProperty, known)}` : 'remove it' };
    }
    case 'required':
      return { file, pointer: `${at}/${pointerToken(p.missingProperty)}`, message: `missing required field "${p.missingProperty}"`, hint: describe(e, p.missingProperty) };
    case 'enum':
      return { file, pointer: at, message: `must be one of ${p.allowedValues.map((v: unknown) => JSON.stringify(v)).join(', ')}`, hint: 'pick one of the allowed values' };
    case 'type': {
      // Say what to write first: the expected type with an example, then what the field means.
      const s = e.parentSchema as { default?: unknown; examples?: unknown[] } | undefined;
      const example = s?.default !== undefined && s.default !== null ? ` such as ${JSON.stringify(s.default)} (the default)` : s?.examples?.length ? ` such as ${JSON.stringify(s.examples[0])}` : '';
      const got = e.data === null ? 'null' : Array.isArray(e.data) ? 'an array' : typeof e.data === 'string' ? `the string ${JSON.stringify(e.data)}` : `a ${typeof e.data}`;
      const what = describe(e);
      return { file, pointer: at, message: `must be of type ${p.type}, not ${got}`, hint: `write ${/^[aeiou]/.test(String(p.type)) ? 'an' : 'a'} ${String(p.type).replace(/,/g, ' or ')}${example}${what ? `; ${what}` : ''}` };
    }
    default:
      return { file, pointer: at, message: e.message ?? e.keyword, hint: describe(e) };
  }
}

function describe(e: ErrorObject, prop?: string): string | undefined {
  const s = e.parentSchema as any;
  const d = prop ? s?.properties?.[prop]?.description : s?.description;
  return d ? `expected: ${d}` : undefined;
}
