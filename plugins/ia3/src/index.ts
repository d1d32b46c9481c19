/**
 * @peftkit/ia3: IA3 (Liu et al. 2022) for peftkit, with HF PEFT's settings and adapter format.
 * Written only against the public plugin API of @peftkit/core and @peftkit/models.
 *
 * `export default` is the plugin's inversify `ContainerModule`; the named exports are the IA3
 * layer and injection API.
 */
export {
  ALL_LINEAR,
  DEFAULT_FEEDFORWARD_MODULES,
  DEFAULT_TARGET_MODULES,
  assertValidConfig,
  ia3ConfigSchema,
  isFeedforward,
  resolveIa3Config,
  validateConfig,
  type ConfigIssue,
  type Ia3Config,
  type ResolvedIa3Config,
} from './config.js';
export { Ia3Layer, UNMERGE_EPSILON, isIa3Base, type Ia3Base } from './layer.js';
export { HF_PREFIX, Ia3AdapterHandle, injectIa3, linearLayerNames, type Ia3TargetModel, type InjectIa3Options } from './model.js';
export { ia3ConfigFromHf, loadHfIa3Adapter } from './hf-format.js';
export { ia3Method } from './method.js';
export { default } from './module.js';
