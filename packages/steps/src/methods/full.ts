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
 * per parameter) and swapped in; without it `setEnabled(false)` throws.
 */
export const fullMethod: PeftMethod<FullConfig, PreTrainedModel, AdapterHandle> = {
  name: 'full',
  peftType: null,
  family: 'full',
  description: 'Full fine-tuning: every base parameter is trained (the baseline). Exports a whole HF checkpoint.',
  configSchema: schema,
  inject(model, config, ctx) {
    model.requiresGrad(true);
    return new FullHandle(model, config, ctx.adapterName ?? 'default');
  },
};

/** Host copies of every parameter's values, by HF name. */
type Snapshot = Map<string, Float32Array>;

class FullHandle implements AdapterHandle {
  readonly method = 'full';
  readonly peftType = null;
  readonly config: Record<string, unknown>;
  private enabled = true;
  /** The base weights (when `keep_base_copy`), and the trained ones while disabled. */
  private baseCopy?: Snapshot;
  private trainedCopy?: Snapshot;

  constructor(readonly model: PreTrainedModel, config: FullConfig, public name: string) {
    this.config = { keep_base_copy: config.keep_base_copy ?? false };
    if (config.keep_base_copy) this.baseCopy = this.snapshot();
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
      this.trainedCopy = this.snapshot();
      this.restore(this.baseCopy);
    } else {
      this.restore(this.trainedCopy!);
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
    this.trainedCopy = undefined;
  }

  private snapshot(): Snapshot {
    return new Map(this.model.namedParameters().map(([n, v]) => [n, Float32Array.from(v.dataSync() as Float32Array)]));
  }

  private restore(s: Snapshot): void {
    for (const [n, v] of this.model.namedParameters()) tf.tidy(() => v.assign(tf.tensor(s.get(n)!, v.shape, 'float32')));
  }
}
