// Pseudo labels drawn on their images: each instance's mask (when it has one)
// as a translucent fill and its box as an opaque outline, in one RGBA layer
// composited over the decoded image by sharp. Colours follow category_id, so
// class-agnostic labels (category 1) are all one colour.
import sharp from 'sharp';
import { decodeImage } from '../io/decode.js';
import { decodeMask, segmentationToRle } from '../geometry/mask.js';
import type { Instance } from '../records.js';

/** Tableau 10: distinct on photos and for colour-blind readers. */
const PALETTE: [number, number, number][] = [
  [78, 121, 167], [242, 142, 43], [225, 87, 89], [118, 183, 178], [89, 161, 79],
  [237, 201, 72], [176, 122, 161], [255, 157, 167], [156, 117, 95], [186, 176, 172],
];

export function categoryColor(categoryId: number): [number, number, number] {
  return PALETTE[((categoryId - 1) % PALETTE.length + PALETTE.length) % PALETTE.length];
}

/** The overlay: H × W × 4 bytes, transparent where nothing is drawn. */
export function instanceOverlay(instances: readonly Instance[], width: number, height: number, lineWidth = 2): Uint8Array {
  const px = new Uint8Array(width * height * 4);
  const put = (x: number, y: number, c: [number, number, number], a: number) => {
    const i = (y * width + x) * 4;
    px[i] = c[0]; px[i + 1] = c[1]; px[i + 2] = c[2]; px[i + 3] = Math.max(px[i + 3], a);
  };
  for (const inst of instances) {
    const c = categoryColor(inst.category_id);
    if (inst.segmentation) {
      // RLE is column-major: pixel index = x * h + y.
      const m = decodeMask(segmentationToRle(inst.segmentation, height, width));
      for (let x = 0; x < width; x++) for (let y = 0; y < height; y++) if (m[x * height + y]) put(x, y, c, 110);
    }
    const [bx, by, bw, bh] = inst.bbox;
    const x0 = Math.max(0, Math.round(bx));
    const y0 = Math.max(0, Math.round(by));
    const x1 = Math.min(width - 1, Math.round(bx + bw) - 1);
    const y1 = Math.min(height - 1, Math.round(by + bh) - 1);
    if (x1 < x0 || y1 < y0) continue;
    for (let t = 0; t < lineWidth; t++) {
      for (let x = x0; x <= x1; x++) {
        if (y0 + t <= y1) put(x, y0 + t, c, 255);
        if (y1 - t >= y0) put(x, y1 - t, c, 255);
      }
      for (let y = y0; y <= y1; y++) {
        if (x0 + t <= x1) put(x0 + t, y, c, 255);
        if (x1 - t >= x0) put(x1 - t, y, c, 255);
      }
    }
  }
  return px;
}

/** The image at `file` with `instances` drawn on it, as PNG bytes (upscaled to at least `minSide` px, nearest neighbour, for small images). */
export async function drawInstances(file: string, instances: readonly Instance[], opts: { minSide?: number } = {}): Promise<Buffer> {
  const img = await decodeImage(file);
  const overlay = instanceOverlay(instances, img.width, img.height);
  const raw = { width: img.width, height: img.height };
  let out = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.length), { raw: { ...raw, channels: 3 } })
    .composite([{ input: Buffer.from(overlay.buffer, overlay.byteOffset, overlay.length), raw: { ...raw, channels: 4 } }]);
  const minSide = opts.minSide ?? 0;
  const short = Math.min(img.width, img.height);
  if (short < minSide) {
    out = sharp(await out.png().toBuffer()).resize({ width: Math.round(img.width * minSide / short), kernel: 'nearest' });
  }
  return out.png().toBuffer();
}
