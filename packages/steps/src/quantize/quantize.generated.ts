/* Generated from packages/steps/src/quantize/quantize.schema.json by tools/typegen. Do not edit: change the schema and run `npm run typegen`. */

/**
 * Settings of the `quantize` step: how the base model's linear layers are stored quantized (bitsandbytes' 4-bit NF4/FP4 with block-wise absmax and double quantization, or 8-bit row-wise), as for QLoRA. The scheme named by quant_type comes from a plugin (@peftkit/qlora registers nf4, fp4 and int8).
 */
export interface QuantizeSettings {
  /**
   * Quantization scheme: nf4 (4-bit NormalFloat, QLoRA's choice), fp4 (bitsandbytes' 4-bit float) or int8 (8-bit row-wise absmax). transformers: bnb_4bit_quant_type / load_in_8bit.
   */
  quant_type?: 'nf4' | 'fp4' | 'int8';
  /**
   * 4-bit: values per absmax block, a power of two from 32 to 4096 (bitsandbytes' kernels). QLoRA uses 64.
   */
  blocksize?: number;
  /**
   * 4-bit: quantize the absmax values again to 8 bits in blocks of 256 (QLoRA's double quantization: 4.127 instead of 4.5 bits per parameter at blocksize 64). transformers: bnb_4bit_use_double_quant.
   */
  double_quant?: boolean;
  /**
   * Linear layers to quantize. null: every linear layer (minus modules_to_not_convert and keep_in_fp32_modules). A list: names matched against the end of the module name. A string: a regular expression that must match the whole module name.
   */
  target_modules?: string[] | string | null;
  /**
   * Modules kept in float32. null: the model's output head(s) (lm_head, score), as transformers does. A list replaces that default (transformers: llm_int8_skip_modules); an entry matches a module named so, ending with "." + it, or lying under it.
   */
  modules_to_not_convert?: string[] | null;
  /**
   * More modules kept in float32, added to modules_to_not_convert (transformers' _keep_in_fp32_modules).
   */
  keep_in_fp32_modules?: string[];
}
