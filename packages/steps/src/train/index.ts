import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `train` step lands: it validates nothing and fails when run. */
export const trainStep: StepKind = {
  name: 'train',
  description: 'train (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the train step is not implemented yet');
  },
};
