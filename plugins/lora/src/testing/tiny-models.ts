/**
 * Helpers for this package's tests beyond `@peftkit/models/testing`: tiny GPT-2 and Llama models
 * (the real architectures of `@peftkit/models`, random weights) of hidden size 8, whose layer
 * shapes the tests name.
 */
import { createModel, type GPT2LMHeadModel, type LlamaForCausalLM, type LlamaForSequenceClassification } from '@peftkit/models';

/** GPT-2 (`GPT2LMHeadModel`): n_embd 8, 2 heads, Conv1D `transformer.h.{i}.attn.c_attn` [8, 24], tied `lm_head`. Eval mode. */
export function tinyGpt2(nLayers = 2): GPT2LMHeadModel {
  return createModel({ model_type: 'gpt2', n_embd: 8, n_layer: nLayers, n_head: 2, vocab_size: 11, n_positions: 16 }, 'causal-lm') as GPT2LMHeadModel;
}

/** Llama (`LlamaForCausalLM`): hidden 8, 2 heads, 1 key/value head (k/v_proj out 4), intermediate 12, untied `lm_head`. Eval mode. */
export function tinyLlama(nLayers = 2): LlamaForCausalLM {
  return createModel(llamaConfig(nLayers), 'causal-lm') as LlamaForCausalLM;
}

/** Llama sequence classifier (`LlamaForSequenceClassification`): the model above and `score` [3, 8]. Eval mode. */
export function tinyLlamaForSequenceClassification(): LlamaForSequenceClassification {
  return createModel({ ...llamaConfig(2), num_labels: 3, pad_token_id: 0 }, 'sequence-classification') as LlamaForSequenceClassification;
}

function llamaConfig(nLayers: number) {
  return { model_type: 'llama', hidden_size: 8, intermediate_size: 12, num_hidden_layers: nLayers, num_attention_heads: 2, num_key_value_heads: 1, vocab_size: 11, max_position_embeddings: 16 };
}
