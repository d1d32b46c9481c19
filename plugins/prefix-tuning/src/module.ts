import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { prefixTuningMethod } from './prefix/model.js';
import { promptTuningMethod } from './prompt/model.js';

/** The prompt-learning methods `prefix-tuning` and `prompt-tuning`. */
export default new ContainerModule(({ bind }) => {
  bind(TYPES.PeftMethod).toConstantValue(prefixTuningMethod);
  bind(TYPES.PeftMethod).toConstantValue(promptTuningMethod);
});
