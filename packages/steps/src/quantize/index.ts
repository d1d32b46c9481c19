import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `quantize` step lands: it validates nothing and fails when run. */
export const quantizeStep: StepKind = {
  name: 'quantize',
  description: 'quantize (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the quantize step is not implemented yet');
  },
};
