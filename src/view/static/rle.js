// COCO run-length masks in the browser (no build step, no dependency).
// A COCO RLE runs over the pixels column by column (Fortran order),
// alternating background and foreground, starting with background. The
// compressed string form is pycocotools' rleToString: each count is
// delta-coded against the count two before it (from the third on), then
// written 5 bits a character (+48), low bits first, 0x20 meaning "more" and
// 0x10 in the last character the sign. Arithmetic is done in doubles, not
// 32-bit bitwise ops, so counts of large images do not wrap.

/** @param {string} s @returns {number[]} */
export function countsFromString(s) {
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0;
    let k = 0;
    let more = true;
    while (more) {
      if (p >= s.length) throw new Error(`RLE string ends inside a count at character ${p}`);
      const c = s.charCodeAt(p) - 48;
      if (c < 0 || c > 63) throw new Error(`RLE string has an invalid character at ${p}`);
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

/**
 * The mask as one byte a pixel, row-major (1 = foreground).
 * @param {{size: [number, number], counts: string | number[]}} rle
 * @returns {{height: number, width: number, data: Uint8Array}}
 */
export function decodeRle(rle) {
  const [h, w] = rle.size;
  const counts = typeof rle.counts === 'string' ? countsFromString(rle.counts) : rle.counts;
  const data = new Uint8Array(h * w);
  let pos = 0;
  for (let r = 0; r < counts.length; r++) {
    const n = counts[r];
    if (n < 0 || pos + n > h * w) throw new Error(`RLE counts overrun a ${h}×${w} mask at run ${r}`);
    if (r % 2 === 1) {
      for (let q = pos; q < pos + n; q++) {
        const x = Math.floor(q / h);
        data[(q - x * h) * w + x] = 1;
      }
    }
    pos += n;
  }
  return { height: h, width: w, data };
}

/**
 * Paints an RLE mask into an RGBA buffer of another size (W × H), without
 * decoding it at full size: each foreground run of a column becomes a
 * rectangle of display pixels. A display pixel is painted when any source
 * pixel mapping to it is foreground, so thin parts survive downscaling.
 * @param {{size: [number, number], counts: string | number[]}} rle
 * @param {Uint8ClampedArray} rgba  W × H × 4, row-major
 * @param {number} W
 * @param {number} H
 * @param {[number, number, number, number]} color  r, g, b, alpha (0–255)
 */
export function paintRle(rle, rgba, W, H, color) {
  const [h, w] = rle.size;
  if (h === 0 || w === 0) return;
  const counts = typeof rle.counts === 'string' ? countsFromString(rle.counts) : rle.counts;
  const sx = W / w;
  const sy = H / h;
  const [r, g, b, a] = color;
  let pos = 0;
  for (let k = 0; k < counts.length; k++) {
    const n = counts[k];
    if (pos + n > h * w) throw new Error(`RLE counts overrun a ${h}×${w} mask at run ${k}`);
    if (k % 2 === 1) {
      // The run may span several columns: paint it column by column.
      let q = pos;
      const end = pos + n;
      while (q < end) {
        const x = Math.floor(q / h);
        const y0 = q - x * h;
        const y1 = Math.min(h, y0 + (end - q));
        const X0 = Math.floor(x * sx);
        const X1 = Math.min(W, Math.max(X0 + 1, Math.floor((x + 1) * sx)));
        const Y0 = Math.floor(y0 * sy);
        const Y1 = Math.min(H, Math.max(Math.floor((y1 - 1) * sy) + 1, Math.floor(y1 * sy)));
        for (let Y = Y0; Y < Y1; Y++) {
          for (let X = X0, p = 4 * (Y * W + X0); X < X1; X++, p += 4) {
            rgba[p] = r;
            rgba[p + 1] = g;
            rgba[p + 2] = b;
            rgba[p + 3] = a;
          }
        }
        q += y1 - y0;
      }
    }
    pos += n;
  }
}
