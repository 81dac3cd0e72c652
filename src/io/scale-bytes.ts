// Bytes → the model's [0, 1] floats, shared by toFloat32 (io/decode.ts) and
// the inference worker (label/infer-worker.ts), which must not load sharp.

/** v / 255 as float32, for every byte v. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * dst[i] = src[i] / 255 for the first n bytes: one table lookup a byte, the
 * same float32 bits as the division at a tenth of its cost.
 */
export function scaleBytes(src: Uint8Array, dst: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = UNIT[src[i]];
}
