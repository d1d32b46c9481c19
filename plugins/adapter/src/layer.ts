/**
 * The bottleneck adapter and the layers that put it into a model, leaf first:
 * the adapter itself (AdapterHub's `Adapter`, adapters/methods/modeling.py), a wrapper that adds
 * adapters to the output of a sublayer's output projection, and a tap that records a sublayer's
 * input for parallel adapters.
 */
import * as tf from '@tensorflow/tfjs';
import { Linear, Module, nextSeed, nextSeedPair, seededDropout, type Layer } from '@peftkit/models';
import type { BottleneckAdapterConfig } from './config.generated.js';

/** One of the activation names of {@link BottleneckAdapterConfig.non_linearity}. */
export type NonLinearity = NonNullable<BottleneckAdapterConfig['non_linearity']>;

/**
 * transformers' `get_activation` for the names AdapterHub configs use (transformers/activations.py).
 * `gelu` is the exact erf form, `gelu_new` the tanh approximation (Hendrycks and Gimpel 2016).
 */
export function activationFn(name: NonLinearity): (x: tf.Tensor) => tf.Tensor {
  switch (name) {
    case 'relu':
      return (x) => tf.relu(x);
    case 'swish':
    case 'silu':
      return (x) => tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
    case 'gelu':
    case 'gelu_orig':
      return (x) => tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
    case 'gelu_new':
      return (x) =>
        tf.tidy(() => {
          const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(x, tf.mul(0.044715, tf.pow(x, 3))));
          return tf.mul(tf.mul(x, 0.5), tf.add(1, tf.tanh(inner)));
        });
    case 'tanh':
      return (x) => tf.tanh(x);
    case 'sigmoid':
      return (x) => tf.sigmoid(x);
    case 'leakyrelu':
      return (x) => tf.leakyRelu(x, 0.01);
    case 'linear':
      return (x) => x;
  }
}

/** How one adapter is built; resolved from the config for one insertion point. */
export interface AdapterOptions {
  nonLinearity: NonLinearity;
  initWeights: NonNullable<BottleneckAdapterConfig['init_weights']>;
  scaling: NonNullable<BottleneckAdapterConfig['scaling']>;
  dropout: number;
  /** Parallel adapters read the sublayer's input (He et al. 2021) instead of its output. */
  isParallel: boolean;
}

/**
 * AdapterHub's `adapter_down`, an `nn.Sequential(Linear(d, m), activation)`: only the linear layer
 * has parameters, so its keys are `adapter_down.0.weight` [m, d] and `adapter_down.0.bias` [m].
 */
class AdapterDown extends Module {
  constructor(readonly linear: Linear, readonly act: (x: tf.Tensor) => tf.Tensor) {
    super();
    this.registerModule('0', linear);
  }
  forward(h: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.act(this.linear.forward(h)));
  }
}

/**
 * A bottleneck adapter's branch, `s · W_up f(W_down h + b_down) + b_up` (Houlsby et al. 2019,
 * section 2, figure 2; the factor s from He et al. 2021, section 3), without the residual: the layer
 * that holds it adds the branch to the sublayer output. Parameters (AdapterHub's names):
 * `adapter_down.0.weight` [m, d], `adapter_down.0.bias` [m], `adapter_up.weight` [d, m],
 * `adapter_up.bias` [d], and `scaling` ([1] or [d]) when it is learned: 2·d·m + d + m in all
 * without a learned scaling.
 */
export class BottleneckAdapter extends Module {
  readonly adapter_down: AdapterDown;
  readonly adapter_up: Linear;
  /** A learned scaling ([1] for "learned", [d] for "channel"); absent for a constant. */
  readonly scaling?: tf.Variable;
  private readonly constScaling: number;

  /**
   * @param hiddenSize - d, the width of the residual stream
   * @param bottleneckSize - m = floor(d / reduction_factor)
   */
  constructor(readonly hiddenSize: number, readonly bottleneckSize: number, readonly options: AdapterOptions) {
    super();
    const down = new Linear(hiddenSize, bottleneckSize);
    const up = new Linear(bottleneckSize, hiddenSize);
    initAdapterWeights(down, up, options.initWeights);
    this.adapter_down = this.registerModule('adapter_down', new AdapterDown(down, activationFn(options.nonLinearity)));
    this.adapter_up = this.registerModule('adapter_up', up);
    if (typeof options.scaling === 'number') {
      this.constScaling = options.scaling;
    } else {
      this.constScaling = 1;
      this.scaling = this.registerParameter('scaling', tf.ones([options.scaling === 'channel' ? hiddenSize : 1]));
    }
  }

  /**
   * The branch for input h [..., d] → [..., d]: `dropout(s · adapter_up(adapter_down(h)))`, as
   * AdapterHub's `Adapter.forward` before its residual addition.
   * @param training - dropout is applied only when true
   */
  forward(h: tf.Tensor, training = false): tf.Tensor {
    return tf.tidy(() => {
      let up = this.adapter_up.forward(this.adapter_down.forward(h)); // [..., d]
      up = this.scaling ? tf.mul(up, this.scaling) : this.constScaling === 1 ? up : tf.mul(up, this.constScaling);
      const p = this.options.dropout;
      return training && p > 0 ? seededDropout(up, p, ...nextSeedPair()) : up;
    });
  }
}

/**
 * Sets the initial weights of a new adapter, as AdapterHub's `Adapter.__init__` for `init_weights`:
 * `mam_adapter`: down Kaiming-uniform (a = √5, i.e. U(±1/√d)) and zero bias, up all zeros (exact
 * identity at the start); `bert`: weights N(0, 0.02²), biases zero; `houlsby`: weights truncated
 * N(0, 0.01²) within ±0.02, biases zero.
 */
function initAdapterWeights(down: Linear, up: Linear, init: AdapterOptions['initWeights']): void {
  tf.tidy(() => {
    const [m, d] = down.weight.shape;
    switch (init) {
      case 'mam_adapter':
        down.weight.assign(tf.randomUniform([m, d], -1 / Math.sqrt(d), 1 / Math.sqrt(d), 'float32', nextSeed()));
        up.weight.assign(tf.zeros(up.weight.shape));
        break;
      case 'bert':
        down.weight.assign(tf.randomNormal([m, d], 0, 0.02, 'float32', nextSeed()));
        up.weight.assign(tf.randomNormal(up.weight.shape, 0, 0.02, 'float32', nextSeed()));
        break;
      case 'houlsby':
        // tf.truncatedNormal re-draws values beyond two standard deviations: ±0.02 for std 0.01.
        down.weight.assign(tf.truncatedNormal([m, d], 0, 0.01, 'float32', nextSeed()));
        up.weight.assign(tf.truncatedNormal(up.weight.shape, 0, 0.01, 'float32', nextSeed()));
        break;
    }
    down.bias!.assign(tf.zeros(down.bias!.shape));
    up.bias!.assign(tf.zeros(up.bias!.shape));
  });
}

/**
 * A module that stands in for `base` at the same path and keeps the base's state-dict names: the
 * base's own parameters and buffers and its children are registered under their names, so
 * `model.stateDict()` is the same before and after wrapping. Shape fields (`inFeatures`,
 * `outFeatures`) are copied for code that inspects layers.
 */
abstract class TransparentWrapper extends Module {
  readonly inFeatures?: number;
  readonly outFeatures?: number;
  constructor(readonly baseLayer: Layer) {
    super();
    const own = baseLayer.stateDict();
    for (const [name, v] of baseLayer.namedParameters()) if (!name.includes('.')) this.registerParameter(name, v, v.trainable);
    for (const [name, t] of own) if (!name.includes('.') && !(t instanceof tf.Variable)) this.registerBuffer(name, t);
    for (const [name, child] of baseLayer.children()) this.registerModule(name, child);
    const b = baseLayer as unknown as { inFeatures?: unknown; outFeatures?: unknown };
    if (typeof b.inFeatures === 'number') this.inFeatures = b.inFeatures;
    if (typeof b.outFeatures === 'number') this.outFeatures = b.outFeatures;
    this.training = baseLayer.training;
  }
  abstract forward(x: tf.Tensor): tf.Tensor;
  /** The wrapper owns no tensors of its own: the base's stay with the model, the adapters' with their handles. */
  override dispose(): void {}
}

/**
 * Records the input of a sublayer's first projection (`attn.c_attn`, `self_attn.q_proj`,
 * `mlp.c_fc`, `intermediate.dense`, `ffn.lin1`, ...), which is the sublayer's input: what a
 * parallel adapter reads (He et al. 2021, figure 1c). Otherwise passes through to the base layer.
 */
export class SublayerInputTap extends TransparentWrapper {
  private last?: tf.Tensor;
  forward(x: tf.Tensor): tf.Tensor {
    this.last = x;
    this.baseLayer.training = this.training;
    return this.baseLayer.forward(x);
  }
  /**
   * The input recorded in this forward pass (then forgotten).
   * @throws Error when none was recorded or it has been freed since.
   */
  take(): tf.Tensor {
    const x = this.last;
    this.last = undefined;
    if (!x || x.isDisposed) throw new Error('the parallel adapter found no recorded sublayer input: the sublayer\'s first projection did not run before its output projection in this forward pass');
    return x;
  }
}

/**
 * Wraps a sublayer's output projection (`attn.c_proj`, `self_attn.o_proj`, `output.dense`,
 * `ffn.lin2`, ...) and adds the enabled adapters to its output y [B, T, d]:
 * sequential `y ← y + A(y)` (Houlsby et al. 2019, figure 2), parallel `y ← y + A(x)` with x the
 * sublayer's input from {@link SublayerInputTap} (He et al. 2021). Several enabled adapters are
 * applied in insertion order (AdapterHub's `Stack`).
 */
export class BottleneckAdapterLayer extends TransparentWrapper {
  /** Adapters by handle id (not by name: names can change after injection). */
  readonly adapters = new Map<string, BottleneckAdapter>();
  readonly enabled = new Set<string>();
  /** The sublayer-input tap, when a parallel adapter lives here. */
  tap?: SublayerInputTap;

  forward(x: tf.Tensor): tf.Tensor {
    const active = [...this.adapters].filter(([id]) => this.enabled.has(id)).map(([, a]) => a);
    const needsInput = active.some((a) => a.options.isParallel);
    const input = needsInput ? this.tap?.take() : undefined;
    if (needsInput && !input) throw new Error('a parallel adapter is enabled here but no sublayer input tap is installed');
    this.baseLayer.training = this.training;
    const y = this.baseLayer.forward(x);
    if (active.length === 0) return y;
    const out = tf.tidy(() => {
      let h = y; // [B, T, d]
      for (const a of active) h = tf.add(h, a.forward(a.options.isParallel ? input! : h, this.training));
      return h;
    });
    y.dispose();
    return out;
  }
}
