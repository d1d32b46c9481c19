/**
 * @peftkit/models: Hugging Face architectures on TensorFlow.js, addressed by their HF parameter
 * names, with checkpoint and tokenizer I/O.
 */
export * from './nn/index.js';
export * from './model.js';
export * from './tokenizer/tokenizer.js';
export * from './peft/peft-model.js';
