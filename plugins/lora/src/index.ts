/**
 * @peftkit/lora: LoRA (Hu et al. 2021) for peftkit, with HF PEFT's settings and adapter format.
 *
 * `export default` is the plugin's inversify `ContainerModule`; the named exports are the LoRA
 * layer and injection API (QLoRA builds on {@link LinearBase} and {@link LoraLayer}).
 */
export {
  ALL_LINEAR,
  DEFAULT_TARGET_MODULES,
  assertValidConfig,
  fullMatch,
  layerIndexOf,
  loraConfigSchema,
  matchesNameList,
  patternKeyFor,
  resolveLoraConfig,
  validateConfig,
  type ConfigIssue,
  type LoraConfig,
  type ResolvedLoraConfig,
} from './config.js';
export { LoraLayer, MergeError, isFanInFanOut, isLinearBase, loraScaling, type LinearBase, type LoraAdapterSpec, type LoraInit } from './layer.js';
/** Moved to @peftkit/models (every adapter-layer method uses it); re-exported for existing imports. */
export { ModulesToSaveWrapper, cloneModule } from '@peftkit/models';
export {
  HF_PREFIX,
  LoraAdapterHandle,
  injectLora,
  linearLayerNames,
  summarizeNames,
  type InjectLoraOptions,
  type LoraTargetModel,
  type ParameterReport,
} from './model.js';
export { loadHfLoraAdapter, loraConfigFromHf, readHfAdapter, writeHfAdapter, type HfLoraAdapter } from './hf-format.js';
export { addWeightedLoraAdapter, COMBINATION_TYPES, type CombinationType } from './weighted.js';
export { loraMethod } from './method.js';
export { default } from './module.js';
