/**
 * A minimal LoRA-shaped method for the training tests (`tiny-lora`), so that those tests do not
 * depend on a plugin: `y = W x + B A x · (alpha / r)` on the named Linear layers, HF PEFT key names.
 */
import * as tf from '@tensorflow/tfjs';
import type { PeftMethod } from '@peftkit/core';
import { Linear, Module, nextSeed, type AdapterHandle, type PreTrainedModel } from '@peftkit/models';

class LoraLinear extends Module {
  enabled = true;
  lora_A: Linear;
  lora_B: Linear;
  constructor(readonly base_layer: Linear, readonly r: number, readonly scaling: number) {
    super();
    this.registerModule('base_layer', base_layer);
    this.lora_A = this.registerModule('lora_A', new Linear(base_layer.inFeatures, r, false));
    this.lora_B = this.registerModule('lora_B', new Linear(r, base_layer.outFeatures, false));
    tf.tidy(() => {
      this.lora_A.weight.assign(tf.randomNormal([r, base_layer.inFeatures], 0, 0.5, 'float32', nextSeed()));
      this.lora_B.weight.assign(tf.zeros([base_layer.outFeatures, r]));
    });
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const y = this.base_layer.forward(x);
      return this.enabled ? tf.add(y, tf.mul(this.lora_B.forward(this.lora_A.forward(x)), this.scaling)) : y;
    });
  }
}

/** The `tiny-lora` method: config `{r, lora_alpha, target_modules}`. */
export const tinyLoraMethod: PeftMethod<{ r: number; lora_alpha: number; target_modules: string[] }, PreTrainedModel, AdapterHandle> = {
  name: 'tiny-lora', peftType: 'LORA', family: 'adapter-layers', description: 'test-only LoRA',
  configSchema: {
    type: 'object', additionalProperties: false,
    properties: {
      r: { type: 'integer', minimum: 1, default: 2, description: 'rank' },
      lora_alpha: { type: 'number', default: 4, description: 'alpha' },
      target_modules: { type: 'array', items: { type: 'string' }, default: ['fc'], description: 'suffixes' },
    },
  },
  validateConfig: (c) => (c.target_modules.length ? [] : [{ pointer: '/target_modules', message: 'must name at least one module' }]),
  inject(model, config) {
    model.requiresGrad(false);
    const targets = model.namedModules().filter(([n, m]) => m instanceof Linear && config.target_modules.some((t) => n === t || n.endsWith('.' + t)));
    if (!targets.length) throw new Error(`no module matches target_modules ${JSON.stringify(config.target_modules)}`);
    const wrapped = targets.map(([n, m]) => {
      const w = new LoraLinear(m as Linear, config.r, config.lora_alpha / config.r);
      model.setSubmodule(n, w);
      return [n, w] as const;
    });
    const params = (): [string, tf.Variable][] => wrapped.flatMap(([n, w]) => [[`base_model.model.${n}.lora_A.weight`, w.lora_A.weight], [`base_model.model.${n}.lora_B.weight`, w.lora_B.weight]]);
    return {
      name: 'default', method: 'tiny-lora', peftType: 'LORA', config: { ...config },
      trainableParameters: params,
      stateDict: () => new Map(params()),
      loadStateDict(sd) {
        for (const [k, v] of params()) {
          const t = sd.get(k) ?? sd.get(k.replace(/^base_model\.model\./, ''));
          if (!t) throw new Error(`missing ${k}`);
          v.assign(t);
        }
      },
      adapterConfig: () => ({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: config.r, lora_alpha: config.lora_alpha, target_modules: config.target_modules, inference_mode: true }),
      setEnabled(e) {
        for (const [, w] of wrapped) w.enabled = e;
      },
      dispose() {
        for (const [, v] of params()) v.dispose();
      },
    };
  },
};
