import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `evaluate` step lands: it validates nothing and fails when run. */
export const evaluateStep: StepKind = {
  name: 'evaluate',
  description: 'evaluate (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the evaluate step is not implemented yet');
  },
};
