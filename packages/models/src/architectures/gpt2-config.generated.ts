/* Generated from packages/models/src/architectures/gpt2-config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * A GPT-2 `config.json` as Hugging Face transformers writes it (`GPT2Config`, configuration_gpt2.py). Defaults are HF's. Unknown keys are kept.
 */
export interface GPT2Config {
  /**
   * Architecture name; `gpt2` here.
   */
  model_type?: string;
  /**
   * HF class names the checkpoint was saved from, e.g. ["GPT2LMHeadModel"].
   */
  architectures?: string[];
  /**
   * Number of token ids (rows of `wte`).
   */
  vocab_size?: number;
  /**
   * Maximum sequence length (rows of `wpe`), in tokens.
   */
  n_positions?: number;
  /**
   * Hidden size (width of the residual stream).
   */
  n_embd?: number;
  /**
   * Number of transformer blocks.
   */
  n_layer?: number;
  /**
   * Number of attention heads; must divide n_embd.
   */
  n_head?: number;
  /**
   * Width of the MLP; null means 4 * n_embd.
   */
  n_inner?: number | null;
  /**
   * MLP activation: gelu_new (tanh approximation), gelu (erf), gelu_pytorch_tanh, relu, silu, swish, tanh.
   */
  activation_function?: 'gelu_new' | 'gelu' | 'gelu_pytorch_tanh' | 'gelu_fast' | 'relu' | 'silu' | 'swish' | 'tanh';
  /**
   * Dropout probability after each attention and MLP output projection.
   */
  resid_pdrop?: number;
  /**
   * Dropout probability on the summed token and position embeddings.
   */
  embd_pdrop?: number;
  /**
   * Dropout probability on the attention probabilities.
   */
  attn_pdrop?: number;
  /**
   * Epsilon of every LayerNorm.
   */
  layer_norm_epsilon?: number;
  /**
   * Standard deviation of the normal initialisation of new weights (the classification head).
   */
  initializer_range?: number;
  /**
   * Divide attention scores by sqrt(head_dim).
   */
  scale_attn_weights?: boolean;
  /**
   * Also divide attention scores of layer i by i + 1.
   */
  scale_attn_by_inverse_layer_idx?: boolean;
  /**
   * HF mixed-precision detail; compute here is float32 throughout, so it changes nothing.
   */
  reorder_and_upcast_attn?: boolean;
  /**
   * Beginning-of-sequence token id.
   */
  bos_token_id?: number | null;
  /**
   * End-of-sequence token id (generation stops on it).
   */
  eos_token_id?: number | null | number[];
  /**
   * The LM head shares the token embedding `wte` (HF's default for GPT-2); false: `lm_head.weight` is its own tensor in the checkpoint (a merged export whose embedding was trained apart from the head).
   */
  tie_word_embeddings?: boolean;
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
