/**
 * A linear layer whose frozen weight is stored quantized (bitsandbytes' `Linear4bit` /
 * `Linear8bitLt` storage): only the packed codes and scales stay resident; the float32 weight is
 * rebuilt inside each forward pass, and again inside the backward pass, and freed right after.
 *
 * It implements LoRA's `LinearBase` (`@peftkit/lora` layer.ts: `forward`, `inFeatures`,
 * `outFeatures`, `denseWeight`), so LoRA wraps it as it wraps `Linear` (QLoRA: LoRA on a 4-bit base).
 * The gradient flows to the input only: the quantized weight is frozen (QLoRA, §3: "gradients are
 * computed for the adapters, not for the 4-bit weights").
 */
import * as tf from '@tensorflow/tfjs';
import { UserError } from '@peftkit/core';
import { Conv1D, Linear, Module } from '@peftkit/models';
import { Weight4bit, WeightInt8, type Layout, type QuantizedWeight, type Quantize4bitOptions, type QuantType } from './quantized-weight.js';

/** Which module a quantized layer came from, so that dequantizing gives the same module (and state-dict layout) back. */
export type LinearOrigin = 'linear' | 'conv1d';

/**
 * `y = x Wᵀ + b` with W [out, in] held as a {@link QuantizedWeight}. Shapes: x [..., in] → y [..., out].
 *
 * Parameters: only `bias` (frozen, the original module's variable). The quantized weight is not a
 * tfjs variable; `stateDict()` therefore lists only the bias: save with bnb-format.ts.
 *
 * For merging (QLoRA's merge) the layer can be {@link QuantLinear.materialize}d: it then also holds
 * a float32 copy that takes LoRA's update; {@link QuantLinear.dematerialize} drops it and the layer
 * is exactly the quantized layer it was.
 */
export class QuantLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  bias?: tf.Variable;
  /** The float32 copy [out, in] while materialized (merging), else undefined. */
  private dense?: tf.Variable;
  private readonly matmul: (x2d: tf.Tensor2D) => tf.Tensor2D;

  /**
   * @param weight - the quantized weight, [out, in].
   * @param bias - the bias [out]; the variable is kept as is (not copied) and frozen.
   * @param origin - `conv1d` for GPT-2's Conv1D (weight stored [in, out] before quantization).
   * @param path - the module's name in the model, for messages.
   */
  /** True for a quantized Conv1D: HF PEFT's `fan_in_fan_out` (the LoRA config records it as for the float layer). */
  readonly fanInFanOut: boolean;

  constructor(readonly weight: QuantizedWeight, bias?: tf.Variable, readonly origin: LinearOrigin = 'linear', public path = '') {
    super();
    this.fanInFanOut = origin === 'conv1d';
    [this.outFeatures, this.inFeatures] = weight.shape;
    if (bias) {
      if (bias.shape.length !== 1 || bias.shape[0] !== this.outFeatures) throw new Error(`QuantLinear ${path}: bias has shape [${bias.shape.join(', ')}], expected [${this.outFeatures}]`);
      this.bias = this.registerParameter('bias', bias, false);
    }
    // x W^T with a custom gradient: the weight is dequantized again for the backward pass instead
    // of being kept alive between the two, and there is no gradient for it.
    const f = (x: tf.Tensor, save: tf.GradSaveFunc) => {
      save([]);
      const wt = this.weightTensor('in-out'); // [in, out]
      const value = tf.matMul(x as tf.Tensor2D, wt); // [N, out]; wt is freed by customGrad's tidy
      return {
        value,
        // tfjs runs a custom gradFunc outside any per-node scope: without this tidy every layer's
        // dequantized weight would stay alive until the whole backward pass ends (the full float32
        // model at once).
        gradFunc: (dy: tf.Tensor) => tf.tidy(() => tf.matMul(dy as tf.Tensor2D, this.weightTensor('out-in'))), // [N, in]
      };
    };
    this.matmul = tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (x2d: tf.Tensor2D) => tf.Tensor2D;
  }

  /** The quantization type (`nf4`, `fp4`, `int8`). */
  get quantType(): QuantType {
    return this.weight.quantType;
  }

  /** True while a float32 copy is held for merging. */
  get isMaterialized(): boolean {
    return this.dense !== undefined;
  }

  /** A new float32 tensor of the weight: [out, in] or [in, out]. From the float copy while materialized. */
  private weightTensor(layout: Layout): tf.Tensor2D {
    if (this.dense) return (layout === 'out-in' ? this.dense.clone() : this.dense.transpose()) as tf.Tensor2D;
    const [o, i] = this.weight.shape;
    return tf.tensor2d(this.weight.dequantize(layout), layout === 'out-in' ? [o, i] : [i, o]);
  }

  /** x [..., in] → y [..., out]. */
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = x.reshape([-1, this.inFeatures]) as tf.Tensor2D; // [N, in]
      let y: tf.Tensor = this.matmul(x2); // [N, out]
      if (this.bias) y = tf.add(y, this.bias);
      return y.reshape([...lead, this.outFeatures]);
    });
  }

  /** The weight dequantized to float32 [out, in] (LoRA's `LinearBase.denseWeight`). A new tensor: dispose it. */
  denseWeight(): tf.Tensor2D {
    return this.weightTensor('out-in');
  }

  /**
   * Refuses a float update while the weight is packed: adding a float delta to 4-bit or 8-bit codes
   * would silently round it away. Merge with the QLoRA adapter's `merge()` / `mergeAndUnload()`,
   * which dequantize to float32 first. While {@link QuantLinear.materialize}d, adds to the float copy.
   * @throws UserError when the layer is not materialized.
   */
  addToWeight(deltaOutIn: tf.Tensor2D): void {
    if (!this.dense) {
      throw new UserError(
        `cannot add a float update to ${this.path || 'a quantized layer'}: its weight is stored as ${this.weight.quantType} codes, and adding a float32 delta to packed storage would round it away`,
        { hint: 'merge through the qlora adapter (merge() or mergeAndUnload(), which dequantize the base to float32 first), or dequantize the model (dequantizeModel) before merging a LoRA adapter' },
      );
    }
    const d = this.dense;
    tf.tidy(() => d.assign(tf.add(d, deltaOutIn)));
  }

  /** Holds a float32 copy of the weight (dequantized) that takes float updates; the packed weight is kept unchanged. */
  materialize(): void {
    if (this.dense) return;
    const w = this.weightTensor('out-in');
    this.dense = tf.variable(w, false);
    w.dispose();
  }

  /** Drops the float32 copy; the layer computes with its (unchanged) quantized weight again. */
  dematerialize(): void {
    this.dense?.dispose();
    this.dense = undefined;
  }

  /**
   * A float32 module with this layer's weight and bias: `Linear` ([out, in]) or, for a layer that
   * came from GPT-2's Conv1D, `Conv1D` ([in, out]), its parameters frozen. Uses the float copy while
   * materialized. The bias is copied into the new module; this layer is left as it is.
   */
  toFloatModule(): Linear | Conv1D {
    const [o, i] = this.weight.shape;
    const m = this.origin === 'conv1d' ? new Conv1D(i, o) : new Linear(i, o, !!this.bias);
    m.requiresGrad(false); // a frozen base, as the quantized layer was
    tf.tidy(() => {
      const w = this.weightTensor('out-in'); // [out, in]
      m.weight.assign(m instanceof Conv1D ? w.transpose() : w);
      if (m.bias) m.bias.assign(this.bias ?? tf.zerosLike(m.bias));
    });
    return m;
  }

  /** Frees the bias and any float copy. The quantized storage is garbage-collected with the layer. */
  override dispose(): void {
    this.dematerialize();
    super.dispose();
  }
}

/** Options for quantizing one layer. */
export interface QuantizeLayerOptions {
  quantType: QuantType;
  /** 4-bit: power of two in [32, 4096] (default 64). */
  blocksize?: number;
  /** 4-bit: double-quantize the absmax (default true). */
  doubleQuant?: boolean;
}

/**
 * Quantizes a `Linear` or `Conv1D` into a {@link QuantLinear}. The float weight variable is disposed;
 * the bias variable moves to the new layer. The caller puts the result in place of `m`.
 * @throws UserError for a bad blocksize.
 */
export function quantizeLayer(m: Linear | Conv1D, opts: QuantizeLayerOptions, path = ''): QuantLinear {
  const origin: LinearOrigin = m instanceof Conv1D ? 'conv1d' : 'linear';
  const shape: [number, number] = [m.outFeatures, m.inFeatures];
  // Conv1D stores [in, out]: quantize Wᵀ, as transformers does for GPT-2 (bitsandbytes sees [out, in]). Transposed
  // here on the host, so that a weight already downloaded (readToHost) needs no device kernel and no read-back.
  const w = m.weight.dataSync() as Float32Array;
  const data = new Float32Array(w.length); // a copy: the variable is disposed below
  if (origin === 'conv1d') {
    const [out, inp] = shape;
    for (let i = 0; i < inp; i++) for (let o = 0; o < out; o++) data[o * inp + i] = w[i * out + o];
  } else data.set(w);
  const weight =
    opts.quantType === 'int8'
      ? WeightInt8.quantize(data, shape)
      : Weight4bit.quantize(data, shape, { quantType: opts.quantType, blocksize: opts.blocksize, doubleQuant: opts.doubleQuant } satisfies Quantize4bitOptions);
  const layer = new QuantLinear(weight, m.bias, origin, path);
  layer.training = m.training;
  m.weight.dispose();
  return layer;
}
