import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validatorFor } from '@peftkit/core';
import { fullMatch, layerIndexOf, loraConfigSchema, matchesNameList, patternKeyFor, resolveLoraConfig, validateConfig } from './config.js';

test('defaults are HF PEFT LoraConfig defaults, from the schema', () => {
  const c = resolveLoraConfig({ r: 4 });
  assert.equal(c.r, 4);
  assert.equal(c.lora_alpha, 8);
  assert.equal(c.lora_dropout, 0);
  assert.equal(c.bias, 'none');
  assert.equal(c.init_lora_weights, true);
  assert.equal(c.use_rslora, false);
  assert.equal(c.fan_in_fan_out, null); // from the wrapped layers (HF: False, then corrected with a warning on Conv1D)
  assert.equal(c.target_modules, null);
  assert.deepEqual(c.rank_pattern, {});
  // The engine's validator fills the same defaults.
  const doc: Record<string, unknown> = {};
  assert.ok(validatorFor(loraConfigSchema)(doc));
  assert.deepEqual(doc, resolveLoraConfig({}));
});

test('the schema rejects wrong types and values', () => {
  const v = validatorFor(loraConfigSchema);
  assert.equal(v({ r: 0 }), false);
  assert.equal(v({ bias: 'some' }), false);
  assert.equal(v({ init_lora_weights: 'pissa' }), false);
  assert.equal(v({ lora_dropout: 1 }), false);
  assert.equal(v({ target_modul: ['q_proj'] }), false);
  assert.equal(v({ target_modules: 'all-linear', init_lora_weights: 'gaussian', rank_pattern: { q_proj: 4 } }), true);
});

test('validateConfig points at regular expressions that do not compile', () => {
  const issues = validateConfig({ target_modules: 'model\\.layers\\.(\\d+', exclude_modules: '[', rank_pattern: { 'q_proj(': 4, ok: 2 }, alpha_pattern: { 'a/b*+': 1 } });
  assert.deepEqual(issues.map((i) => i.pointer), ['/target_modules', '/exclude_modules', '/rank_pattern/q_proj(', '/alpha_pattern/a~1b*+']);
  assert.match(issues[0].message, /not a valid regular expression/);
  assert.deepEqual(validateConfig({ target_modules: 'all-linear', rank_pattern: { 'h\\.0\\..*': 4 } }), []);
  assert.equal(validateConfig({ target_modules: [] })[0].pointer, '/target_modules');
  assert.equal(validateConfig({ layers_pattern: 'h' })[0].pointer, '/layers_pattern');
});

test('name matching follows HF PEFT', () => {
  assert.ok(matchesNameList(['c_proj'], 'transformer.h.0.attn.c_proj'));
  assert.ok(matchesNameList(['c_proj'], 'transformer.h.0.mlp.c_proj'));
  assert.ok(matchesNameList(['mlp.c_proj'], 'transformer.h.0.mlp.c_proj'));
  assert.ok(!matchesNameList(['mlp.c_proj'], 'transformer.h.0.attn.c_proj'));
  assert.ok(!matchesNameList(['proj'], 'transformer.h.0.attn.c_proj'), 'a suffix must start after a dot');
  assert.ok(matchesNameList(['lm_head'], 'lm_head'));
  assert.ok(fullMatch('.*\\.q_proj', 'model.layers.0.self_attn.q_proj'));
  assert.ok(!fullMatch('q_proj', 'model.layers.0.self_attn.q_proj'), 'a string must match the whole name');
  assert.ok(!fullMatch('a|b', 'ab'), 'alternatives are anchored as a group');
  assert.equal(layerIndexOf('transformer.h.3.attn.c_attn', null), 3);
  assert.equal(layerIndexOf('model.layers.12.self_attn.q_proj', null), 12);
  assert.equal(layerIndexOf('model.layers.12.mlp.experts.5.w1', null), 5, 'the last numbered list, as HF');
  assert.equal(layerIndexOf('model.layers.12.mlp.experts.5.w1', 'layers'), 12);
  assert.equal(layerIndexOf('model.layers.12.mlp.experts.5.w1', ['blocks', 'layers']), 12);
  assert.equal(layerIndexOf('lm_head', null), undefined);
  assert.equal(patternKeyFor({ q_proj: 4, 'layers\\.1\\..*v_proj': 2 }, 'model.layers.1.self_attn.v_proj'), 'layers\\.1\\..*v_proj');
  assert.equal(patternKeyFor({ q_proj: 4 }, 'model.layers.1.self_attn.q_proj'), 'q_proj');
  assert.equal(patternKeyFor({ proj: 4 }, 'model.layers.1.self_attn.q_proj'), undefined, 'anchored at a dot');
  assert.equal(patternKeyFor({ q_proj: 4, '.*proj': 1 }, 'model.layers.1.self_attn.q_proj'), 'q_proj', 'first match wins');
});
