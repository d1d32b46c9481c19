import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { AdamW } from './adamw.js';

await initBackend('wasm');

test('AdamW: two steps on one parameter match the hand-computed values (decoupled decay, bias correction)', () => {
  const p = tf.variable(tf.scalar(1.0));
  const opt = new AdamW([['w', p]], { beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01 });
  const lr = 0.1;
  // Step 1, g = 0.5: p = 1·(1 − 0.1·0.01) = 0.999; m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25;
  // p = 0.999 − 0.1 · 0.5 / (0.5 + 1e-8) = 0.899000002.
  opt.applyGradients(new Map([['w', tf.scalar(0.5)]]), lr);
  assert.ok(Math.abs(p.dataSync()[0] - 0.899000002) < 1e-6, `after step 1: ${p.dataSync()[0]}`);
  // Step 2, g = -0.25: p = 0.899000002 · 0.999 = 0.898101002; m = 0.02, v = 0.00031225;
  // m̂ = 0.02 / 0.19, v̂ = 0.00031225 / 0.001999; p = 0.898101002 − 0.1 · m̂ / (√v̂ + 1e-8) = 0.871467299.
  opt.applyGradients(new Map([['w', tf.scalar(-0.25)]]), lr);
  assert.ok(Math.abs(p.dataSync()[0] - 0.871467299) < 1e-6, `after step 2: ${p.dataSync()[0]}`);
  assert.equal(opt.step, 2);
  const s = opt.getState();
  assert.ok(Math.abs(s.expAvg.get('w')!.dataSync()[0] - 0.02) < 1e-7);
  assert.ok(Math.abs(s.expAvgSq.get('w')!.dataSync()[0] - 0.00031225) < 1e-9);
  opt.dispose();
});

test('AdamW: no-decay parameters skip weight decay; state round trip continues identically', () => {
  const a = tf.variable(tf.tensor1d([1, -2, 3]));
  const b = tf.variable(tf.tensor1d([0.5]));
  const opt = new AdamW([['lin.weight', a], ['lin.bias', b]], { weightDecay: 0.5, noDecay: (n) => n.endsWith('bias') });
  const g = () => new Map<string, tf.Tensor>([['lin.weight', tf.tensor1d([0.1, 0.2, -0.3])], ['lin.bias', tf.tensor1d([0])]]);
  opt.applyGradients(g(), 0.01);
  // A zero gradient on a no-decay parameter leaves it where it was: m = v = 0, update 0.
  assert.equal(b.dataSync()[0], 0.5);
  const state = opt.getState();
  const a2 = tf.variable(a.clone());
  const b2 = tf.variable(b.clone());
  const opt2 = new AdamW([['lin.weight', a2], ['lin.bias', b2]], { weightDecay: 0.5, noDecay: (n) => n.endsWith('bias') });
  opt2.setState(state);
  opt.applyGradients(g(), 0.01);
  opt2.applyGradients(g(), 0.01);
  assert.deepEqual(Array.from(a2.dataSync()), Array.from(a.dataSync()));
  assert.throws(() => opt2.setState({ step: 1, expAvg: new Map(), expAvgSq: new Map() }), /exp_avg of lin.weight is missing/);
});

test('AdamW on WASM (one PeftkitAdamW kernel per parameter) gives the bits of the composed ops on cpu', async () => {
  const run = async (backend: 'cpu' | 'wasm') => {
    await initBackend(backend);
    const a = tf.variable(tf.tensor2d([[1, -2, 3, 0.25, 7], [0.5, -0.125, 4, -3, 2]]));
    const b = tf.variable(tf.tensor1d([0.5, -1, 2]));
    const opt = new AdamW([['lin.weight', a], ['lin.bias', b]], { weightDecay: 0.1, noDecay: (n) => n.endsWith('bias') });
    for (let t = 1; t <= 3; t++) {
      // Gradients made on the host: the backends' own sin and cos differ in the last bits.
      const gw = tf.tensor2d(Float32Array.from({ length: 10 }, (_, i) => Math.sin(i + t) * 0.3 * t), [2, 5]);
      const gb = tf.tensor1d(Float32Array.from({ length: 3 }, (_, i) => Math.cos(i * t)));
      opt.applyGradients(new Map<string, tf.Tensor>([['lin.weight', gw], ['lin.bias', gb]]), 0.01 * t);
    }
    const out = [...a.dataSync(), ...b.dataSync(), ...opt.getState().expAvgSq.get('lin.weight')!.dataSync()];
    opt.dispose();
    tf.dispose([a, b]);
    return out;
  };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  await initBackend('wasm');
  assert.deepEqual(wasm, cpu);
});
