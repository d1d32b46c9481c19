import * as tf from '@tensorflow/tfjs';
import { UserError, type PeftMethod } from '@peftkit/core';
import { savePretrained, type AdapterHandle, type PreTrainedModel } from '@peftkit/models';
import schema from './full.schema.json' with { type: 'json' };
import type { FullConfig } from './full.generated.js';

/**
 * The built-in `full` method: full fine-tuning, every base parameter trainable. It is the baseline
 * the PEFT methods are measured against (LoRA paper, Hu et al. 2021, section 5).
 *
 * Its "adapter" is the whole model: `stateDict()` is the model's own state dict (HF names, no
 * `base_model.model.` prefix) and the export step writes a full HF checkpoint folder for it.
 * Disabling it needs the base weights: with `keep_base_copy` they are kept in host memory (4 bytes
 * per parameter), read back asynchronously at injection (WebGPU in Node has no synchronous read), and
 * uploaded in their place; the trained weights meanwhile stay where they are (the variables' own buffers,
 * held by reference: no read back, no copy). Without it `setEnabled(false)` throws.
 */
export const fullMethod: PeftMethod<FullConfig, PreTrainedModel, AdapterHandle> = {
  name: 'full',
  peftType: null,
  family: 'full',
  description: 'Full fine-tuning: every base parameter is trained (the baseline). Exports a whole HF checkpoint.',
  configSchema: schema,
  async inject(model, config, ctx) {
    model.requiresGrad(true);
    const baseCopy = config.keep_base_copy ? await hostCopy(model) : undefined;
    return new FullHandle(model, config, ctx.adapterName ?? 'default', baseCopy);
  },
};

/** Host copies of every parameter's values, by HF name. */
type Snapshot = Map<string, Float32Array>;

/**
 * Every parameter's values read back to the host, one at a time (a read of every buffer at once would map the
 * whole model's worth of staging buffers on a GPU at the same time).
 */
async function hostCopy(model: PreTrainedModel): Promise<Snapshot> {
  const out: Snapshot = new Map();
  // Copied: the backend may hand back its own storage (cpu) or its cached download (webgpu).
  for (const [n, v] of model.namedParameters()) out.set(n, Float32Array.from((await v.data()) as Float32Array));
  return out;
}

class FullHandle implements AdapterHandle {
  readonly method = 'full';
  readonly peftType = null;
  readonly config: Record<string, unknown>;
  private enabled = true;
  /** The base weights on the host (when `keep_base_copy`). */
  private baseCopy?: Snapshot;
  /** While disabled: the trained weights, as tensors that share the variables' former buffers (tf.clone). */
  private trainedCopy?: Map<string, tf.Tensor>;

  constructor(readonly model: PreTrainedModel, config: FullConfig, public name: string, baseCopy?: Snapshot) {
    this.config = { keep_base_copy: config.keep_base_copy ?? false };
    this.baseCopy = baseCopy;
  }

  trainableParameters(): [string, tf.Variable][] {
    return this.model.namedParameters();
  }

  stateDict(): Map<string, tf.Tensor> {
    return this.model.stateDict();
  }

  /** Loads a full state dict (HF names, `base_model.model.` prefixes stripped); strict. */
  loadStateDict(sd: Map<string, tf.Tensor>): void {
    const stripped = new Map([...sd].map(([k, v]) => [k.replace(/^base_model\.model\./, ''), v]));
    this.model.loadStateDict(stripped, true);
  }

  adapterConfig(): Record<string, unknown> {
    return { ...this.config };
  }

  /**
   * On: the trained weights. Off: the base weights, restored from the copy kept at injection.
   * @throws UserError when turned off without `keep_base_copy`.
   */
  setEnabled(enabled: boolean): void {
    if (enabled === this.enabled) return;
    if (!enabled) {
      if (!this.baseCopy) {
        throw new UserError('the `full` method trains the base weights in place, so there is no adapter to disable', {
          hint: 'set "keep_base_copy": true in the inject step\'s config (keeps a host copy of the base weights) to compare with the base model',
        });
      }
      // A clone shares the variable's buffer; assign() then points the variable at a new one, so the trained
      // values stay intact on the device under the clone.
      this.trainedCopy = new Map(this.model.namedParameters().map(([n, v]) => [n, tf.keep(tf.clone(v))]));
      for (const [n, v] of this.model.namedParameters()) tf.tidy(() => v.assign(tf.tensor(this.baseCopy!.get(n)!, v.shape, 'float32')));
    } else {
      for (const [n, v] of this.model.namedParameters()) v.assign(this.trainedCopy!.get(n)!);
      tf.dispose([...this.trainedCopy!.values()]);
      this.trainedCopy = undefined;
    }
    this.enabled = enabled;
  }

  /**
   * Writes the whole model as an HF checkpoint folder (config.json + model.safetensors), as
   * `save_pretrained`. The export step writes the tokenizer's files beside them.
   */
  save(dir: string, options: { baseModelNameOrPath?: string } = {}): string[] {
    return savePretrained({ model: this.model, source: options.baseModelNameOrPath ?? '' }, dir);
  }

  dispose(): void {
    this.baseCopy = undefined;
    if (this.trainedCopy) tf.dispose([...this.trainedCopy.values()]);
    this.trainedCopy = undefined;
  }
}
