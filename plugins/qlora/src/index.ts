/**
 * @peftkit/qlora: QLoRA (Dettmers et al. 2023) for peftkit. bitsandbytes-exact 4-bit storage (NF4,
 * FP4, block-wise absmax, double quantization) and 8-bit row-wise storage, a quantized linear layer
 * that LoRA wraps, the `nf4` / `fp4` / `int8` quantization schemes, the `qlora` method, and
 * bitsandbytes / transformers checkpoint reading and writing.
 *
 * `export default` is the plugin's inversify `ContainerModule`.
 */
export { NF4_CODE, nf4Index } from './quant/nf4.js';
export { FP4_CODE, fp4Index } from './quant/fp4.js';
export { BLOCKSIZES, assertBlocksize, codeOf, dequantize4bit, quantize4bit, type Packed4bit, type QuantType4bit } from './quant/four-bit.js';
export { createDynamicMap, dynamicMap } from './quant/dynamic-map.js';
export { dequantizeBlockwise8, dynamicIndex, quantizeBlockwise8, type Blockwise8bit } from './quant/blockwise-8bit.js';
export { NESTED_BLOCKSIZE, compressAbsmax, decompressAbsmax, meanF32, type NestedAbsmax } from './quant/double-quant.js';
export { INV_127, dequantizeInt8Rowwise, quantizeInt8Rowwise, type RowwiseInt8 } from './quant/int8.js';
export { f32, fmaF32 } from './quant/float32.js';
export { Weight4bit, WeightInt8, bitsPerParameter, type Layout, type QuantType, type QuantizedWeight, type Quantize4bitOptions, type StorageBytes } from './quantized-weight.js';
export { QuantLinear, quantizeLayer, type LinearOrigin, type QuantizeLayerOptions } from './quant-linear.js';
export { PyFloat, pyFloatRepr, pyJsonDumps, type PyJson } from './python-json.js';
export { deserializeWeight, packQuantState, quantStateKey, serializeWeight, storedQuantType } from './bnb-format.js';
export {
  bitsAndBytesConfigDict,
  createQuantizedModel,
  dequantizeModel,
  matchesNotConvert,
  quantConfigIssues,
  quantConfigSchema,
  quantizeModel,
  quantizedLayers,
  resolveQuantConfig,
  type CreateQuantizedOptions,
  type QuantizableModel,
  type QuantizationReport,
  type ResolvedQuantConfig,
} from './quantize-model.js';
export type { QuantConfig } from './quant-config.generated.js';
export { fp4Scheme, int8Scheme, nf4Scheme, type BnbQuantScheme } from './schemes.js';
export { loadBnbWeights, loadQuantizedPretrained, quantizationConfigOf, quantizedStateDict, saveQuantizedPretrained, type BnbLoadReport, type LoadQuantizedOptions } from './checkpoint.js';
export { QLORA_DEFAULTS, QLoraAdapterHandle, baseQuantType, injectQLora, qloraConfigSchema, withQLoraDefaults, type InjectQLoraOptions, type QLoraConfig, type QLoraMergeOptions } from './model.js';
export { qloraMethod } from './method.js';
export { default } from './module.js';
