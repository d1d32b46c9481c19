import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { ContainerModule } from 'inversify';
import { createRegistry, importPlugin, initBackend, validatorFor } from '@peftkit/core';
import loraModule, { LoraAdapterHandle, loraConfigSchema } from './index.js';
import { repoRoot } from '@peftkit/models/testing';
import { tinyGpt2 } from './testing/tiny-models.js';

before(async () => {
  await initBackend('wasm');
});

test('the package is a peftkit plugin that registers the "lora" method', async () => {
  const plugin = await importPlugin('@peftkit/lora', repoRoot());
  assert.equal(plugin.name, '@peftkit/lora');
  assert.ok(plugin.module instanceof ContainerModule);
  const registry = createRegistry([plugin]);
  const lora = registry.method('lora')!;
  assert.equal(lora.peftType, 'LORA');
  assert.equal(lora.family, 'adapter-layers');
  assert.deepEqual(lora.configSchema, loraConfigSchema);
  assert.equal(registry.methods().length, 1);
  // A second copy of the plugin is refused by the engine (duplicate method name).
  assert.throws(() => createRegistry([plugin, { name: 'copy', version: '0', module: loraModule }]), /registered twice/);
});

test('the method checks configs and injects with the context\'s adapter name and seed', async () => {
  const lora = createRegistry([{ name: '@peftkit/lora', version: '0.1.0', module: loraModule }]).method('lora')!;
  assert.deepEqual(lora.validateConfig!({ rank_pattern: { '(': 2 } }).map((i) => i.pointer), ['/rank_pattern/(']);
  const config = { target_modules: ['c_attn'], r: 2 };
  assert.ok(validatorFor(lora.configSchema)(config));
  const warnings: string[] = [];
  const logger = { warn: (m: string) => warnings.push(m), info() {}, debug() {}, error() {} };
  const h = await lora.inject(tinyGpt2(), config, { logger, seed: 1, adapterName: 'first' });
  assert.ok(h instanceof LoraAdapterHandle);
  assert.equal(h.name, 'first');
  assert.equal(h.peftType, 'LORA');
  assert.equal(h.method, 'lora');
  assert.deepEqual(warnings, []); // fan_in_fan_out left unset: taken from GPT-2's Conv1D without a warning
  assert.equal(h.adapterConfig().r, 2);
  // Warnings reach the context's logger.
  await lora.inject(tinyGpt2(), { ...config, fan_in_fan_out: false }, { logger, seed: 1, adapterName: 'second' });
  assert.match(warnings[0], /fan_in_fan_out is set to False/);
});
