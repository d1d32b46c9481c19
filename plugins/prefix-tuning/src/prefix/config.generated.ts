/* Generated from plugins/prefix-tuning/src/prefix/config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Prefix tuning settings (Li and Liang 2021, arXiv:2101.00190): trained key and value prefixes for every attention layer. Field names and defaults of HF PEFT's PrefixTuningConfig (peft/tuners/prefix_tuning/config.py).
 */
export interface PrefixTuningConfig {
  /**
   * Prefix length P: every layer attends to P trained key/value positions before the real tokens.
   */
  num_virtual_tokens?: number;
  /**
   * Width of one layer's key (or value) prefix per position: head_dim × num_key_value_heads (HF PEFT's adjustment for grouped-query attention). null: computed from the model; a given value must be that or the hidden size (which is then adjusted the same way).
   */
  token_dim?: number | null;
  /**
   * 1 for decoder-only and encoder-only models (HF uses 2 for encoder-decoder models, which peftkit does not have). null: 1.
   */
  num_transformer_submodules?: 1 | null;
  /**
   * Heads of the prefix: the model's key/value heads (HF PEFT writes num_key_value_heads here for grouped-query attention). null: from the model.
   */
  num_attention_heads?: number | null;
  /**
   * Layers that get a prefix: all of the model's. null: from the model.
   */
  num_layers?: number | null;
  /**
   * Reparameterize the prefix during training with an MLP (Li and Liang 2021, section 4.3): embedding [P, token_dim] → Linear(token_dim, encoder_hidden_size) → tanh → Linear(encoder_hidden_size, num_layers·2·token_dim). The saved prefix is the MLP's output, so the file is a plain table either way.
   */
  prefix_projection?: boolean;
  /**
   * Hidden width of the prefix_projection MLP. null: token_dim.
   */
  encoder_hidden_size?: number | null;
  /**
   * HF PEFT task type written to adapter_config.json. null: taken from the model (CAUSAL_LM for causal LMs, SEQ_CLS for sequence classifiers, FEATURE_EXTRACTION for bare encoders).
   */
  task_type?: 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS' | 'SEQ_2_SEQ_LM' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION' | null;
}
