import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { runCli } from '@peftkit/cli';

const root = resolve(fileURLToPath(import.meta.url), '..', '..', '..');

test('pipelines/schema/pipeline.schema.json is the composed schema of the installed plugins (run `npm run schema` when this fails)', async () => {
  let out = '';
  const code = await runCli(['schema'], { out: (s) => (out += s), cwd: root });
  assert.equal(code, 0);
  const committed = JSON.parse(readFileSync(join(root, 'pipelines', 'schema', 'pipeline.schema.json'), 'utf8'));
  assert.deepEqual(JSON.parse(out), committed);
  const kinds = committed.definitions.Step.oneOf.map((s: { properties: { kind: { const: string } } }) => s.properties.kind.const);
  for (const k of ['load', 'dataset', 'quantize', 'inject', 'train', 'evaluate', 'export']) assert.ok(kinds.includes(k), k);
});
