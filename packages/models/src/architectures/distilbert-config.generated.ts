/* Generated from packages/models/src/architectures/distilbert-config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * A DistilBERT `config.json` as Hugging Face transformers writes it (`DistilBertConfig`, configuration_distilbert.py). Defaults are HF's. Unknown keys are kept.
 */
export interface DistilBertConfig {
  /**
   * Architecture name; `distilbert` here.
   */
  model_type?: string;
  /**
   * HF class names the checkpoint was saved from, e.g. ["DistilBertForSequenceClassification"].
   */
  architectures?: string[];
  /**
   * Number of token ids.
   */
  vocab_size?: number;
  /**
   * Rows of the position embedding table, in tokens.
   */
  max_position_embeddings?: number;
  /**
   * Fixed sinusoidal position embeddings (initialised by formula and frozen) instead of learned ones.
   */
  sinusoidal_pos_embds?: boolean;
  /**
   * Number of transformer layers.
   */
  n_layers?: number;
  /**
   * Number of attention heads; must divide dim.
   */
  n_heads?: number;
  /**
   * Hidden size.
   */
  dim?: number;
  /**
   * Width of the feed-forward block.
   */
  hidden_dim?: number;
  /**
   * Dropout probability on embeddings and sublayer outputs.
   */
  dropout?: number;
  /**
   * Dropout probability on the attention probabilities.
   */
  attention_dropout?: number;
  /**
   * Feed-forward activation (gelu is the erf form).
   */
  activation?: 'gelu' | 'relu' | 'gelu_new' | 'silu';
  /**
   * Standard deviation of the normal initialisation of new weights (the heads).
   */
  initializer_range?: number;
  /**
   * Dropout of the question-answering head (not implemented; kept for completeness).
   */
  qa_dropout?: number;
  /**
   * Dropout before the classifier.
   */
  seq_classif_dropout?: number;
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
