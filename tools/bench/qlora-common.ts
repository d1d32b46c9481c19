/**
 * Shared pieces of the QLoRA benchmarks (qlora-memory.ts, qlora-1b.ts): model shapes, what the base
 * takes as stored, a training step built from the project's own pieces (the methods' `inject`,
 * AdamW, the causal-LM loss, `tf.variableGrads`) and the memory figures.
 *
 * Memory figures:
 * - peak tensor bytes: `tf.profile(step).peakBytes`, the largest `tf.memory().numBytes` seen after
 *   any kernel of the step (forward, backward and the optimizer update), so it includes the
 *   activations kept for the backward pass and the dequantized weights that exist for one product;
 * - WASM heap: the size of the backend's heap, which grows to the process's peak and never shrinks
 *   (so it also remembers the build);
 * - peak RSS: `process.resourceUsage().maxRSS`, the kernel's high-water mark for the process
 *   (WASM heap + JavaScript heap + the packed 4-bit storage, which lives in JavaScript ArrayBuffers).
 */
import * as tf from '@tensorflow/tfjs';
import type { StepLogger } from '@peftkit/core';
import type { ModelConfig, PreTrainedModel } from '@peftkit/models';
import { quantizedLayers } from '@peftkit/qlora';
import { AdamW } from '../../packages/steps/src/training/adamw.js';
import { causalLmModelNllSum } from '../../packages/steps/src/training/losses.js';
import { memoryInUse } from '../../packages/steps/src/training/memory.js';

/** SmolLM-135M's shapes (HuggingFaceTB/SmolLM-135M config.json): Llama, GQA 9/3 heads, tied embeddings. */
export const SMOLLM_135M = {
  model_type: 'llama',
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  tie_word_embeddings: true,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
} satisfies ModelConfig;

/** TinyLlama-1.1B's shapes (TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T config.json): untied lm_head. */
export const TINYLLAMA_1B = {
  model_type: 'llama',
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  tie_word_embeddings: false,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
} satisfies ModelConfig;

/** The LoRA config of every run: r 8, alpha 16 on all linear layers (the output head excluded, as HF PEFT's `all-linear`). */
export const LORA_CONFIG = { r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: 'all-linear' } as const;

/** The quantization of every QLoRA run: NF4, blocksize 64, double quantization (QLoRA's). */
export const NF4_CONFIG = { quant_type: 'nf4', blocksize: 64, double_quant: true } as const;

/** What a base takes as stored, in bytes, and how many parameters it has. */
export interface BaseStorage {
  /** `tf.memory().numBytes` with only the model alive: its float32 tensors. */
  tensorBytes: number;
  /** Float32 parameters (tied ones once). */
  floatParams: number;
  /** Packed 4-bit codes + first-level scales (8-bit when double-quantized) + nested float32 scales, over every quantized layer. */
  quantBytes: number;
  /** Per-tensor code tables and offsets (quant_map, nested_quant_map, offset). */
  quantTableBytes: number;
  quantParams: number;
  /** Quantized layers. */
  quantLayers: number;
}

/**
 * The stored bytes of `model`'s base, exactly: float tensors as tfjs counts them, plus the bytes of
 * each quantized layer's typed arrays. Call it before injecting (adapters are not the base).
 * @throws Error when tfjs holds tensors beyond the model's parameters (the count would be wrong).
 */
export function baseStorage(model: PreTrainedModel): BaseStorage {
  const params = model.namedParameters();
  const floatParams = params.reduce((s, [, v]) => s + v.size, 0);
  const tensorBytes = tf.memory().numBytes;
  if (tensorBytes !== floatParams * 4) throw new Error(`tf.memory().numBytes is ${tensorBytes}, the model's float32 parameters take ${floatParams * 4}: other tensors are alive`);
  let quantBytes = 0;
  let quantTableBytes = 0;
  let quantParams = 0;
  const layers = quantizedLayers(model);
  for (const [, q] of layers) {
    const s = q.weight.storage();
    quantBytes += s.codes + s.scales + s.nestedScales;
    quantTableBytes += s.tables;
    quantParams += q.weight.shape[0] * q.weight.shape[1];
  }
  return { tensorBytes, floatParams, quantBytes, quantTableBytes, quantParams, quantLayers: layers.length };
}

/** A logger for `inject` that prints info lines to stderr (kept off stdout, which carries results). */
export function stderrLogger(prefix: string): StepLogger {
  const say = (level: string) => (m: string) => process.stderr.write(`${prefix} ${level}: ${m}\n`);
  return { error: say('error'), warn: say('warn'), info: say('info'), debug: () => {} };
}

/**
 * One AdamW training step of next-token prediction on `ids` (labels = ids, every position a target),
 * as the train step does it: loss = summed NLL / targets (the fused chunked LM head + loss when the
 * head is plain, `causalLmModelNllSum`), `tf.variableGrads` over `params`, AdamW.
 * @returns a function running one step and returning the loss (nats per token).
 */
export function trainingStep(model: PreTrainedModel, params: [string, tf.Variable][], ids: tf.Tensor2D, lr: number): () => number {
  const opt = new AdamW(params, { weightDecay: 0 });
  const vars = params.map(([, v]) => v);
  const nameOf = new Map(params.map(([n, v]) => [v.name, n]));
  const [B, T] = ids.shape;
  const targets = B * (T - 1);
  return () => {
    const { value, grads } = tf.tidy(() => tf.variableGrads(() => tf.div(causalLmModelNllSum(model, { inputIds: ids }, ids), targets) as tf.Scalar, vars));
    const loss = value.dataSync()[0];
    value.dispose();
    const byName = new Map<string, tf.Tensor>();
    for (const [vn, g] of Object.entries(grads)) if (g) byName.set(nameOf.get(vn)!, g);
    opt.applyGradients(byName, lr);
    tf.dispose([...byName.values()]);
    return loss;
  };
}

/** Peak tensor bytes of one call of `fn` (tf.profile), with its result. */
export async function profiled<T>(fn: () => T): Promise<{ result: T; peakBytes: number; seconds: number }> {
  const t0 = performance.now();
  const info = await tf.profile(() => fn() as unknown as tf.TensorContainer);
  return { result: info.result as unknown as T, peakBytes: info.peakBytes, seconds: (performance.now() - t0) / 1000 };
}

/** The WASM heap's size now (its high-water mark), in bytes; 0 on another backend. */
export function wasmHeapBytes(): number {
  return memoryInUse().heapBytes ?? 0;
}

/** The process's peak resident set size so far, in bytes. */
export function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

/** Trainable parameter count of a list. */
export function countParams(params: [string, tf.Variable][]): number {
  return params.reduce((s, [, v]) => s + v.size, 0);
}

/** Every base parameter: float32 ones plus quantized ones. */
export function totalBaseParams(s: BaseStorage): number {
  return s.floatParams + s.quantParams;
}

/** Bytes as MiB with 1 decimal. */
export const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** Runs `main`, printing an error as one line and exiting 1. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e) => {
    process.stderr.write(`${(e as Error).stack ?? e}\n`);
    process.exit(1);
  });
}
