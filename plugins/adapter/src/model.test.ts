import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { UserError, initBackend } from '@peftkit/core';
import { PeftModel, type PreTrainedModel } from '@peftkit/models';
import {
  BottleneckAdapterLayer,
  SublayerInputTap,
  activationFn,
  bottleneckSize,
  houlsbyMethod,
  injectBottleneckAdapter,
  parallelAdapterMethod,
  pfeifferMethod,
  presetSchema,
  reductionFactorFor,
} from './index.js';
import { TINY_CONFIGS, logitsOf, maxAbsDiff, sampleIds, tinyModel } from '@peftkit/models/testing';

before(async () => {
  await initBackend('wasm');
});

const ctx = { seed: 7 };

/** Sets every adapter_up weight to random values so that the adapters change the outputs. */
function perturbUp(model: PreTrainedModel, handleParams: [string, tf.Variable][], seed = 3): void {
  let s = seed;
  for (const [k, v] of handleParams) if (k.includes('adapter_up')) v.assign(tf.randomNormal(v.shape, 0, 0.5, 'float32', s++));
  void model;
}

describe('bottleneck adapters: injection', () => {
  for (const type of Object.keys(TINY_CONFIGS) as (keyof typeof TINY_CONFIGS)[]) {
    for (const method of ['houlsby', 'pfeiffer', 'parallel-adapter'] as const) {
      it(`${type} / ${method}: a fresh adapter leaves outputs unchanged (1e-5), the state dict keeps its names`, () => {
        const model = tinyModel(type);
        const ids = sampleIds(2, 5, 50);
        const before = logitsOf(model, ids);
        const keysBefore = [...model.stateDict().keys()];
        const h = injectBottleneckAdapter(model, {}, ctx, method);
        const after = logitsOf(model, ids);
        assert.ok(maxAbsDiff(before, after) < 1e-5, `max diff ${maxAbsDiff(before, after)}`);
        assert.deepEqual([...model.stateDict().keys()], keysBefore);
        // The base is frozen, the adapters are trainable.
        assert.ok(model.namedParameters().every(([, v]) => !v.trainable));
        assert.ok(h.trainableParameters().every(([, v]) => v.trainable));
        // Non-zero up-projections change the outputs; disabling restores the base exactly.
        perturbUp(model, h.trainableParameters());
        const adapted = logitsOf(model, ids);
        assert.ok(maxAbsDiff(before, adapted) > 1e-3, 'perturbed adapters must change the outputs');
        h.setEnabled(false);
        assert.equal(maxAbsDiff(before, logitsOf(model, ids)), 0);
        h.setEnabled(true);
        assert.equal(maxAbsDiff(adapted, logitsOf(model, ids)), 0);
        // Disposing removes the wrappers: the original modules and outputs come back.
        h.dispose();
        assert.ok(!model.namedModules().some(([, m]) => m instanceof BottleneckAdapterLayer || m instanceof SublayerInputTap));
        assert.equal(maxAbsDiff(before, logitsOf(model, ids)), 0);
        tf.dispose([before, after, adapted, ids]);
      });
    }
  }
});

describe('bottleneck adapters: parameter counts', () => {
  // Per adapter 2·d·m + d + m (down [m, d] + [m], up [d, m] + [d]).
  const perAdapter = (d: number, m: number) => 2 * d * m + d + m;

  it('houlsby: two adapters per layer, m = d / reduction_factor', () => {
    const model = tinyModel('gpt2');
    const d = model.dims().hiddenSize;
    const h = injectBottleneckAdapter(model, { reduction_factor: 4 }, ctx, 'houlsby');
    const m = d / 4;
    assert.equal(h.sites.length, 2 * model.dims().numLayers);
    assert.equal(h.numParameters(), 2 * model.dims().numLayers * perAdapter(d, m));
    const peft = new PeftModel({ model, source: 'tiny' });
    peft.addAdapter(h);
    const report = peft.parameterReport();
    assert.equal(report.trainable, 2 * 2 * (2 * 16 * 4 + 16 + 4)); // 592
    assert.equal(report.total, model.numParameters() + 592);
  });

  it('pfeiffer: one adapter per layer (after the feed-forward block), default factor 16', () => {
    const model = tinyModel('llama');
    const h = injectBottleneckAdapter(model, {}, ctx, 'pfeiffer');
    assert.deepEqual(h.sites.map((s) => s.location), ['output_adapter', 'output_adapter']);
    assert.equal(h.numParameters(), 2 * perAdapter(16, 1));
    const [, down] = h.trainableParameters().find(([k]) => k.endsWith('adapter_down.0.weight'))!;
    assert.deepEqual(down.shape, [1, 16]);
  });

  it('reduction_factor per layer with a default, and leave_out', () => {
    assert.equal(reductionFactorFor({ '1': 2, default: 8 }, 1), 2);
    assert.equal(reductionFactorFor({ '1': 2, default: 8 }, 0), 8);
    assert.throws(() => reductionFactorFor({ '1': 2 }, 0), UserError);
    assert.equal(bottleneckSize(16, 32), 1);
    const model = tinyModel('gpt2');
    const h = injectBottleneckAdapter(model, { reduction_factor: { '1': 2, default: 8 } }, ctx, 'houlsby');
    assert.deepEqual(h.sites.map((s) => [s.layer, s.adapter.bottleneckSize]), [[0, 2], [0, 2], [1, 8], [1, 8]]);
    h.dispose();
    const h2 = injectBottleneckAdapter(model, { leave_out: [0] }, ctx, 'houlsby');
    assert.deepEqual([...new Set(h2.sites.map((s) => s.layer))], [1]);
    assert.throws(() => injectBottleneckAdapter(tinyModel('gpt2'), { leave_out: [0, 1] }, ctx, 'houlsby'), /no adapter inserted/);
  });

  it('scaling "learned" adds one trained scalar per adapter', () => {
    const model = tinyModel('gpt2');
    const h = injectBottleneckAdapter(model, { scaling: 'learned', reduction_factor: 4 }, ctx, 'pfeiffer');
    assert.equal(h.numParameters(), 2 * (perAdapter(16, 4) + 1));
    assert.ok(h.trainableParameters().some(([k]) => k === 'transformer.h.0.output_adapters.adapters.default.scaling'));
  });
});

describe('bottleneck adapters: computation', () => {
  it('sequential: the wrapped output is y + W_up f(W_down y + b) + b_up (Houlsby et al. 2019)', () => {
    const model = tinyModel('gpt2');
    const h = injectBottleneckAdapter(model, { reduction_factor: 4, non_linearity: 'gelu_new' }, ctx, 'houlsby');
    perturbUp(model, h.trainableParameters());
    const site = h.sites.find((s) => s.modulePath === 'transformer.h.1.mlp.c_proj')!;
    const x = tf.randomNormal([2, 3, 64], 0, 1, 'float32', 5); // c_proj reads the 4·d intermediate
    const y = site.wrapper.baseLayer.forward(x);
    const sd = new Map(site.adapter.namedParameters());
    const manual = tf.tidy(() => {
      const down = tf.add(tf.matMul(y.reshape([6, 16]), sd.get('adapter_down.0.weight')!, false, true), sd.get('adapter_down.0.bias')!);
      const act = activationFn('gelu_new')(down);
      const up = tf.add(tf.matMul(act, sd.get('adapter_up.weight')!, false, true), sd.get('adapter_up.bias')!);
      return tf.add(y, up.reshape([2, 3, 16]));
    });
    const got = model.getSubmodule('transformer.h.1.mlp.c_proj')!;
    assert.ok(got instanceof BottleneckAdapterLayer);
    assert.ok(maxAbsDiff((got as BottleneckAdapterLayer).forward(x), manual) < 1e-5);
  });

  it('parallel: the feed-forward block returns FFN(x) + s · A(x) with x its own input (He et al. 2021)', () => {
    const model = tinyModel('llama');
    const h = injectBottleneckAdapter(model, {}, ctx, 'parallel-adapter');
    assert.equal(model.getSubmodule('model.layers.0.mlp.gate_proj')!.constructor, SublayerInputTap);
    perturbUp(model, h.trainableParameters());
    const mlp = model.getSubmodule('model.layers.0.mlp') as unknown as { forward(x: tf.Tensor): tf.Tensor };
    const x = tf.randomNormal([2, 3, 16], 0, 1, 'float32', 9);
    const adapted = mlp.forward(x);
    h.setEnabled(false);
    const base = mlp.forward(x);
    h.setEnabled(true);
    const site = h.sites.find((s) => s.layer === 0)!;
    assert.equal(site.adapter.bottleneckSize, 8); // reduction factor 2
    const sd = new Map(site.adapter.namedParameters());
    const manual = tf.tidy(() => {
      const down = tf.relu(tf.add(tf.matMul(x.reshape([6, 16]), sd.get('adapter_down.0.weight')!, false, true), sd.get('adapter_down.0.bias')!));
      const up = tf.add(tf.matMul(down, sd.get('adapter_up.weight')!, false, true), sd.get('adapter_up.bias')!);
      return tf.add(base, tf.mul(4, up).reshape([2, 3, 16])); // scaling 4
    });
    assert.ok(maxAbsDiff(adapted, manual) < 1e-5, `diff ${maxAbsDiff(adapted, manual)}`);
  });

  it('the sublayer inputs found for parallel adapters, per architecture', () => {
    const expect: Record<string, [string, string]> = {
      gpt2: ['transformer.h.0.attn.c_attn', 'transformer.h.0.mlp.c_fc'],
      llama: ['model.layers.0.self_attn.q_proj', 'model.layers.0.mlp.gate_proj'],
      bert: ['encoder.layer.0.attention.self.query', 'encoder.layer.0.intermediate.dense'],
      distilbert: ['transformer.layer.0.attention.q_lin', 'transformer.layer.0.ffn.lin1'],
    };
    for (const [type, [attn, ffn]] of Object.entries(expect)) {
      const model = tinyModel(type as keyof typeof TINY_CONFIGS);
      injectBottleneckAdapter(model, { mh_adapter: true }, ctx, 'parallel-adapter');
      assert.ok(model.getSubmodule(attn) instanceof SublayerInputTap, `${type}: ${attn}`);
      assert.ok(model.getSubmodule(ffn) instanceof SublayerInputTap, `${type}: ${ffn}`);
    }
  });

  it('no tensors leak across forward passes (sequential and parallel)', () => {
    for (const method of ['houlsby', 'parallel-adapter'] as const) {
      const model = tinyModel('llama');
      injectBottleneckAdapter(model, { mh_adapter: true }, ctx, method);
      const ids = sampleIds(2, 4, 50);
      const run = () => tf.dispose(Object.values(model.forward({ inputIds: ids })).filter((t) => t instanceof tf.Tensor));
      run();
      const n = tf.memory().numTensors;
      run();
      run();
      assert.equal(tf.memory().numTensors, n, method);
    }
  });

  it('gradients reach the adapters only', () => {
    const model = tinyModel('gpt2');
    const h = injectBottleneckAdapter(model, { reduction_factor: 4 }, ctx, 'houlsby');
    const ids = sampleIds(2, 4, 50);
    const vars = h.trainableParameters().map(([, v]) => v);
    const { grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(tf.square(model.forward({ inputIds: ids }).logits)) as tf.Scalar), vars);
    const names = Object.keys(grads);
    assert.equal(names.length, vars.length);
    // The up-projections start at zero, so their gradients are the non-zero ones.
    const upGrad = h.trainableParameters().filter(([k]) => k.endsWith('adapter_up.weight')).map(([, v]) => grads[v.name]);
    assert.ok(upGrad.every((g) => tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]) > 0));
    tf.dispose(grads);
  });

  it('several adapters in one model: stacked when both are active, each alone otherwise', () => {
    const model = tinyModel('gpt2');
    const ids = sampleIds(1, 4, 50);
    const a = injectBottleneckAdapter(model, {}, { ...ctx, adapterName: 'a' }, 'pfeiffer');
    const b = injectBottleneckAdapter(model, {}, { ...ctx, adapterName: 'b' }, 'pfeiffer');
    perturbUp(model, a.trainableParameters(), 1);
    perturbUp(model, b.trainableParameters(), 11);
    const peft = new PeftModel({ model, source: 'tiny' });
    peft.addAdapter(a);
    peft.addAdapter(b); // active: b only
    const onlyB = logitsOf(peft, ids);
    peft.setActive(['a']);
    const onlyA = logitsOf(peft, ids);
    assert.ok(maxAbsDiff(onlyA, onlyB) > 1e-4);
    b.dispose();
    assert.equal(maxAbsDiff(onlyA, logitsOf(peft, ids)), 0);
  });
});

describe('bottleneck adapters: config', () => {
  it('each method publishes the schema with its own defaults', () => {
    assert.equal(houlsbyMethod.configSchema.properties.mh_adapter.default, true);
    assert.equal(houlsbyMethod.configSchema.properties.non_linearity.default, 'swish');
    assert.equal(pfeifferMethod.configSchema.properties.mh_adapter.default, false);
    assert.equal(pfeifferMethod.configSchema.properties.non_linearity.default, 'relu');
    assert.equal(parallelAdapterMethod.configSchema.properties.scaling.default, 4);
    assert.equal(parallelAdapterMethod.configSchema.properties.reduction_factor.default, 2);
    assert.equal(presetSchema('houlsby').properties.reduction_factor.default, 16);
    assert.equal(houlsbyMethod.family, 'adapter-layers');
    assert.equal(houlsbyMethod.peftType, null);
  });

  it('settings peftkit does not compute are refused with a pointer', () => {
    const issues = houlsbyMethod.validateConfig!({ original_ln_before: true, ln_after: true });
    assert.deepEqual(issues.map((i) => i.pointer), ['/original_ln_before', '/ln_after']);
    assert.throws(() => injectBottleneckAdapter(tinyModel('gpt2'), { original_ln_before: true }, ctx, 'pfeiffer'), (e: unknown) => e instanceof UserError && /original_ln_before/.test(e.message));
  });

  it('activations match their definitions', () => {
    const x = tf.tensor1d([-2, -0.5, 0, 0.5, 2]);
    const vals = (n: Parameters<typeof activationFn>[0]) => Array.from(activationFn(n)(x).dataSync());
    const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 1e-5);
    const xs = [-2, -0.5, 0, 0.5, 2];
    assert.ok(close(vals('swish'), xs.map((v) => v / (1 + Math.exp(-v)))));
    assert.ok(close(vals('relu'), xs.map((v) => Math.max(0, v))));
    assert.ok(close(vals('leakyrelu'), xs.map((v) => (v > 0 ? v : 0.01 * v))));
    // Exact GELU at 2: 2 · Φ(2) = 1.9544997.
    assert.ok(Math.abs(vals('gelu')[4] - 1.9544997) < 1e-5);
    assert.ok(close(vals('linear'), xs));
  });
});
