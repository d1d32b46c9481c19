import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TrainProgress } from './progress.js';
import { memoryLogger } from './testing/context.js';

test('without a terminal, progress is one log line every logging_steps and at the last step', () => {
  const logger = memoryLogger();
  const p = new TrainProgress(5, 2, logger, 0, false);
  for (let step = 1; step <= 5; step++) p.update({ step, loss: 1 / step, lr: 0.001, tokensPerSecond: 100 });
  p.stop();
  assert.deepEqual(logger.lines, ['info: step 2/5 loss 0.5000 lr 1.00e-3 100 tok/s', 'info: step 4/5 loss 0.2500 lr 1.00e-3 100 tok/s', 'info: step 5/5 loss 0.2000 lr 1.00e-3 100 tok/s']);
});
