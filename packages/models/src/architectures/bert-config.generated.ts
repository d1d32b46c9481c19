/* Generated from packages/models/src/architectures/bert-config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * A BERT `config.json` as Hugging Face transformers writes it (`BertConfig`, configuration_bert.py). Defaults are HF's. Unknown keys are kept.
 */
export interface BertConfig {
  /**
   * Architecture name; `bert` here.
   */
  model_type?: string;
  /**
   * HF class names the checkpoint was saved from, e.g. ["BertForSequenceClassification"].
   */
  architectures?: string[];
  /**
   * Number of token ids.
   */
  vocab_size?: number;
  /**
   * Hidden size.
   */
  hidden_size?: number;
  /**
   * Number of encoder layers.
   */
  num_hidden_layers?: number;
  /**
   * Number of attention heads; must divide hidden_size.
   */
  num_attention_heads?: number;
  /**
   * Width of the feed-forward block.
   */
  intermediate_size?: number;
  /**
   * Feed-forward activation (gelu is the erf form).
   */
  hidden_act?: 'gelu' | 'gelu_new' | 'gelu_pytorch_tanh' | 'relu' | 'silu' | 'swish' | 'tanh';
  /**
   * Dropout probability on embeddings and sublayer outputs.
   */
  hidden_dropout_prob?: number;
  /**
   * Dropout probability on the attention probabilities.
   */
  attention_probs_dropout_prob?: number;
  /**
   * Dropout before the classifier; null means hidden_dropout_prob.
   */
  classifier_dropout?: number | null;
  /**
   * Rows of the position embedding table, in tokens.
   */
  max_position_embeddings?: number;
  /**
   * Rows of the token type (segment) embedding table.
   */
  type_vocab_size?: number;
  /**
   * Epsilon of every LayerNorm.
   */
  layer_norm_eps?: number;
  /**
   * Standard deviation of the normal initialisation of new weights (the classifier).
   */
  initializer_range?: number;
  /**
   * Only `absolute` is implemented.
   */
  position_embedding_type?: 'absolute';
  /**
   * Padding token id.
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
