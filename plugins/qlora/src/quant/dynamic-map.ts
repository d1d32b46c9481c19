/**
 * bitsandbytes' signed 8-bit "dynamic" data type (Dettmers 2015, arXiv:1511.04561), the code that
 * double quantization uses for the absmax values: `bitsandbytes/functional.py`
 * `create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)`.
 *
 * For i = 0..6 it takes the 2^i midpoints of `torch.linspace(0.1, 1, 2^i + 1)` (float32), scales
 * them by 10^(i-6) (a float32 multiply) and adds their negatives; then 0 and 1.0; 256 values sorted.
 *
 * Which float32 values come out depends on how PyTorch's CPU `linspace` kernel was compiled:
 * `start + step * idx` (first half) and `end - step * (steps - idx - 1)` (second half), in float32,
 * either contracted into fused multiply-adds or not. The two differ by one ulp in 42 of the 256
 * entries. We follow the fused form by default (GCC and Clang contract by default on x86-64 with FMA
 * and on arm64, where PyTorch's kernels run); the exact map a checkpoint used is saved in it as
 * `nested_quant_map`, and loading always uses that saved map, so the choice only decides which
 * bytes we write when we quantize ourselves.
 */
import { f32, fmaF32 } from './float32.js';

/** torch.linspace(start, end, steps) in float32, as PyTorch's CPU kernel computes it. */
function linspaceF32(start: number, end: number, steps: number, fused: boolean): number[] {
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  const out: number[] = [];
  for (let idx = 0; idx < steps; idx++) {
    if (idx < half) out.push(fused ? fmaF32(step, idx, s) : f32(s + f32(step * idx)));
    else out.push(fused ? fmaF32(-step, steps - idx - 1, e) : f32(e - f32(step * (steps - idx - 1))));
  }
  return out;
}

/**
 * The 256 values of bitsandbytes' signed dynamic map, ascending, as float32.
 * @param opts.fused - model PyTorch's linspace with fused multiply-adds (default true; see above).
 */
export function createDynamicMap(opts: { fused?: boolean } = {}): Float32Array {
  const fused = opts.fused ?? true;
  const data: number[] = [];
  const maxExponentBits = 7;
  for (let i = 0; i < maxExponentBits; i++) {
    const items = 2 ** i + 1;
    const b = linspaceF32(0.1, 1, items, fused);
    // Python evaluates 10 ** k as a correctly rounded double; parseFloat of the literal is the same double.
    const scale = f32(parseFloat(`1e${-(maxExponentBits - 1) + i}`));
    for (let k = 0; k < items - 1; k++) {
      const mean = f32(f32(b[k] + b[k + 1]) / 2);
      data.push(f32(scale * mean), f32(-scale * mean));
    }
  }
  data.push(0, 1.0);
  data.sort((a, b) => a - b);
  return Float32Array.from(data);
}

let cached: Float32Array | undefined;

/** {@link createDynamicMap} with the defaults, computed once. Do not modify the returned array. */
export function dynamicMap(): Float32Array {
  cached ??= createDynamicMap();
  return cached;
}
