/**
 * Test helpers of @peftkit/models (import from `@peftkit/models/testing`): the workspace root and
 * the shared HF fixtures, scratch folders, tiny models of each architecture, token ids, tensor
 * comparisons. Not for programs: {@link repoRoot} works only inside the workspace.
 */
export { repoRoot, hfFixture, hfGolden, scratch } from './workspace.js';
export { TINY_CONFIGS, type TinyModelType, tinyModel, cloneModel, sampleIds, maxAbsDiff, logitsOf } from './tiny-models.js';
