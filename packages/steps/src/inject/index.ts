import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `inject` step lands: it validates nothing and fails when run. */
export const injectStep: StepKind = {
  name: 'inject',
  description: 'inject (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the inject step is not implemented yet');
  },
};
