/** @peftkit/steps: the built-in step kinds and the `full` method. The default export is their container module. */
export { default } from './module.js';
export { loadStep } from './load/index.js';
export { datasetStep } from './dataset/index.js';
export { quantizeStep } from './quantize/index.js';
export { injectStep } from './inject/index.js';
export { trainStep } from './train/index.js';
export { evaluateStep } from './evaluate/index.js';
export { exportStep } from './export/index.js';
export { generateStep } from './generate/index.js';
export { fullMethod } from './methods/full.js';
export { batchNllSum, targetCount } from './training/batches.js';
