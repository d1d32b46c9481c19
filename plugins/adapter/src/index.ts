/**
 * @peftkit/adapter: bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020; He et al.
 * 2021's parallel adapter) as peftkit methods, saved and loaded in AdapterHub's format. Written
 * against the public APIs of @peftkit/core and @peftkit/models only.
 *
 * The default export is the plugin's container module.
 */
export { default } from './module.js';
export type { BottleneckAdapterConfig } from './config.generated.js';
export { BottleneckAdapter, BottleneckAdapterLayer, SublayerInputTap, activationFn, type AdapterOptions, type NonLinearity } from './layer.js';
export {
  PRESETS,
  presetSchema,
  resolveConfig,
  validateBottleneckConfig,
  reductionFactorFor,
  bottleneckSize,
  adapterHubKeyPrefix,
  sublayerInputPath,
  injectBottleneckAdapter,
  loadAdapterHub,
  BottleneckAdapterHandle,
  houlsbyMethod,
  pfeifferMethod,
  parallelAdapterMethod,
  type BottleneckPreset,
  type ResolvedBottleneckConfig,
  type InjectTarget,
  type AdapterLocation,
  type AdapterSite,
} from './model.js';
export {
  ADAPTERHUB_CONFIG_NAME,
  ADAPTERHUB_WEIGHTS_NAME,
  ADAPTERHUB_HEAD_CONFIG_NAME,
  ADAPTERHUB_HEAD_WEIGHTS_NAME,
  adapterHubConfigJson,
  adapterHubHeadConfigJson,
  readAdapterHubHead,
  writeAdapterHubHead,
  type AdapterHubHead,
  configFromAdapterHub,
  isAdapterHubBottleneckConfig,
  readAdapterHubFolder,
  writeAdapterHubFolder,
  type AdapterHubMeta,
  type AdapterHubFolder,
} from './adapterhub-format.js';
