/* Generated from packages/models/src/architectures/llama-config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * A Llama-family `config.json` (`llama`, `qwen2`, `mistral`) as Hugging Face transformers writes it (configuration_llama.py, configuration_qwen2.py, configuration_mistral.py). Defaults are LlamaConfig's; where Qwen2Config or MistralConfig differ, the model code applies theirs for those model types first. Unknown keys are kept.
 */
export interface LlamaConfig {
  /**
   * Architecture name: llama, qwen2 or mistral.
   */
  model_type?: 'llama' | 'qwen2' | 'mistral';
  /**
   * HF class names the checkpoint was saved from, e.g. ["LlamaForCausalLM"].
   */
  architectures?: string[];
  /**
   * Number of token ids (rows of `embed_tokens`).
   */
  vocab_size?: number;
  /**
   * Hidden size (width of the residual stream).
   */
  hidden_size?: number;
  /**
   * Width of the SwiGLU MLP.
   */
  intermediate_size?: number;
  /**
   * Number of decoder layers.
   */
  num_hidden_layers?: number;
  /**
   * Number of query heads.
   */
  num_attention_heads?: number;
  /**
   * Number of key/value heads (grouped-query attention); null means num_attention_heads. Must divide num_attention_heads.
   */
  num_key_value_heads?: number | null;
  /**
   * Size of one head; null means hidden_size / num_attention_heads.
   */
  head_dim?: number | null;
  /**
   * Activation of the gate projection.
   */
  hidden_act?: 'silu' | 'swish' | 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu' | 'tanh';
  /**
   * Longest sequence the model was trained for, in tokens (informational for RoPE, which has no table).
   */
  max_position_embeddings?: number;
  /**
   * Standard deviation of the normal initialisation of new weights (the classification head).
   */
  initializer_range?: number;
  /**
   * Epsilon of every RMSNorm.
   */
  rms_norm_eps?: number;
  /**
   * RoPE settings as transformers 5 writes them: {"rope_type": default | linear | dynamic | yarn | longrope | llama3, "rope_theta", and the type's fields (factor, original_max_position_embeddings, low_freq_factor, high_freq_factor, attention_factor, beta_fast, beta_slow, long_factor, short_factor, ...)}. Takes precedence over rope_theta and rope_scaling; when read, those two are folded into it.
   */
  rope_parameters?: {} | null;
  /**
   * transformers 4: base of the rotary position embedding frequencies (default 10000). transformers 5 keeps it in rope_parameters.
   */
  rope_theta?: number;
  /**
   * transformers 4: RoPE scaling, null or {"rope_type" (older files: "type"), "factor", ...} with the fields of rope_parameters. transformers 5 keeps it in rope_parameters.
   */
  rope_scaling?: {} | null;
  /**
   * Bias on q/k/v/o projections (Llama, Mistral). Qwen2 always has q/k/v biases and no o_proj bias.
   */
  attention_bias?: boolean;
  /**
   * Dropout probability on the attention probabilities.
   */
  attention_dropout?: number;
  /**
   * Bias on gate/up/down projections (Llama only).
   */
  mlp_bias?: boolean;
  /**
   * The LM head shares the token embedding weight; `lm_head.weight` is then absent from the checkpoint.
   */
  tie_word_embeddings?: boolean;
  /**
   * Attend only to this many most recent positions (Mistral; Qwen2 when use_sliding_window). null: no window.
   */
  sliding_window?: number | null;
  /**
   * Qwen2: whether sliding_window applies.
   */
  use_sliding_window?: boolean;
  /**
   * Beginning-of-sequence token id.
   */
  bos_token_id?: number | null;
  /**
   * End-of-sequence token id(s) (generation stops on them).
   */
  eos_token_id?: number | null | number[];
  /**
   * Padding token id; sequence classification pools at the last token that is not this id. null: batches of one only.
   */
  pad_token_id?: number | null;
  /**
   * Number of classes of the sequence-classification head; derived from id2label when absent.
   */
  num_labels?: number;
  /**
   * Class index (as a string) to label name.
   */
  id2label?: {
    [k: string]: string;
  } | null;
  [k: string]: unknown;
}
