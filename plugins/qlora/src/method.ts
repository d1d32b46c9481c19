import type { MethodContext, PeftMethod } from '@peftkit/core';
import { validateConfig, type LoraTargetModel } from '@peftkit/lora';
import { injectQLora, qloraConfigSchema, withQLoraDefaults, type QLoraAdapterHandle, type QLoraConfig } from './model.js';

/**
 * The `qlora` method: LoRA on a 4-bit base (Dettmers et al. 2023). Needs a `quantize` step before
 * `inject`. Saves HF PEFT LoRA adapters (`peft_type: "LORA"`), so `lora` loads them too.
 */
export const qloraMethod: PeftMethod<QLoraConfig, LoraTargetModel, QLoraAdapterHandle> = {
  name: 'qlora',
  peftType: 'LORA',
  family: 'adapter-layers',
  description: 'QLoRA: LoRA on a 4-bit NF4 quantized base (Dettmers et al. 2023); LoRA config fields, QLoRA defaults (all linear layers, r 64, alpha 16, dropout 0.1)',
  configSchema: qloraConfigSchema,
  validateConfig: (config) => validateConfig(withQLoraDefaults(config)),
  inject(model: LoraTargetModel, config: QLoraConfig, ctx: MethodContext): QLoraAdapterHandle {
    return injectQLora(model, config, { adapterName: ctx.adapterName, logger: ctx.logger, seed: ctx.seed });
  },
};
