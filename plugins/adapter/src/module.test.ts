import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistry, schemaIssues } from '@peftkit/core';
import plugin from './index.js';

describe('@peftkit/adapter as a plugin', () => {
  const registry = createRegistry([{ name: '@peftkit/adapter', version: '0.1.0', module: plugin }]);

  it('registers houlsby, pfeiffer and parallel-adapter', () => {
    assert.deepEqual(registry.methods().map((m) => m.name), ['houlsby', 'parallel-adapter', 'pfeiffer']);
    assert.ok(registry.methods().every((m) => m.family === 'adapter-layers' && m.peftType === null && m.loadAdapter && m.recognizesAdapterConfig));
  });

  it('the engine validates configs against each method\'s schema and fills that method\'s defaults', () => {
    const pfeiffer = registry.method('pfeiffer')!;
    const config: Record<string, unknown> = { reduction_factor: { '0': 8, default: 16 } };
    assert.deepEqual(schemaIssues('p.json', '/config', pfeiffer.configSchema, config), []);
    assert.equal(config.mh_adapter, false);
    assert.equal(config.non_linearity, 'relu');
    assert.equal(config.init_weights, 'mam_adapter');
    const parallel: Record<string, unknown> = {};
    schemaIssues('p.json', '/config', registry.method('parallel-adapter')!.configSchema, parallel);
    assert.deepEqual([parallel.is_parallel, parallel.scaling, parallel.reduction_factor], [true, 4, 2]);
    const bad = (c: Record<string, unknown>) => schemaIssues('p.json', '/config', pfeiffer.configSchema, c).map((i) => i.pointer);
    assert.deepEqual(bad({ non_linearity: 'softmax' }), ['/config/non_linearity']);
    assert.ok(bad({ scaling: 'sometimes' }).includes('/config/scaling'));
    assert.ok(bad({ reduction_factor: { first: 8 } }).some((p) => p.startsWith('/config/reduction_factor')));
    assert.deepEqual(bad({ r: 8 }), ['/config/r']);
  });
});
