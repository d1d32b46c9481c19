import type { MethodContext, PeftMethod } from '@peftkit/core';
import { loraConfigSchema, validateConfig, type LoraConfig } from './config.js';
import { injectLora, type LoraAdapterHandle, type LoraTargetModel } from './model.js';
import { loadHfLoraAdapter } from './hf-format.js';

/**
 * The `lora` method (HF PEFT's `LORA`): low-rank updates on linear layers (Hu et al. 2021,
 * arXiv:2106.09685). `inject` returns a {@link LoraAdapterHandle}.
 */
export const loraMethod: PeftMethod<LoraConfig, LoraTargetModel, LoraAdapterHandle> = {
  name: 'lora',
  peftType: 'LORA',
  family: 'adapter-layers',
  description: 'LoRA: trainable low-rank updates B·A on the linear layers, base frozen (Hu et al. 2021); HF PEFT LoraConfig fields',
  configSchema: loraConfigSchema,
  validateConfig,
  inject(model: LoraTargetModel, config: LoraConfig, ctx: MethodContext): LoraAdapterHandle {
    return injectLora(model, config, { adapterName: ctx.adapterName, logger: ctx.logger, seed: ctx.seed });
  },
  /** HF PEFT's `PeftModel.from_pretrained` for a LoRA folder (see {@link loadHfLoraAdapter}). */
  loadAdapter(model: LoraTargetModel, dir: string, ctx: MethodContext): LoraAdapterHandle {
    return loadHfLoraAdapter(model, dir, { adapterName: ctx.adapterName, logger: ctx.logger });
  },
  recognizesAdapterConfig: (json) => json.peft_type === 'LORA',
};
