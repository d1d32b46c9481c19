import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '@peftkit/core';
import { createModel, Linear, Module, type ModelTask } from '../index.js';

const sizes = { vocab_size: 13, n_embd: 8, n_layer: 3, n_head: 2, hidden_size: 8, num_hidden_layers: 3, num_attention_heads: 2, num_key_value_heads: 2, intermediate_size: 8, dim: 8, n_layers: 3, n_heads: 2, hidden_dim: 8 };

before(async () => {
  await initBackend('wasm');
});

/** A stand-in for a replaced layer: the identity, counting its calls. */
class Marker extends Module {
  calls = 0;
  forward(x: tf.Tensor): tf.Tensor {
    this.calls++;
    return x;
  }
}

test('onBlock sees each transformer block, by its name in the finished model, before the next block exists', () => {
  const cases: [string, ModelTask, string][] = [
    ['llama', 'causal-lm', 'model.layers.'],
    ['qwen2', 'sequence-classification', 'model.layers.'],
    ['llama', 'base', 'layers.'],
    ['gpt2', 'causal-lm', 'transformer.h.'],
    ['gpt2', 'base', 'h.'],
    ['bert', 'sequence-classification', 'bert.encoder.layer.'],
    ['bert', 'base', 'encoder.layer.'],
    ['distilbert', 'sequence-classification', 'distilbert.transformer.layer.'],
  ];
  for (const [type, task, prefix] of cases) {
    const seen: { block: Module; prefix: string; tensors: number; params: number }[] = [];
    const model = createModel({ model_type: type, ...sizes }, task, 'config.json', {
      onBlock: (block, p) => seen.push({ block, prefix: p, tensors: tf.memory().numTensors, params: block.namedParameters().length }),
    });
    const what = `${type} ${task}`;
    assert.deepEqual(seen.map((s) => s.prefix), [0, 1, 2].map((i) => `${prefix}${i}.`), what);
    for (const s of seen) assert.equal(model.getSubmodule(s.prefix.slice(0, -1)), s.block, `${what}: ${s.prefix} is the block handed over`);
    // Between two calls exactly one block's tensors were made: block i + 1 did not exist at call i.
    for (let i = 0; i + 1 < seen.length; i++) assert.equal(seen[i + 1].tensors - seen[i].tensors, seen[i + 1].params, `${what}: tensors made between calls ${i} and ${i + 1}`);
    model.dispose();
  }
});

test('a layer replaced in onBlock is the one the finished model uses', () => {
  const freed: tf.Variable[] = [];
  const model = createModel({ model_type: 'llama', ...sizes }, 'causal-lm', 'config.json', {
    onBlock: (block) => {
      const old = block.getSubmodule('mlp.down_proj') as Linear;
      freed.push(old.weight);
      block.setSubmodule('mlp.down_proj', new Marker());
      old.dispose();
    },
  });
  assert.equal(freed.length, 3);
  assert.ok(freed.every((v) => v.isDisposed), 'replaced weights were freed during the build');
  const names = model.namedParameters().map(([n]) => n);
  assert.equal(names.filter((n) => n.includes('down_proj')).length, 0, 'no down_proj weight is left');
  assert.equal(names.filter((n) => n.includes('up_proj')).length, 3);
  const markers = [0, 1, 2].map((i) => model.getSubmodule(`model.layers.${i}.mlp.down_proj`));
  assert.ok(markers.every((m) => m instanceof Marker));
  // The MLP calls its field, which follows the replacement (intermediate_size = hidden_size, so the identity fits).
  const logits = model.forward({ inputIds: tf.tensor2d([[1, 2, 3]], [1, 3], 'int32') }).logits;
  assert.deepEqual(logits.shape, [1, 3, 13]);
  assert.deepEqual(markers.map((m) => (m as Marker).calls), [1, 1, 1]);
  logits.dispose();
  model.dispose();
});
