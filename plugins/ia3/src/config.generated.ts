/* Generated from plugins/ia3/src/config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * IA3 settings (Liu et al. 2022, arXiv:2205.05638), with the field names and defaults of HF PEFT's IA3Config (peft/tuners/ia3/config.py). modules_to_save is not implemented yet: adapters that set it are refused when loaded.
 */
export interface Ia3Config {
  /**
   * Modules to wrap. A list: names matched against the end of each module's dotted name ("c_attn" matches transformer.h.0.attn.c_attn; "mlp.c_proj" does not match attn.c_proj). A single string: a regular expression that must match the whole module name. "all-linear": every linear layer except the output head. null: HF PEFT's default for the architecture (gpt2: c_attn, mlp.c_proj; llama, mistral: k_proj, v_proj, down_proj; ...).
   */
  target_modules?: string[] | string | null;
  /**
   * Modules never to wrap, matched like target_modules (a list by name suffix, a string as a full-match regular expression).
   */
  exclude_modules?: string[] | string | null;
  /**
   * Which wrapped modules scale their input (the paper's feed-forward rescaling, l_ff ⊙ γ(W1 x) before W2) instead of their output (keys and values). A list: a module is feed-forward when its name ends with an entry (HF PEFT's plain `endswith`, no dot needed); it must be a subset of target_modules when both are lists. A string: a full-match regular expression. null: HF PEFT's default for the architecture (gpt2: mlp.c_proj; llama: down_proj; ...).
   */
  feedforward_modules?: string[] | string | null;
  /**
   * True when the wrapped layer stores its weight as [in, out] (GPT-2's Conv1D). Set automatically per layer, with a warning when the given value is wrong for the layer, as HF PEFT does.
   */
  fan_in_fan_out?: boolean;
  /**
   * true: every vector starts at 1, so the model starts as the base model; false: vectors start at random, N(0, 1) as torch.randn (the adapter changes outputs from the start; for tests).
   */
  init_ia3_weights?: boolean;
  /**
   * HF PEFT task type written to adapter_config.json. null: taken from the model (CAUSAL_LM for causal LMs).
   */
  task_type?: 'CAUSAL_LM' | 'SEQ_CLS' | 'TOKEN_CLS' | 'SEQ_2_SEQ_LM' | 'QUESTION_ANS' | 'FEATURE_EXTRACTION' | null;
}
