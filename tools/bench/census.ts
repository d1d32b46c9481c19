/**
 * What a training step's forward pass keeps alive for the backward pass: the tensor buffers alive when the loss
 * is computed (GPT-2 small of tools/bench/train-spec.json, random weights, LoRA r 8 on `c_attn`), counted once per
 * buffer and grouped by the kernel that made the buffer and its shape.
 *
 *   node --conditions=peftkit-source --import tsx tools/bench/census.ts [--batch 4] [--seq 128] [--layers 12] [--top 30]
 *
 * Why not `tf.memory().numBytes`: it sums the bytes of every tensor, and the gradient tape saves tensors as
 * Identity clones that share their input's buffer, so one buffer counts several times (GPT-2 small at 4 × 128:
 * 3,009 MiB reported where 1,683 MiB of buffers were alive). Here a buffer (tfjs `dataId`) counts once, under the
 * kernel of the first tensor that held it. Counts only buffers made after the model is built (not the weights).
 * Prints MiB and counts; the WASM backend, threads as PEFTKIT_WASM_THREADS. A measurement, not a test.
 */
import * as tf from '@tensorflow/tfjs';
import { parseArgs } from 'node:util';
import { initBackend } from '@peftkit/core';
import { createModel, manualSeed } from '@peftkit/models';
import { injectLora } from '@peftkit/lora';
import { causalLmModelNllSum } from '../../packages/steps/src/training/losses.js';
import spec from './train-spec.json' with { type: 'json' };

const { values: args } = parseArgs({ options: { batch: { type: 'string', default: '4' }, seq: { type: 'string', default: '128' }, layers: { type: 'string' }, top: { type: 'string', default: '30' } } });
const B = Number(args.batch);
const T = Number(args.seq);

/** The parts of tfjs's engine the census hooks (not in tfjs's public types). */
interface EngineHooks {
  runKernelFunc(params: { kernelName?: string }): unknown;
  trackTensor(t: tf.Tensor, backend: unknown): void;
  disposeTensor(t: tf.Tensor): void;
}

await initBackend('wasm');
manualSeed(0);
const model = createModel({ ...spec.models.gpt2.config, ...(args.layers ? { n_layer: Number(args.layers) } : {}) }, 'causal-lm');
const lora = injectLora(model, { r: spec.lora.r, lora_alpha: spec.lora.lora_alpha, lora_dropout: 0, target_modules: ['c_attn'] }, { seed: 0 });
const vars = lora.trainableParameters().map(([, v]) => v);
model.train();
const ids = tf.randomUniformInt([B, T], 0, model.config.vocab_size as number, 1) as tf.Tensor2D;

// Per buffer: the tensors that hold it, and what the first of them was (kernel, shape, bytes).
const holders = new Map<object, Set<number>>();
const first = new Map<object, { kernel: string; shape: number[]; dtype: string; bytes: number }>();
const engine = tf.engine() as unknown as EngineHooks;
let kernel = '(none)';
const runKernelFunc = engine.runKernelFunc.bind(engine);
engine.runKernelFunc = (params) => {
  const outer = kernel;
  kernel = params.kernelName ?? 'custom op';
  try {
    return runKernelFunc(params);
  } finally {
    kernel = outer;
  }
};
// The weights' buffers are older than the census; a clone of one (the tape saves weights as clones) is not a new buffer.
const weights = new Set(Object.values((tf.engine() as unknown as { state: { registeredVariables: Record<string, tf.Variable> } }).state.registeredVariables).map((v) => v.dataId as object));
const trackTensor = engine.trackTensor.bind(engine);
engine.trackTensor = (t, backend) => {
  const id = t.dataId as object;
  if (weights.has(id)) return trackTensor(t, backend);
  if (!holders.has(id)) {
    holders.set(id, new Set());
    first.set(id, { kernel, shape: t.shape, dtype: t.dtype, bytes: t.size * tf.util.bytesPerElement(t.dtype as tf.NumericDataType) });
  }
  holders.get(id)!.add(t.id);
  trackTensor(t, backend);
};
const disposeTensor = engine.disposeTensor.bind(engine);
engine.disposeTensor = (t) => {
  const id = t.dataId as object;
  const h = holders.get(id);
  h?.delete(t.id);
  if (h && h.size === 0) {
    holders.delete(id);
    first.delete(id);
  }
  disposeTensor(t);
};

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
tf.variableGrads(() => {
  const loss = tf.div(causalLmModelNllSum(model, { inputIds: ids }, ids), B * (T - 1)) as tf.Scalar;
  const groups = new Map<string, { n: number; bytes: number }>();
  let total = 0;
  for (const e of first.values()) {
    const key = `${e.kernel} [${e.shape.join(', ')}] ${e.dtype}`;
    const g = groups.get(key) ?? { n: 0, bytes: 0 };
    g.n++;
    g.bytes += e.bytes;
    groups.set(key, g);
    total += e.bytes;
  }
  console.log(`GPT-2 small${args.layers ? ` (${args.layers} layers)` : ''}, LoRA r ${spec.lora.r} on c_attn, ${B} x ${T}: ${MiB(total)} MiB in ${first.size} buffers alive at the loss (tf.memory().numBytes: ${MiB(tf.memory().numBytes)} MiB, weights included)`);
  console.log('| MiB | buffers | made by, shape |\n|---:|---:|---|');
  for (const [key, g] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(args.top))) console.log(`| ${MiB(g.bytes)} | ${g.n} | ${key} |`);
  return loss;
}, vars);
