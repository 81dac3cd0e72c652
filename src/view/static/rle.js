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
