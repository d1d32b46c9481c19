/* Generated from plugins/prefix-tuning/src/prompt/config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Prompt tuning settings (Lester et al. 2021, arXiv:2104.08691): trained soft-prompt embeddings prepended to the input embeddings. Field names and defaults of HF PEFT's PromptTuningConfig (peft/tuners/prompt_tuning/config.py).
 */
export interface PromptTuningConfig {
  /**
   * Number of virtual tokens P: the soft prompt is a [P, token_dim] table, prepended to every input.
   */
  num_virtual_tokens?: number;
  /**
   * Width of a virtual token. null: the model's hidden size (the only value that fits).
   */
  token_dim?: number | null;
  /**
   * 1 for decoder-only and encoder-only models (HF uses 2 for encoder-decoder models, which peftkit does not have). null: 1.
   */
  num_transformer_submodules?: 1 | null;
  /**
   * Written to adapter_config.json for HF PEFT. null: the model's number of attention heads.
   */
  num_attention_heads?: number | null;
  /**
   * Written to adapter_config.json for HF PEFT. null: the model's number of layers.
   */
  num_layers?: number | null;
  /**
   * Initialisation of the soft prompt (HF's PromptTuningInit). RANDOM: N(0, 1) as torch.nn.Embedding; SAMPLE_VOCAB: rows of the model's token embedding table drawn uniformly with the seeded generator; TEXT: the embeddings of prompt_tuning_init_text's tokens, repeated or cut to num_virtual_tokens (Lester et al. 2021, section 3.2).
   */
  prompt_tuning_init?: 'RANDOM' | 'SAMPLE_VOCAB' | 'TEXT';
  /**
   * The text whose token embeddings initialise the prompt when prompt_tuning_init is TEXT (tokenized with special tokens, as HF's tokenizer(text) call).
   */
  prompt_tuning_init_text?: string | null;
  /**
   * For TEXT: the folder of the tokenizer (tokenizer.json, or vocab + merges) when the model was not handed over with one. Written to adapter_config.json.
   */
  tokenizer_name_or_path?: string | null;
  /**
   * HF PEFT task type written to adapter_config.json. null: taken from the model (CAUSAL_LM for causal LMs, SEQ_CLS for sequence classifiers, FEATURE_EXTRACTION for bare encoders).
   */
  task_type?: 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS' | 'SEQ_2_SEQ_LM' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION' | null;
}
