import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lrMultiplier, warmupStepsFor } from './schedules.js';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

test('linear with warmup: ramps 0 → 1 over the warmup, then decays linearly to 0 at the last step', () => {
  const o = { type: 'linear' as const, warmupSteps: 2, totalSteps: 10 };
  close(lrMultiplier(0, o), 0);
  close(lrMultiplier(1, o), 0.5);
  close(lrMultiplier(2, o), 1);
  close(lrMultiplier(6, o), (10 - 6) / (10 - 2));
  close(lrMultiplier(9, o), 1 / 8);
  close(lrMultiplier(10, o), 0);
  close(lrMultiplier(12, o), 0);
});

test('cosine with warmup: half a cosine from 1 to 0 after the warmup', () => {
  const o = { type: 'cosine' as const, warmupSteps: 2, totalSteps: 10 };
  close(lrMultiplier(1, o), 0.5);
  close(lrMultiplier(2, o), 1);
  close(lrMultiplier(4, o), 0.5 * (1 + Math.cos(Math.PI * 0.25)));
  close(lrMultiplier(6, o), 0.5);
  close(lrMultiplier(10, o), 0);
  assert.ok(Math.abs(lrMultiplier(4, o) - 0.8535533905932737) < 1e-12);
});

test('constant: 1 after warmup; without warmup, 1 from the first update', () => {
  close(lrMultiplier(0, { type: 'constant', warmupSteps: 0, totalSteps: 5 }), 1);
  close(lrMultiplier(1, { type: 'constant_with_warmup', warmupSteps: 4, totalSteps: 5 }), 0.25);
  close(lrMultiplier(4, { type: 'constant_with_warmup', warmupSteps: 4, totalSteps: 5 }), 1);
});

test('warmup_ratio gives ceil(total · ratio) unless warmup_steps is set', () => {
  assert.equal(warmupStepsFor(95, 0, 0.1), 10);
  assert.equal(warmupStepsFor(95, 3, 0.1), 3);
  assert.equal(warmupStepsFor(95, 0, 0), 0);
});
