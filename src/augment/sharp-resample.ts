// The geometric part of a view made by sharp (libvips) instead of the
// TypeScript resampler: a resize to whole-pixel sides, a mirror, and a copy
// of the rows that land on the canvas. libvips runs on libuv's thread pool,
// so in the training loader the pixels are made beside the train step
// rather than between its steps (`casl bench augment` measures both).
import sharp from 'sharp';
import type { GeometricTransform, RgbImage } from './geometric.js';

/** Whole-pixel size and offset of the scaled image on the canvas, or null if the map is not of that form. */
function wholePixelPlacement(g: GeometricTransform): { w: number; h: number; flip: boolean; ox: number; oy: number } | null {
  const { sx, tx, sy, ty } = g.affine;
  const w = Math.abs(sx) * g.inWidth;
  const h = sy * g.inHeight;
  const flip = sx < 0;
  const ox = flip ? tx - w : tx;
  const whole = (v: number) => Math.abs(v - Math.round(v)) < 1e-6;
  if (sy <= 0 || !whole(w) || !whole(h) || !whole(ox) || !whole(ty)) return null;
  return { w: Math.round(w), h: Math.round(h), flip, ox: Math.round(ox), oy: Math.round(ty) };
}

export async function resampleWithSharp(img: RgbImage, g: GeometricTransform): Promise<RgbImage> {
  const p = wholePixelPlacement(g);
  if (!p) return g.applyImage(img);
  let pipeline = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (p.w !== img.width || p.h !== img.height) pipeline = pipeline.resize(p.w, p.h, { fit: 'fill' });
  if (p.flip) pipeline = pipeline.flop();
  const scaled = await pipeline.raw().toBuffer();
  const W = g.outWidth;
  const H = g.outHeight;
  const out = new Uint8Array(W * H * 3);
  const x0 = Math.max(0, p.ox);
  const x1 = Math.min(W, p.ox + p.w);
  if (x1 > x0) {
    for (let y = Math.max(0, p.oy); y < Math.min(H, p.oy + p.h); y++) {
      const src = ((y - p.oy) * p.w + (x0 - p.ox)) * 3;
      out.set(scaled.subarray(src, src + (x1 - x0) * 3), (y * W + x0) * 3);
    }
  }
  return { data: out, width: W, height: H };
}
