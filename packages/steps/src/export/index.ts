import type { StepKind } from '@peftkit/core';

/** PLACEHOLDER until the `export` step lands: it validates nothing and fails when run. */
export const exportStep: StepKind = {
  name: 'export',
  description: 'export (not implemented yet)',
  inputs: {},
  outputs: {},
  settingsSchema: { type: 'object' },
  async run() {
    throw new Error('the export step is not implemented yet');
  },
};
