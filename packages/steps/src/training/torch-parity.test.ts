// Parity with PyTorch: AdamW, global-norm clipping and HF's warmup schedules, step by step.
// Runs where a Python with torch is installed (Debian's python3-torch: /usr/bin/python3), else skips.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { AdamW } from './adamw.js';
import { clipGradNorm } from './clip.js';
import { lrMultiplier, type SchedulerType } from './schedules.js';

const PYTHON = process.env.PEFTKIT_TORCH_PYTHON ?? '/usr/bin/python3';
const hasTorch = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

// The reference: torch.optim.AdamW in two parameter groups (decay / no decay, as HF Trainer makes them),
// clip_grad_norm_, and LambdaLR with transformers' lambdas (optimization.py).
const SCRIPT = String.raw`
import json, math, sys, torch
d = json.load(sys.stdin)
torch.set_default_dtype(torch.float64)
ps = [torch.nn.Parameter(torch.tensor(p, dtype=torch.float32)) for p in d['params']]
groups = [{'params': [p for p, nd in zip(ps, d['no_decay']) if not nd], 'weight_decay': d['wd']},
          {'params': [p for p, nd in zip(ps, d['no_decay']) if nd], 'weight_decay': 0.0}]
opt = torch.optim.AdamW(groups, lr=d['lr'], betas=(d['b1'], d['b2']), eps=d['eps'])
W, T = d['warmup'], d['total']
def lam(s):
    if s < W: return s / max(1, W)
    if d['sched'] == 'linear': return max(0.0, (T - s) / max(1, T - W))
    if d['sched'] == 'cosine': return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * (s - W) / max(1, T - W))))
    return 1.0
sch = torch.optim.lr_scheduler.LambdaLR(opt, lam)
out = []
for grads in d['grads']:
    for p, g in zip(ps, grads): p.grad = torch.tensor(g, dtype=torch.float32)
    norm = torch.nn.utils.clip_grad_norm_(ps, d['max_norm'])
    lr = opt.param_groups[0]['lr']
    opt.step(); sch.step(); opt.zero_grad()
    out.append({'norm': float(norm), 'lr': lr, 'params': [p.detach().tolist() for p in ps]})
print(json.dumps(out))
`;

function rand(seed: number, shape: number[], scale: number): number[][] | number[] {
  const t = tf.tidy(() => tf.randomNormal(shape, 0, scale, 'float32', seed));
  const v = t.arraySync() as number[][] | number[];
  t.dispose();
  return v;
}

for (const sched of ['linear', 'cosine'] as SchedulerType[]) {
  test(`AdamW + clipping + ${sched} warmup schedule match torch step by step`, { skip: hasTorch ? false : `no torch in ${PYTHON}` }, async () => {
    await initBackend('wasm');
    const shapes = [[3, 4], [4], [2, 3]];
    const noDecay = [false, true, false];
    const steps = 6;
    const d = {
      params: shapes.map((s, i) => rand(100 + i, s, 1)), no_decay: noDecay,
      // Large gradients on some steps so that clipping engages.
      grads: Array.from({ length: steps }, (_, k) => shapes.map((s, i) => rand(200 + 10 * k + i, s, k % 2 ? 2 : 0.05))),
      lr: 0.01, wd: 0.1, b1: 0.9, b2: 0.999, eps: 1e-8, max_norm: 1.0, warmup: 2, total: steps, sched,
    };
    const py = spawnSync(PYTHON, ['-c', SCRIPT], { input: JSON.stringify(d), encoding: 'utf8' });
    assert.equal(py.status, 0, py.stderr);
    const ref = JSON.parse(py.stdout) as { norm: number; lr: number; params: unknown[] }[];

    const params: [string, tf.Variable][] = d.params.map((p, i) => [`p${i}`, tf.variable(tf.tensor(p as number[]))]);
    const opt = new AdamW(params, { beta1: d.b1, beta2: d.b2, epsilon: d.eps, weightDecay: d.wd, noDecay: (n) => noDecay[Number(n.slice(1))] });
    let clipped = 0;
    for (let k = 0; k < steps; k++) {
      const grads = new Map<string, tf.Tensor>(d.grads[k].map((g, i) => [`p${i}`, tf.tensor(g as number[])]));
      const normT = clipGradNorm(grads, d.max_norm);
      const norm = (await normT.data())[0];
      normT.dispose();
      if (norm > d.max_norm) clipped++;
      const lr = d.lr * lrMultiplier(k, { type: sched, warmupSteps: d.warmup, totalSteps: steps });
      assert.ok(Math.abs(lr - ref[k].lr) < 1e-12, `step ${k + 1}: lr ${lr} vs torch ${ref[k].lr}`);
      assert.ok(Math.abs(norm - ref[k].norm) < 1e-4 * Math.max(1, ref[k].norm), `step ${k + 1}: norm ${norm} vs torch ${ref[k].norm}`);
      opt.applyGradients(grads, lr);
      for (const g of grads.values()) g.dispose();
      params.forEach(([n, v], i) => {
        const ours = v.dataSync();
        const theirs = (ref[k].params[i] as number[] | number[][]).flat();
        const diff = Math.max(...Array.from(ours, (x, j) => Math.abs(x - theirs[j])));
        assert.ok(diff < 1e-6, `step ${k + 1}, ${n}: max |ours - torch| = ${diff}`);
      });
    }
    assert.ok(clipped >= 2, 'the test should exercise clipping');
    opt.dispose();
    for (const [, v] of params) v.dispose();
  });
}

test('the causal-LM loss (shifted, -100 ignored) matches torch cross_entropy as HF computes it', { skip: hasTorch ? false : `no torch in ${PYTHON}` }, async () => {
  await initBackend('wasm');
  const { causalLmNllSum, countCausalTargets } = await import('./losses.js');
  const logits = rand(7, [2, 5, 7], 3) as unknown as number[][][];
  const labels = [[3, 1, -100, 6, 0], [-100, -100, 2, 2, 5]];
  const py = spawnSync(PYTHON, ['-c', String.raw`
import json, sys, torch
import torch.nn.functional as F
d = json.load(sys.stdin)
x = torch.tensor(d['logits']); y = torch.tensor(d['labels'])
print(float(F.cross_entropy(x[:, :-1].reshape(-1, x.shape[-1]), y[:, 1:].reshape(-1), ignore_index=-100)))
`], { input: JSON.stringify({ logits, labels }), encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const n = countCausalTargets(Int32Array.from(labels.flat()), 2, 5);
  assert.equal(n, 6);
  const ours = tf.tidy(() => causalLmNllSum(tf.tensor3d(logits), tf.tensor2d(labels, [2, 5], 'int32')).dataSync()[0]) / n;
  assert.ok(Math.abs(ours - Number(py.stdout)) < 1e-5, `${ours} vs torch ${py.stdout}`);
});
