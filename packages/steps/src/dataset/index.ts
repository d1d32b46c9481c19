import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `dataset` step lands: it validates nothing and fails when run. */
export const datasetStep: StepKind = {
  name: 'dataset',
  description: 'dataset (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the dataset step is not implemented yet');
  },
};
