// The size and EXIF orientation of a JPEG, read from its markers in JS.
// Decoding needs both before it starts (the letterbox is planned from the
// oriented size, the pixel limit is checked on it), and reading them here
// costs microseconds where a sharp metadata() call costs a round trip
// through libuv's pool and libvips (0.14 ms of CPU a 640×480 photo,
// about 5% of its decode). Anything unusual returns null and the caller
// asks sharp, which also words the error for a broken file.

export interface JpegHeader {
  width: number;
  height: number;
  /** EXIF orientation 1–8; 1 when absent. */
  orientation: number;
}

// SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC): the frame header with the size.
const isSof = (m: number) => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc;

/** Orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" payload starting at `start`, or 1. */
function exifOrientation(b: Uint8Array, start: number, end: number): number {
  const tiff = start + 6;
  if (end - tiff < 8) return 1;
  const little = b[tiff] === 0x49 && b[tiff + 1] === 0x49;
  if (!little && !(b[tiff] === 0x4d && b[tiff + 1] === 0x4d)) return 1;
  const u16 = (o: number) => (little ? b[o] | (b[o + 1] << 8) : (b[o] << 8) | b[o + 1]);
  const u32 = (o: number) => (little ? (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16)) + b[o + 3] * 2 ** 24 : b[o] * 2 ** 24 + ((b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]));
  const ifd = tiff + u32(tiff + 4);
  if (ifd + 2 > end) return 1;
  const n = u16(ifd);
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + 12 * i;
    if (e + 12 > end) return 1;
    if (u16(e) === 0x0112) {
      const v = u16(e + 8);
      return v >= 1 && v <= 8 ? v : 1;
    }
  }
  return 1;
}

/** Width, height and orientation of a baseline or progressive JPEG, or null when the markers are not plain. */
export function readJpegHeader(b: Uint8Array): JpegHeader | null {
  if (b.length < 4 || b[0] !== 0xff || b[1] !== 0xd8) return null;
  let orientation = 1;
  let sawExif = false;
  let size: { width: number; height: number } | undefined;
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return null;
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    // Start of scan: every marker libvips reads metadata from comes before it.
    if (marker === 0xda) return size ? { ...size, orientation } : null;
    if (marker === 0xd8 || marker === 0xd9 || (marker >= 0xd0 && marker <= 0xd7)) return null;
    const len = (b[i + 2] << 8) | b[i + 3];
    const start = i + 4;
    const end = i + 2 + len;
    if (len < 2 || end > b.length) return null;
    if (marker === 0xe1 && !sawExif && len >= 8 && b[start] === 0x45 && b[start + 1] === 0x78 && b[start + 2] === 0x69
      && b[start + 3] === 0x66 && b[start + 4] === 0 && b[start + 5] === 0) {
      sawExif = true;
      orientation = exifOrientation(b, start, end);
    } else if (isSof(marker)) {
      if (len < 8 || size) return null;
      const height = (b[start + 1] << 8) | b[start + 2];
      const width = (b[start + 3] << 8) | b[start + 4];
      // Height 0 means "given by a later DNL marker": rare, left to libvips.
      if (width === 0 || height === 0) return null;
      size = { width, height };
    }
    i = end;
  }
  return null;
}
