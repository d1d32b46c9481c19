/**
 * @peftkit/prefix-tuning: prefix tuning (Li and Liang 2021) and prompt tuning (Lester et al. 2021)
 * as peftkit methods, saved and loaded in HF PEFT's format. Written against the public APIs of
 * @peftkit/core and @peftkit/models only.
 *
 * The default export is the plugin's container module.
 */
export { default } from './module.js';
export type { PrefixTuningConfig } from './prefix/config.generated.js';
export type { PromptTuningConfig } from './prompt/config.generated.js';
export {
  PrefixEncoder,
  PrefixTuningHandle,
  injectPrefixTuning,
  loadPrefixTuningAdapter,
  prefixTuningMethod,
  resolvePrefixTuningConfig,
  validatePrefixTuningConfig,
  type ResolvedPrefixTuningConfig,
} from './prefix/model.js';
export {
  PromptTuningHandle,
  initialPromptEmbeddings,
  injectPromptTuning,
  loadPromptTuningAdapter,
  promptTuningMethod,
  resolvePromptTuningConfig,
  validatePromptTuningConfig,
  type ResolvedPromptTuningConfig,
} from './prompt/model.js';
export { PromptLearningHandle, extendAttentionMask, shiftPositionIds, resolveTarget, type InjectTarget } from './virtual-tokens.js';
export {
  PROMPT_EMBEDDINGS_KEY,
  prefixTuningConfigFromHf,
  promptTuningConfigFromHf,
  readPromptLearningFolder,
  savePromptLearningAdapter,
  type PromptLearningFolder,
  type PromptLearningPeftType,
} from './hf-format.js';
