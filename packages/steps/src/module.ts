import { ContainerModule } from 'inversify';
import { TYPES } from '@peftkit/core';
import { loadStep } from './load/index.js';
import { datasetStep } from './dataset/index.js';
import { quantizeStep } from './quantize/index.js';
import { injectStep } from './inject/index.js';
import { trainStep } from './train/index.js';
import { evaluateStep } from './evaluate/index.js';
import { exportStep } from './export/index.js';
import { generateStep } from './generate/index.js';
import { fullMethod } from './methods/full.js';

/** The built-in step kinds and the built-in `full` method, as one container module. */
export default new ContainerModule(({ bind }) => {
  for (const step of [loadStep, datasetStep, quantizeStep, injectStep, trainStep, evaluateStep, exportStep, generateStep]) {
    bind(TYPES.StepKind).toConstantValue(step);
  }
  bind(TYPES.PeftMethod).toConstantValue(fullMethod);
});
