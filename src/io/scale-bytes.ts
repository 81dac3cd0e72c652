// Bytes → the model's [0, 1] floats for toFloat32 (io/decode.ts). The
// inference worker makes the same floats on the wasm heap instead
// (label/input-tensor.ts).

/** v / 255 as float32, for every byte v. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * dst[i] = src[i] / 255 for the first n bytes: one table lookup a byte, the
 * same float32 bits as the division at a tenth of its cost. Bytes are read
 * four at a time when `src` starts on a 4-byte boundary (decoded canvases
 * do): a quarter of the loads, about 25 % less CPU (measured when the
 * inference worker still used it: a batch of sixteen 256² images, 7.5
 * against 9–10 ms).
 */
export function scaleBytes(src: Uint8Array, dst: Float32Array, n: number): void {
  let i = 0;
  if (LITTLE_ENDIAN && src.byteOffset % 4 === 0) {
    const words = new Uint32Array(src.buffer, src.byteOffset, n >>> 2);
    for (let w = 0; w < words.length; w++, i += 4) {
      const x = words[w];
      dst[i] = UNIT[x & 255];
      dst[i + 1] = UNIT[(x >>> 8) & 255];
      dst[i + 2] = UNIT[(x >>> 16) & 255];
      dst[i + 3] = UNIT[x >>> 24];
    }
  }
  for (; i < n; i++) dst[i] = UNIT[src[i]];
}
