import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { loraMethod } from './method.js';

/** The LoRA plugin: binds the `lora` method (HF PEFT's `LORA`) under {@link TYPES.PeftMethod}. */
export default new ContainerModule(({ bind }) => {
  bind(TYPES.PeftMethod).toConstantValue(loraMethod);
});
