import type { MethodContext, PeftMethod } from '@peftkit/core';
import { ia3ConfigSchema, validateConfig, type Ia3Config } from './config.js';
import { injectIa3, type Ia3AdapterHandle, type Ia3TargetModel } from './model.js';
import { loadHfIa3Adapter } from './hf-format.js';

/**
 * The `ia3` method (HF PEFT's `IA3`): learned vectors that rescale the outputs of attention
 * projections and the inputs of feed-forward projections (Liu et al. 2022, arXiv:2205.05638).
 * `inject` returns an {@link Ia3AdapterHandle}; export writes HF PEFT's files from its
 * `stateDict()` and `adapterConfig()`; `loadAdapter` reads them back (`peftkit generate`,
 * `peftkit classify`, the `generate` step).
 */
export const ia3Method: PeftMethod<Ia3Config, Ia3TargetModel, Ia3AdapterHandle> = {
  name: 'ia3',
  peftType: 'IA3',
  family: 'adapter-layers',
  description: 'IA3: trainable vectors scaling attention outputs and feed-forward inputs, base frozen (Liu et al. 2022); HF PEFT IA3Config fields',
  configSchema: ia3ConfigSchema,
  validateConfig,
  inject(model: Ia3TargetModel, config: Ia3Config, ctx: MethodContext): Ia3AdapterHandle {
    return injectIa3(model, config, { adapterName: ctx.adapterName, logger: ctx.logger, seed: ctx.seed });
  },
  /** HF PEFT's `PeftModel.from_pretrained` for an IA3 folder (see {@link loadHfIa3Adapter}). */
  loadAdapter(model: Ia3TargetModel, dir: string, ctx: MethodContext): Ia3AdapterHandle {
    return loadHfIa3Adapter(model, dir, { adapterName: ctx.adapterName, logger: ctx.logger });
  },
  recognizesAdapterConfig: (json) => json.peft_type === 'IA3',
};
