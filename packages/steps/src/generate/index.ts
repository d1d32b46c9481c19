import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `generate` step lands: it validates nothing and fails when run. */
export const generateStep: StepKind = {
  name: 'generate',
  description: 'generate (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the generate step is not implemented yet');
  },
};
