import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { houlsbyMethod, parallelAdapterMethod, pfeifferMethod } from './model.js';

/** The bottleneck adapter methods `houlsby`, `pfeiffer` and `parallel-adapter`. */
export default new ContainerModule(({ bind }) => {
  for (const method of [houlsbyMethod, pfeifferMethod, parallelAdapterMethod]) bind(TYPES.PeftMethod).toConstantValue(method);
});
