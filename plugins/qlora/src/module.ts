import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { qloraMethod } from './method.js';
import { fp4Scheme, int8Scheme, nf4Scheme } from './schemes.js';

/** The QLoRA plugin: the `nf4`, `fp4` and `int8` quantization schemes and the `qlora` method. */
export default new ContainerModule(({ bind }) => {
  for (const s of [nf4Scheme, fp4Scheme, int8Scheme]) bind(TYPES.QuantScheme).toConstantValue(s);
  bind(TYPES.PeftMethod).toConstantValue(qloraMethod);
});
