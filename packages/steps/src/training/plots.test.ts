import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lossCurveSvg } from './plots.js';

test('the loss curve renders as SVG with one line per series', async () => {
  const svg = await lossCurveSvg([{ step: 1, loss: 3 }, { step: 2, loss: 2.5, eval_loss: 2.7 }, { step: 3, loss: 2, eval_loss: 2.4 }, { step: 4, loss: NaN }], 'demo');
  assert.match(svg, /^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, />demo</);
  assert.match(svg, />train</);
  assert.match(svg, />validation</);
  assert.equal((svg.match(/class="mark-line role-mark/g) ?? []).length, 2); // train and validation
});
