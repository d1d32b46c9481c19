import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRegistry, schemaIssues } from '@peftkit/core';
import plugin from './index.js';

describe('@peftkit/prefix-tuning as a plugin', () => {
  const registry = createRegistry([{ name: '@peftkit/prefix-tuning', version: '0.1.0', module: plugin }]);

  it('registers prefix-tuning and prompt-tuning with their HF peft_type', () => {
    assert.deepEqual(registry.methods().map((m) => [m.name, m.peftType, m.family]), [
      ['prefix-tuning', 'PREFIX_TUNING', 'prompt-learning'],
      ['prompt-tuning', 'PROMPT_TUNING', 'prompt-learning'],
    ]);
  });

  it('the engine validates configs and fills HF PEFT\'s defaults', () => {
    const prompt: Record<string, unknown> = { prompt_tuning_init: 'TEXT', prompt_tuning_init_text: 'Classify:' };
    assert.deepEqual(schemaIssues('p.json', '/config', registry.method('prompt-tuning')!.configSchema, prompt), []);
    assert.equal(prompt.num_virtual_tokens, 20);
    assert.equal(prompt.token_dim, null);
    const prefix: Record<string, unknown> = {};
    assert.deepEqual(schemaIssues('p.json', '/config', registry.method('prefix-tuning')!.configSchema, prefix), []);
    assert.equal(prefix.prefix_projection, false);
    const bad = (name: string, c: Record<string, unknown>) => schemaIssues('p.json', '/config', registry.method(name)!.configSchema, c).map((i) => i.pointer);
    assert.deepEqual(bad('prompt-tuning', { prompt_tuning_init: 'ZEROS' }), ['/config/prompt_tuning_init']);
    assert.ok(bad('prefix-tuning', { num_transformer_submodules: 2 }).includes('/config/num_transformer_submodules'));
    assert.deepEqual(bad('prefix-tuning', { num_virtual_tokens: 0 }), ['/config/num_virtual_tokens']);
  });
});
