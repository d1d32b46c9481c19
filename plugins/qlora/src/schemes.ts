/**
 * The quantization schemes this plugin registers under `TYPES.QuantScheme`: `nf4`, `fp4` (4-bit,
 * bitsandbytes' `Linear4bit`) and `int8` (bitsandbytes' `Linear8bitLt` storage). The `quantize`
 * step finds them by `quant_type`.
 */
import type { MethodContext, QuantScheme } from '@peftkit/core';
import { readToHost } from '@peftkit/models';
import type { QuantConfig } from './quant-config.generated.js';
import type { LoadedModel } from '@peftkit/models';
import { dequantizeModel, quantConfigSchema, quantizeModel, type QuantizableModel, type QuantizationReport } from './quantize-model.js';
import { saveQuantizedPretrained } from './checkpoint.js';

/** A scheme whose `quantize` resolves to the {@link QuantizationReport}. */
export interface BnbQuantScheme extends QuantScheme<QuantConfig, QuantizableModel> {
  quantize(model: QuantizableModel, config: QuantConfig, ctx?: Partial<MethodContext>): Promise<QuantizationReport>;
  dequantize(model: QuantizableModel): string[];
  savePretrained(loaded: unknown, folder: string): string[];
}

function scheme(name: 'nf4' | 'fp4' | 'int8', description: string): BnbQuantScheme {
  return {
    name,
    description,
    configSchema: quantConfigSchema,
    async quantize(model, config, ctx) {
      // Quantizing reads the weights synchronously; on WebGPU (Node) they must be downloaded first.
      await readToHost(model.namedParameters().map(([, v]) => v));
      // The scheme's name decides the type, whatever the config says.
      return quantizeModel(model, { ...config, quant_type: name }, ctx?.logger);
    },
    dequantize: (model) => dequantizeModel(model),
    savePretrained: (loaded, folder) => saveQuantizedPretrained(loaded as LoadedModel, folder),
  };
}

/** NF4 (QLoRA, Dettmers et al. 2023, §3): 4-bit NormalFloat, block-wise absmax, optional double quantization. */
export const nf4Scheme = scheme('nf4', '4-bit NormalFloat (QLoRA): bitsandbytes Linear4bit storage, block-wise absmax (blocksize 64), double quantization');

/** bitsandbytes' FP4 (E2M1): 4-bit float, block-wise absmax, optional double quantization. */
export const fp4Scheme = scheme('fp4', '4-bit float E2M1 (bitsandbytes FP4): Linear4bit storage, block-wise absmax, double quantization');

/** 8-bit row-wise absmax (LLM.int8() weight storage, Dettmers et al. 2022, without outlier decomposition). */
export const int8Scheme = scheme('int8', '8-bit row-wise absmax (bitsandbytes Linear8bitLt storage, LLM.int8() without outliers)');
