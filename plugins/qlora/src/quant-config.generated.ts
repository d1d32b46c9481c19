/* Generated from plugins/qlora/src/quant-config.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * How the quantize step quantizes a model's linear layers (bitsandbytes' 4-bit NF4/FP4 with block-wise absmax and double quantization, or 8-bit row-wise). Field names follow transformers' BitsAndBytesConfig where it has one.
 */
export interface QuantConfig {
  /**
   * Data type: nf4 (4-bit NormalFloat, QLoRA's choice), fp4 (bitsandbytes' 4-bit float E2M1) or int8 (LLM.int8() row-wise absmax, no outlier decomposition). transformers: bnb_4bit_quant_type / load_in_8bit.
   */
  quant_type?: 'nf4' | 'fp4' | 'int8';
  /**
   * 4-bit only: values per absmax block, a power of two from 32 to 4096 (bitsandbytes' kernels). QLoRA uses 64.
   */
  blocksize?: number;
  /**
   * 4-bit only: quantize the absmax values again to 8 bits in blocks of 256 (QLoRA's double quantization: 4.127 instead of 4.5 bits per parameter at blocksize 64). transformers: bnb_4bit_use_double_quant.
   */
  double_quant?: boolean;
  /**
   * Linear layers to quantize. null: every Linear / Conv1D layer (minus modules_to_not_convert and keep_in_fp32_modules). A list: names matched against the end of the module name ("mlp.c_fc", "q_proj"). A string: a regular expression that must match the whole module name.
   */
  target_modules?: string[] | string | null;
  /**
   * Modules kept in float32. null: the model's output head(s) (lm_head, score, classifier), as transformers' get_keys_to_not_convert. A list replaces that default (transformers: llm_int8_skip_modules). An entry matches a module whose name equals it, ends with "." + it, or lies under it ("transformer.h.0" keeps the whole first block).
   */
  modules_to_not_convert?: string[] | null;
  /**
   * More modules kept in float32, added to modules_to_not_convert (transformers' _keep_in_fp32_modules), matched the same way.
   */
  keep_in_fp32_modules?: string[];
}
