/* Generated from plugins/lora/src/config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * LoRA settings (Hu et al. 2021, arXiv:2106.09685), with the field names and defaults of HF PEFT's LoraConfig (peft/tuners/lora/config.py).
 */
export interface LoraConfig {
  /**
   * LoRA rank: A is [r, in_features], B is [out_features, r].
   */
  r?: number;
  /**
   * LoRA alpha: the update B·A is scaled by lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).
   */
  lora_alpha?: number;
  /**
   * Dropout probability applied to the LoRA branch's input during training.
   */
  lora_dropout?: number;
  /**
   * Modules to wrap. A list: names matched against the end of each module's dotted name ("c_proj" matches attn.c_proj and mlp.c_proj). A single string: a regular expression that must match the whole module name. "all-linear": every linear layer except the output head. null: HF PEFT's default for the architecture (gpt2: c_attn; llama, mistral, qwen2: q_proj, v_proj; ...).
   */
  target_modules?: string[] | string | null;
  /**
   * Modules never to wrap, matched like target_modules (a list by name suffix, a string as a full-match regular expression).
   */
  exclude_modules?: string[] | string | null;
  /**
   * Modules (besides the LoRA layers) trained in full and saved whole in the adapter, e.g. a classification head ["score"]. Matched by name suffix. For SEQ_CLS the model's head is added automatically, as HF PEFT does.
   */
  modules_to_save?: string[] | null;
  /**
   * Which biases are trained and saved: none; all (every bias of the model); lora_only (the biases of the wrapped layers).
   */
  bias?: 'none' | 'all' | 'lora_only';
  /**
   * True when the wrapped layer stores its weight as [in, out] (GPT-2's Conv1D). null: taken from the wrapped layers (true for Conv1D, else false), as the exported adapter_config.json then records it. A given true or false that is wrong for the layer is corrected with HF PEFT's warning.
   */
  fan_in_fan_out?: boolean | null;
  /**
   * true: A Kaiming-uniform (a = sqrt(5)), B zeros, so the model starts as the base; "gaussian": A ~ N(0, (1/r)^2), B zeros; false: A and B both random (the adapter changes outputs from the start; for tests).
   */
  init_lora_weights?: true | false | 'gaussian';
  /**
   * DoRA (Liu et al. 2024, arXiv:2402.09353): a trainable magnitude m per output feature, W' = m · (W + s·B·A) / ‖W + s·B·A‖ with the norm per output row, taken as a constant in the backward pass (as HF PEFT). Saved as lora_magnitude_vector. Linear, Conv1D and embedding layers.
   */
  use_dora?: boolean;
  /**
   * Rank-stabilized LoRA (Kalajdzievski 2023, arXiv:2312.03732): scaling lora_alpha / sqrt(r) instead of lora_alpha / r.
   */
  use_rslora?: boolean;
  /**
   * Per-module ranks overriding r: keys are regular expressions matched at the end of the module name (HF's `(.*\.)?(key)$`), first match wins.
   */
  rank_pattern?: {
    [k: string]: number;
  };
  /**
   * Per-module alphas overriding lora_alpha, keyed like rank_pattern.
   */
  alpha_pattern?: {
    [k: string]: number;
  };
  /**
   * Only wrap modules in these layer indices (the number after e.g. `h.` or `layers.` in the module name). Applies when target_modules is a list. null: every layer.
   */
  layers_to_transform?: number[] | number | null;
  /**
   * Name(s) of the layer list whose index layers_to_transform refers to (e.g. "h", "layers"). null: the last numbered list in the module name.
   */
  layers_pattern?: string[] | string | null;
  /**
   * HF PEFT task type written to adapter_config.json. null: taken from the model (CAUSAL_LM for causal LMs, SEQ_CLS for sequence classifiers).
   */
  task_type?: 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS' | 'SEQ_2_SEQ_LM' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION' | null;
}
