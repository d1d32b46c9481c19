import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { ia3Method } from './method.js';

/** The IA3 plugin: binds the `ia3` method (HF PEFT's `IA3`) under {@link TYPES.PeftMethod}. */
export default new ContainerModule(({ bind }) => {
  bind(TYPES.PeftMethod).toConstantValue(ia3Method);
});
