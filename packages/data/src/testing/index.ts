/** Test helpers of @peftkit/data (import from `@peftkit/data/testing`). */
export { CharTokenizer } from './char-tokenizer.js';
