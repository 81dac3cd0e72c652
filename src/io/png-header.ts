// The size of a PNG, read from its IHDR chunk in JS, as jpeg-header.ts does
// for JPEGs: decoding needs it before it starts (the view is planned from
// it, the pixel limit is checked on it), and a sharp metadata() call costs a
// round trip through libuv's pool and libvips. A PNG whose orientation
// libvips would read from EXIF (an eXIf chunk, or ImageMagick's "Raw profile
// type exif" text) returns null, as does anything unusual, and the caller
// asks sharp, which also words the error for a broken file.

export interface PngHeader {
  width: number;
  height: number;
  /** PNGs read here never carry an orientation: 1. */
  orientation: 1;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function type(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at], b[at + 1], b[at + 2], b[at + 3]);
}

function u32(b: Uint8Array, at: number): number {
  return b[at] * 2 ** 24 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]);
}

/** Width and height of a PNG without EXIF, or null when it has EXIF or the chunks before the image data are not plain. */
export function readPngHeader(b: Uint8Array): PngHeader | null {
  if (b.length < 33 || SIGNATURE.some((v, i) => b[i] !== v)) return null;
  if (u32(b, 8) !== 13 || type(b, 12) !== 'IHDR') return null;
  const width = u32(b, 16);
  const height = u32(b, 20);
  if (width === 0 || height === 0 || width > 2 ** 31 - 1 || height > 2 ** 31 - 1) return null;
  // The metadata libvips reads comes before the image data.
  for (let i = 33; i + 12 <= b.length;) {
    const len = u32(b, i);
    const t = type(b, i + 4);
    if (t === 'IDAT') return { width, height, orientation: 1 };
    if (t === 'eXIf') return null;
    if ((t === 'tEXt' || t === 'zTXt' || t === 'iTXt') && /^Raw profile type exif\0/i.test(String.fromCharCode(...b.subarray(i + 8, i + 8 + Math.min(len, 22))))) {
      return null;
    }
    i += 12 + len;
  }
  return null;
}
