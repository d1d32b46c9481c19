/**
 * Rotary position embedding in HF's `rotate_half` layout, in plain TypeScript: the reference the backends' `PeftkitRotary`
 * kernels (kernels/wasm/rotary.ts) and the composed tfjs ops (kernels/rotary.ts) are tested against. Sums in float64.
 *
 * With x = [x1, x2] split in halves over its last axis, `x cos + rotate_half(x) sin`, rotate_half(x) = [−x2, x1]
 * (transformers' modeling_llama.py `apply_rotary_pos_emb`; Su et al. 2021, "RoFormer", eq. 34):
 *   y1 = x1 cos1 − x2 sin1,   y2 = x2 cos2 + x1 sin2.
 * `transpose` applies the transposed map, the gradient's (dx from dy):
 *   x1 = y1 cos1 + y2 sin2,   x2 = y2 cos2 − y1 sin1.
 *
 * @param x - [B, H, T, D] row-major, D even
 * @param cos - [B or 1, 1, T, D] row-major
 * @param sin - the same shape as cos
 * @returns [B, H, T, D] row-major
 * @throws Error when D is odd or the shapes do not fit.
 */
export function rotaryReference(x: ArrayLike<number>, shape: number[], cos: ArrayLike<number>, sin: ArrayLike<number>, csBatch: number, transpose = false): Float64Array {
  const [B, H, T, D] = shape;
  if (D % 2 !== 0) throw new Error(`rotary needs an even last axis, got ${D}`);
  if (csBatch !== 1 && csBatch !== B) throw new Error(`cos/sin batch ${csBatch} is neither 1 nor ${B}`);
  if (cos.length !== csBatch * T * D || sin.length !== cos.length) throw new Error('cos/sin do not have the shape [B or 1, 1, T, D]');
  const h = D / 2;
  const y = new Float64Array(B * H * T * D);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < H; n++) {
      for (let t = 0; t < T; t++) {
        const o = ((b * H + n) * T + t) * D, c = ((csBatch === 1 ? 0 : b) * T + t) * D;
        for (let i = 0; i < h; i++) {
          const x1 = x[o + i], x2 = x[o + h + i];
          if (transpose) {
            y[o + i] = x1 * cos[c + i] + x2 * sin[c + h + i];
            y[o + h + i] = x2 * cos[c + h + i] - x1 * sin[c + i];
          } else {
            y[o + i] = x1 * cos[c + i] - x2 * sin[c + i];
            y[o + h + i] = x2 * cos[c + h + i] + x1 * sin[c + h + i];
          }
        }
      }
    }
  }
  return y;
}
