// The geometric part of a view made off the main thread, on libuv's pool:
// the policies draw a whole-pixel resize, a mirror and a whole-pixel offset
// (policy.ts, `placed`), so the view is either one call of casl's decode
// addon straight from the encoded file (decode, resize, orientation, flip
// and placement together: `viewFromEncoded`), or, for what the addon
// declines, sharp's full-resolution decode then a sharp resize (+ mirror)
// and a row copy onto the canvas (`resampleWithSharp`). Either way the
// pixels are made beside the train step rather than between its steps
// (`casl bench augment` measures it).
import sharp from 'sharp';
import { type EncodedImage, type ViewPlacement, addonView, decodeEncoded } from '../io/decode.js';
import type { GeometricTransform, RgbImage } from './geometric.js';

/** Whole-pixel size and offset of the scaled image on the canvas, or null if the map is not of that form. */
export function wholePixelPlacement(g: GeometricTransform): ViewPlacement | null {
  const { sx, tx, sy, ty } = g.affine;
  const w = Math.abs(sx) * g.inWidth;
  const h = sy * g.inHeight;
  const flip = sx < 0;
  const ox = flip ? tx - w : tx;
  const whole = (v: number) => Math.abs(v - Math.round(v)) < 1e-6;
  if (sy <= 0 || !whole(w) || !whole(h) || !whole(ox) || !whole(ty)) return null;
  return {
    canvasWidth: g.outWidth, canvasHeight: g.outHeight, width: Math.round(w), height: Math.round(h), flip, offsetX: Math.round(ox), offsetY: Math.round(ty),
  };
}

export async function resampleWithSharp(img: RgbImage, g: GeometricTransform): Promise<RgbImage> {
  const p = wholePixelPlacement(g);
  if (!p) return g.applyImage(img);
  let pipeline = sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (p.width !== img.width || p.height !== img.height) pipeline = pipeline.resize(p.width, p.height, { fit: 'fill' });
  if (p.flip) pipeline = pipeline.flop();
  const scaled = await pipeline.raw().toBuffer();
  const W = g.outWidth;
  const H = g.outHeight;
  const out = new Uint8Array(W * H * 3);
  const x0 = Math.max(0, p.offsetX);
  const x1 = Math.min(W, p.offsetX + p.width);
  if (x1 > x0) {
    for (let y = Math.max(0, p.offsetY); y < Math.min(H, p.offsetY + p.height); y++) {
      const src = ((y - p.offsetY) * p.width + (x0 - p.offsetX)) * 3;
      out.set(scaled.subarray(src, src + (x1 - x0) * 3), (y * W + x0) * 3);
    }
  }
  return { data: out, width: W, height: H };
}

/**
 * The view's pixels (before colour ops) from an image read in but not
 * decoded, whose oriented size the transform `g` was drawn for: one addon
 * call when the addon takes the file, else sharp's full decode and
 * `resampleWithSharp`. `decoder` says which ran.
 */
export async function viewFromEncoded(img: EncodedImage, g: GeometricTransform, useAddon = true): Promise<{ view: RgbImage; decoder: 'addon' | 'sharp' }> {
  const { header } = img;
  if (header.width !== g.inWidth || header.height !== g.inHeight) {
    throw new Error(`viewFromEncoded: ${img.where} is ${header.width}×${header.height} but the transform was drawn for ${g.inWidth}×${g.inHeight}`);
  }
  const p = useAddon ? wholePixelPlacement(g) : null;
  if (p) {
    const fast = await addonView(img.bytes, header, p);
    if ('data' in fast) return { view: { data: fast.data, width: g.outWidth, height: g.outHeight }, decoder: 'addon' };
  }
  return { view: await resampleWithSharp(await decodeEncoded(img), g), decoder: 'sharp' };
}
