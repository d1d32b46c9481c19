import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRegistry } from './registry.js';
import { validatePipeline } from './validate.js';
import { applyOverrides } from './pipeline.js';
import { fakePlugin } from '../testing/fake-steps.js';

const registry = createRegistry([fakePlugin()]);
const good = () => ({
  name: 'p',
  steps: {
    base: { kind: 'load', settings: { model: 'x' } },
    data: { kind: 'dataset' },
    peft: { kind: 'inject', inputs: { model: 'base' }, settings: { method: 'toy' } },
    fit: { kind: 'train', inputs: { model: 'peft', dataset: 'data' }, settings: { steps: 3 } },
  },
});

test('a valid pipeline gets a dependency-ordered plan and its defaults', () => {
  const doc = good();
  const { issues, validated } = validatePipeline('p.json', doc, registry);
  assert.deepEqual(issues, []);
  const plan = validated!.plan;
  assert.ok(plan.indexOf('base') < plan.indexOf('peft') && plan.indexOf('peft') < plan.indexOf('fit') && plan.indexOf('data') < plan.indexOf('fit'));
  assert.equal(validated!.pipeline.seed, 42);
  assert.equal(validated!.pipeline.backend, 'auto');
  assert.deepEqual(doc.steps.fit.settings, { steps: 3, lr: 0.001 });
  assert.deepEqual(validated!.edges.find((e) => e.to === 'fit' && e.port === 'model'), { from: 'peft', fromPort: 'model', to: 'fit', port: 'model' });
});

function only(doc: unknown) {
  const { issues } = validatePipeline('p.json', doc, registry);
  assert.equal(issues.length, 1, JSON.stringify(issues));
  return issues[0];
}

test('unknown step kind: pointer and did-you-mean', () => {
  const d: any = good();
  d.steps.fit.kind = 'trian';
  const i = only(d);
  assert.equal(i.pointer, '/steps/fit/kind');
  assert.match(i.message, /unknown step kind "trian"/);
  assert.match(i.hint!, /did you mean "train"/);
});

test('reference to a missing step', () => {
  const d: any = good();
  d.steps.fit.inputs.dataset = 'dta';
  const i = only(d);
  assert.equal(i.pointer, '/steps/fit/inputs/dataset');
  assert.match(i.message, /does not exist: "dta"/);
  assert.match(i.hint!, /did you mean "data"/);
});

test('cycle', () => {
  const c = { name: 'c', steps: { a: { kind: 'train', inputs: { model: 'b', dataset: 'd' } }, b: { kind: 'train', inputs: { model: 'a', dataset: 'd' } }, d: { kind: 'dataset' } } };
  const i = only(c);
  assert.match(i.message, /cycle: (a -> b -> a|b -> a -> b)/);
  assert.match(i.pointer, /^\/steps\/(a|b)\/inputs$/);
});

test('port type mismatch, with the quantize-after-inject hint', () => {
  const d: any = good();
  d.steps.q = { kind: 'quantize', inputs: { model: 'peft' } };
  const i = only(d);
  assert.equal(i.pointer, '/steps/q/inputs/model');
  assert.match(i.message, /accepts base-model, but "peft.model" \(inject\) produces peft-model/);
  assert.match(i.hint!, /before injecting/);
});

test('setting of the wrong type', () => {
  const d: any = good();
  d.steps.fit.settings.lr = 'fast';
  const i = only(d);
  assert.equal(i.pointer, '/steps/fit/settings/lr');
  assert.match(i.message, /must be of type number, not the string "fast"/);
  // The hint says what to write first, then what the field means.
  assert.match(i.hint!, /^write a number/);
});

test('unknown field in settings is named with a did-you-mean', () => {
  const d: any = good();
  d.steps.fit.settings = { step: 3 };
  const i = only(d);
  assert.equal(i.pointer, '/steps/fit/settings/step');
  assert.match(i.hint!, /did you mean "steps"/);
});

test('missing required input and unknown input name', () => {
  const d: any = good();
  delete d.steps.fit.inputs.dataset;
  d.steps.fit.inputs.datset = 'data';
  const { issues } = validatePipeline('p.json', d, registry);
  assert.deepEqual(issues.map((i) => i.pointer).sort(), ['/steps/fit/inputs/dataset', '/steps/fit/inputs/datset']);
});

test('--set overrides parse JSON values and create paths', () => {
  const d: any = good();
  applyOverrides(d, ['steps.fit.settings.steps=7', 'seed=3', 'steps.base.settings.model=other']);
  assert.equal(d.steps.fit.settings.steps, 7);
  assert.equal(d.seed, 3);
  assert.equal(d.steps.base.settings.model, 'other');
  assert.throws(() => applyOverrides(d, ['nokey']), /expected key=value/);
  assert.throws(() => applyOverrides(d, ['steps.fti.settings.steps=1']), (e: any) => /no step "fti"/.test(e.message) && /did you mean "fit"/.test(e.details.hint));
  assert.throws(() => applyOverrides(d, ['steps.fit.settings.limit={"train":3']), /--set steps\.fit\.settings\.limit=.*not valid JSON/);
  applyOverrides(d, ['steps.fit.settings.note=plain words']);
  assert.equal(d.steps.fit.settings.note, 'plain words');
});

test('two plugins registering the same step kind are refused', () => {
  assert.throws(() => createRegistry([fakePlugin(), { ...fakePlugin(), name: 'other' }]), /registered twice: by fake and by other/);
});

test('validateUpstream sees every step the step depends on (transitively, in run order) and its issues get the step\'s pointer', () => {
  const seen: string[][] = [];
  const plugin = fakePlugin();
  const r = createRegistry([plugin]);
  const fit = r.stepKind('train')!;
  fit.validateUpstream = (settings: any, upstream) => {
    seen.push(upstream.map((u) => `${u.name}:${u.kind}`));
    return upstream.some((u) => u.kind === 'load') && settings.steps > 2 ? [{ pointer: '/steps', message: 'too many steps after a load', hint: 'fewer' }] : [];
  };
  const { issues } = validatePipeline('p.json', good(), r);
  assert.equal(seen.length, 1);
  assert.deepEqual([...seen[0]].sort(), ['base:load', 'data:dataset', 'peft:inject']);
  assert.ok(seen[0].indexOf('base:load') < seen[0].indexOf('peft:inject'), 'run order');
  assert.deepEqual(issues, [{ file: 'p.json', pointer: '/steps/fit/settings/steps', message: 'too many steps after a load', hint: 'fewer' }]);
});
