import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `load` step lands: it validates nothing and fails when run. */
export const loadStep: StepKind = {
  name: 'load',
  description: 'load (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the load step is not implemented yet');
  },
};
