import type { PeftMethod } from '@peftkit/core';

/** PLACEHOLDER until the built-in `full` method lands. */
export const fullMethod: PeftMethod = {
  name: 'full', peftType: null, family: 'full', description: 'full fine-tuning (not implemented yet)',
  configSchema: { type: 'object' },
  inject() {
    throw new Error('full fine-tuning is not implemented yet');
  },
};
